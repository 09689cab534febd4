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
    ``sv:{scope}``  the index's version (a ``tick``), changed by every write to it: a
                    process keeps a copy of the vectors and reads them again only when
                    the version moved
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from ..transport.per_loop import PerLoop

__all__ = ["RedisBackend", "redis_settings"]

# KEYS: entry, lru, tick, where, vectors ("" when none), scope version ("" when none).
# ARGV: data, ttl ms (0 = none), digest, max entries, key prefix, scope, vector.
# Returns {the scope's version before, after} (nil, nil without a vector; before = nil
# when an eviction also changed this scope), so a process can update its copy in place.
_PUT = """
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[3])
local before, after = false, false
if KEYS[5] ~= '' then
  before = redis.call('GET', KEYS[6])
  redis.call('HSET', KEYS[4], ARGV[3], ARGV[6])
  redis.call('HSET', KEYS[5], ARGV[3], ARGV[7])
  after = redis.call('INCR', KEYS[3])
  if ARGV[2] == '0' then
    redis.call('SET', KEYS[6], after)
  else
    redis.call('PEXPIRE', KEYS[5], ARGV[2])
    redis.call('SET', KEYS[6], after, 'PX', ARGV[2])
  end
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
        redis.call('SET', ARGV[5] .. 'sv:' .. scope, redis.call('INCR', KEYS[3]), 'KEEPTTL')
        if scope == ARGV[6] then before = false end
      end
    end
  end
end
return {before, after}
"""

# KEYS: entry, lru, tick. ARGV: digest.
_GET = """
local data = redis.call('GET', KEYS[1])
if data then
  redis.call('ZADD', KEYS[2], 'XX', redis.call('INCR', KEYS[3]), ARGV[1])
end
return data
"""

# KEYS: vectors, scope version. ARGV: the version this process holds ("" for none).
# Returns {version} when it is unchanged, else {version, HGETALL}.
_VECTORS = """
local version = redis.call('GET', KEYS[2])
if version and version == ARGV[1] then return {version} end
return {version, redis.call('HGETALL', KEYS[1])}
"""

