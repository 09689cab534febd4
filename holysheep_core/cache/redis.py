"""The Redis backend: entries shared by every process that names the same Redis and
namespace. Plain Redis 7 (no modules): strings, a sorted set and hashes, each change one
Lua script, so a size bound holds across processes and nothing is left half-written.

Keys, under ``{namespace}:cache:``
    ``e:{digest}``  the entry (JSON), with the TTL as its expiry
    ``lru``         sorted set of digests by last use (score from ``tick``)
    ``tick``        a counter: Redis' own order of uses, no client clocks involved
    ``where``       hash digest -> scope, to find an evicted entry's vector
    ``v:{scope}``   hash digest -> vector (float32), the scope's semantic index; it
                    expires with the newest entry in it
"""

from __future__ import annotations

import threading
from typing import Any

from ..transport.per_loop import PerLoop

__all__ = ["RedisBackend", "redis_settings"]

# KEYS: entry, lru, tick, where, vectors ("" when none). ARGV: data, ttl ms (0 = none),
# digest, max entries, key prefix, scope, vector.
_PUT = """
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[3])
if KEYS[5] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[3], ARGV[6])
  redis.call('HSET', KEYS[5], ARGV[3], ARGV[7])
  if ARGV[2] ~= '0' then redis.call('PEXPIRE', KEYS[5], ARGV[2]) end
end
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  for _, digest in ipairs(redis.call('ZPOPMIN', KEYS[2], over)) do
    if string.len(digest) == 64 then
      redis.call('DEL', ARGV[5] .. 'e:' .. digest)
      local scope = redis.call('HGET', KEYS[4], digest)
      if scope then
        redis.call('HDEL', ARGV[5] .. 'v:' .. scope, digest)
        redis.call('HDEL', KEYS[4], digest)
      end
    end
  end
end
return 1
"""

# KEYS: entry, lru, tick. ARGV: digest.
_GET = """
local data = redis.call('GET', KEYS[1])
if data then
  redis.call('ZADD', KEYS[2], 'XX', redis.call('INCR', KEYS[3]), ARGV[1])
end
return data
"""

# KEYS: vectors, lru, where. ARGV: digest.
_FORGET = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""


def redis_settings(redis: Any) -> tuple[str, str | None]:
    """The URL and namespace to use for ``redis=``: a URL, or any store object exposing
    ``url`` (and ``namespace``), such as the shared ``RedisStore``."""
    if isinstance(redis, str):
        return redis, None
    url = getattr(redis, "url", None)
    if not isinstance(url, str):
        raise TypeError(
            "redis= takes a redis:// URL or a store with a .url (such as RedisStore), "
            f"got {type(redis).__name__}"
        )
    namespace = getattr(redis, "namespace", None)
    return url, namespace if isinstance(namespace, str) else None


class RedisBackend:
    """Entries and vectors on Redis, through redis-py (sync client, and one asyncio client
    per event loop)."""

    def __init__(self, url: str, *, namespace: str, max_entries: int) -> None:
        try:
            import redis as redis_py
        except ImportError as exc:  # pragma: no cover - the extra is part of [all]
            raise ImportError(
                'the Redis cache needs redis-py: pip install "holysheep-integrations[redis]"'
            ) from exc
        self._redis = redis_py
        self.url = url
        self._prefix = f"{namespace}:cache:"
        self._max = max_entries
        self._sync: Any = None
        self._sync_lock = threading.Lock()
        self._async: PerLoop[Any] = PerLoop(self._open_async, _aclose, lambda _c: None)

    def __repr__(self) -> str:
        # The URL may carry a password: name only the namespace.
        return f"RedisBackend(prefix={self._prefix!r})"

    # --- key names --------------------------------------------------------------------

    def _entry(self, digest: str) -> str:
        return f"{self._prefix}e:{digest}"

    def _put_args(
        self, digest: str, data: bytes, scope: str, vector: bytes | None, ttl: float | None
    ) -> tuple[list[str], list[Any]]:
        p = self._prefix
        keys = [self._entry(digest), p + "lru", p + "tick", p + "where"]
        keys.append(p + "v:" + scope if vector is not None else "")
        ttl_ms = 0 if ttl is None else max(1, round(ttl * 1000))
        args = [data, ttl_ms, digest, self._max, p, scope, vector or b""]
        return keys, args

    # --- sync -------------------------------------------------------------------------

    def _client(self) -> Any:
        if self._sync is None:
            with self._sync_lock:  # threads racing to the first call open one pool
                if self._sync is None:
                    client = self._redis.Redis.from_url(self.url)
                    self._scripts = tuple(client.register_script(s) for s in (_GET, _PUT, _FORGET))
                    self._sync = client
        return self._sync

    def get(self, digest: str) -> bytes | None:
        self._client()
        p = self._prefix
        return self._scripts[0](keys=[self._entry(digest), p + "lru", p + "tick"], args=[digest])

    def put(
        self, digest: str, data: bytes, scope: str, vector: bytes | None, ttl: float | None
    ) -> None:
        self._client()
        keys, args = self._put_args(digest, data, scope, vector, ttl)
        self._scripts[1](keys=keys, args=args)

    def vectors(self, scope: str) -> dict[str, bytes]:
        raw = self._client().hgetall(self._prefix + "v:" + scope)
        return {k.decode(): v for k, v in raw.items()}

    def forget(self, scope: str, digest: str) -> None:
        self._client()
        p = self._prefix
        self._scripts[2](keys=[p + "v:" + scope, p + "lru", p + "where"], args=[digest])

    def clear(self) -> None:
        client = self._client()
        for key in client.scan_iter(match=self._prefix + "*", count=1000):
            client.delete(key)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    # --- async ------------------------------------------------------------------------

    def _open_async(self) -> Any:
        client = self._redis.asyncio.Redis.from_url(self.url)
        scripts = tuple(client.register_script(s) for s in (_GET, _PUT, _FORGET))
        return client, scripts

    async def _aclient(self) -> tuple[Any, tuple[Any, ...]]:
        return self._async.current() or await self._async.open()

    async def aget(self, digest: str) -> bytes | None:
        _, scripts = await self._aclient()
        p = self._prefix
        return await scripts[0](keys=[self._entry(digest), p + "lru", p + "tick"], args=[digest])

    async def aput(
        self, digest: str, data: bytes, scope: str, vector: bytes | None, ttl: float | None
    ) -> None:
        _, scripts = await self._aclient()
        keys, args = self._put_args(digest, data, scope, vector, ttl)
        await scripts[1](keys=keys, args=args)

    async def avectors(self, scope: str) -> dict[str, bytes]:
        client, _ = await self._aclient()
        raw = await client.hgetall(self._prefix + "v:" + scope)
        return {k.decode(): v for k, v in raw.items()}

    async def aforget(self, scope: str, digest: str) -> None:
        _, scripts = await self._aclient()
        p = self._prefix
        await scripts[2](keys=[p + "v:" + scope, p + "lru", p + "where"], args=[digest])

    async def aclear(self) -> None:
        client, _ = await self._aclient()
        async for key in client.scan_iter(match=self._prefix + "*", count=1000):
            await client.delete(key)


async def _aclose(pair: tuple[Any, Any]) -> None:
    await pair[0].aclose()