# KEYS: vectors, lru, where, scope version, tick. ARGV: digest.
_FORGET = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('SET', KEYS[4], redis.call('INCR', KEYS[5]), 'KEEPTTL')
end
return 1
"""

_SCRIPTS = (_GET, _PUT, _FORGET, _VECTORS)


def _version(raw: Any) -> int | None:
    return None if raw is None else int(raw)


class _Snapshots:
    """This process's copy of scopes' vectors, each with the version Redis gave it, so a
    semantic lookup reads the vectors again only when another write changed them. Holds
    at most ``limit`` vectors in all (least recently used scopes go first)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._scopes: OrderedDict[str, tuple[int, dict[str, bytes]]] = OrderedDict()
        self._held = 0

    def known(self, scope: str) -> str:
        with self._lock:
            snap = self._scopes.get(scope)
            return "" if snap is None else str(snap[0])

    def read(self, scope: str, reply: list[Any]) -> dict[str, bytes]:
        """The scope's vectors from a ``_VECTORS`` reply."""
        version = _version(reply[0])
        with self._lock:
            if len(reply) == 1:
                snap = self._scopes.get(scope)
                if snap is not None and snap[0] == version:
                    self._scopes.move_to_end(scope)
                    return snap[1]
                return {}
        flat = reply[1]
        vectors = {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}
        if version is not None:
            self._keep(scope, version, vectors)
        return vectors

    def wrote(self, scope: str, digest: str, vector: bytes, reply: list[Any]) -> None:
        """After a put: add our own vector in place if nothing else changed the scope."""
        before, after = _version(reply[0]), _version(reply[1])
        with self._lock:
            snap = self._scopes.get(scope)
        if snap is not None and after is not None and before == snap[0]:
            self._keep(scope, after, {**snap[1], digest: vector})
        else:
            self.drop(scope)

    def drop(self, scope: str) -> None:
        with self._lock:
            snap = self._scopes.pop(scope, None)
            if snap is not None:
                self._held -= len(snap[1])

    def clear(self) -> None:
        with self._lock:
            self._scopes.clear()
            self._held = 0

    def _keep(self, scope: str, version: int, vectors: dict[str, bytes]) -> None:
        with self._lock:
            old = self._scopes.pop(scope, None)
            if old is not None:
                self._held -= len(old[1])
            if len(vectors) > self._limit:
                return
            self._scopes[scope] = (version, vectors)
            self._held += len(vectors)
            while self._held > self._limit:
                _, (_, gone) = self._scopes.popitem(last=False)
                self._held -= len(gone)


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

    def __init__(self, url: str, *, namespace: str, max_entries: int, timeout: float = 2.0) -> None:
        try:
            import redis as redis_py
        except ImportError as exc:  # pragma: no cover - the extra is part of [all]
            raise ImportError(
                'the Redis cache needs redis-py: pip install "holysheep-integrations[redis]"'
            ) from exc
        self._redis = redis_py
        self.url = url
        self._timeouts = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        self._prefix = f"{namespace}:cache:"
        self._max = max_entries
        self._snapshots = _Snapshots(max_entries)
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
        keys += [p + "v:" + scope, p + "sv:" + scope] if vector is not None else ["", ""]
        ttl_ms = 0 if ttl is None else max(1, round(ttl * 1000))
        args = [data, ttl_ms, digest, self._max, p, scope, vector or b""]
        return keys, args

    # --- sync -------------------------------------------------------------------------

    def _client(self) -> Any:
        if self._sync is None:
            with self._sync_lock:  # threads racing to the first call open one pool
                if self._sync is None:
                    client = self._redis.Redis.from_url(self.url, **self._timeouts)
                    self._scripts = tuple(client.register_script(s) for s in _SCRIPTS)
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
        reply = self._scripts[1](keys=keys, args=args)
        if vector is not None:
            self._snapshots.wrote(scope, digest, vector, reply)

    def _vector_keys(self, scope: str) -> list[str]:
        return [self._prefix + "v:" + scope, self._prefix + "sv:" + scope]

    def vectors(self, scope: str) -> dict[str, bytes]:
        self._client()
        known = self._snapshots.known(scope)
        reply = self._scripts[3](keys=self._vector_keys(scope), args=[known])
        return self._snapshots.read(scope, reply)

    def _forget_keys(self, scope: str) -> list[str]:
        p = self._prefix
        return [p + "v:" + scope, p + "lru", p + "where", p + "sv:" + scope, p + "tick"]

    def forget(self, scope: str, digest: str) -> None:
        self._client()
        self._snapshots.drop(scope)
        self._scripts[2](keys=self._forget_keys(scope), args=[digest])

    def clear(self) -> None:
        self._snapshots.clear()
        client = self._client()
        for key in client.scan_iter(match=self._prefix + "*", count=1000):
            client.delete(key)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    # --- async ------------------------------------------------------------------------

    def _open_async(self) -> Any:
        client = self._redis.asyncio.Redis.from_url(self.url, **self._timeouts)
        scripts = tuple(client.register_script(s) for s in _SCRIPTS)
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
        reply = await scripts[1](keys=keys, args=args)
        if vector is not None:
            self._snapshots.wrote(scope, digest, vector, reply)

    async def avectors(self, scope: str) -> dict[str, bytes]:
        _, scripts = await self._aclient()
        known = self._snapshots.known(scope)
        reply = await scripts[3](keys=self._vector_keys(scope), args=[known])
        return self._snapshots.read(scope, reply)

    async def aforget(self, scope: str, digest: str) -> None:
        _, scripts = await self._aclient()
        self._snapshots.drop(scope)
        await scripts[2](keys=self._forget_keys(scope), args=[digest])

    async def aclear(self) -> None:
        self._snapshots.clear()
        client, _ = await self._aclient()
        async for key in client.scan_iter(match=self._prefix + "*", count=1000):
            await client.delete(key)


async def _aclose(pair: tuple[Any, Any]) -> None:
    await pair[0].aclose()
