"""``ResponseCache``: the settings and storage of a response cache, shared by any number of
clients (``HolySheepClient(cache=ResponseCache(...))``)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..accounting import TokenUsage
from ..errors import ConfigurationError
from .memory import MemoryBackend
from .redis import RedisBackend, redis_settings
from .singleflight import AsyncFlights, Flights

__all__ = ["DEFAULT_SIMILARITY_THRESHOLD", "CacheHit", "ResponseCache"]

DEFAULT_SIMILARITY_THRESHOLD = 0.95
"""Chosen from the labelled pairs in ``benchmarks/data`` (README, "Response cache")."""

_NAMESPACE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


@dataclass(frozen=True, slots=True)
class CacheHit:
    """Handed to ``on_hit`` hooks: a call answered without a request."""

    model: str
    kind: str
    """``"exact"``, ``"semantic"`` (a similar prompt's answer) or ``"shared"`` (the answer
    of an identical call in flight at the same time)."""
    similarity: float | None
    """Cosine similarity of a semantic hit's prompt to the cached one."""
    saved_usd: Decimal | None
    """What the call would have cost at the client's prices; None when unpriced."""
    usage: TokenUsage
    """The tokens the cached answer took when it was made (not billed again)."""
    stream: bool


class ResponseCache:
    """An opt-in cache of chat answers, exact and (on request) semantic.

    Args:
        redis: None keeps entries in this process (an LRU); a ``redis://`` URL, or a store
            object with a ``url`` (and ``namespace``) such as the shared ``RedisStore``,
            keeps them on Redis for every process that names the same namespace.
        namespace: what separates caches on one Redis (default: the store's, else
            ``"holysheep"``). Answers never cross namespaces.
        ttl: seconds an entry lives; None = until evicted.
        max_entries: the size bound (least recently used entries go first); on Redis it
            holds for the namespace across processes.
        semantic: also answer from the nearest cached prompt whose embedding's cosine
            similarity is at least ``similarity_threshold``, within the same model, system
            prompt, earlier turns, tools and parameters, never after a tool result. Each
            cacheable miss then costs one embedding request.
        similarity_threshold: see ``semantic``; the default is chosen in the README.
        embedding_model: the model the client embeds prompts with.
        cache_sampled: also cache requests that ask for random answers (temperature > 0
            without a seed, ``n > 1``), which are otherwise sent every time.
        on_hit: callables given a :class:`CacheHit` for every hit.
        redis_timeout: seconds a Redis connect or reply may take; past it the call goes on
            uncached (a stalled Redis must not stall the calls it was meant to speed up).
        clock: seconds, for the in-memory TTL (tests inject one); Redis expires by its own.

    Raises: ``ConfigurationError`` for settings that cannot work, before any request.
    """

    def __init__(
        self,
        *,
        redis: Any = None,
        namespace: str | None = None,
        ttl: float | None = 3600.0,
        max_entries: int = 10_000,
        semantic: bool = False,
        similarity_threshold: float = DEFAULT_SIMILARITY_THRESHOLD,
        embedding_model: str = "text-embedding-3-small",
        cache_sampled: bool = False,
        on_hit: Callable[[CacheHit], None] | Iterable[Callable[[CacheHit], None]] = (),
        redis_timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl is not None and (isinstance(ttl, bool) or not ttl > 0):
            raise ConfigurationError(f"ttl must be a positive number of seconds or None: {ttl!r}")
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigurationError(f"max_entries must be a positive integer: {max_entries!r}")
        if isinstance(similarity_threshold, bool) or not 0 < similarity_threshold <= 1:
            raise ConfigurationError(
                f"similarity_threshold must be in (0, 1]: {similarity_threshold!r}"
            )
        if isinstance(redis_timeout, bool) or not redis_timeout > 0:
            raise ConfigurationError(f"redis_timeout must be positive seconds: {redis_timeout!r}")
        if not isinstance(embedding_model, str) or not embedding_model:
            raise ConfigurationError("embedding_model must be a model name")
        url = store_namespace = None
        if redis is not None:
            try:
                url, store_namespace = redis_settings(redis)
            except TypeError as exc:
                raise ConfigurationError(str(exc)) from None
            if not url.startswith(("redis://", "rediss://", "unix://")):
                raise ConfigurationError("redis= must be a redis://, rediss:// or unix:// URL")
        namespace = namespace or store_namespace or "holysheep"
        if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
            raise ConfigurationError(
                f"namespace must be 1-100 letters, digits or _.:- characters: {namespace!r}"
            )
        self.namespace = namespace
        self.ttl = None if ttl is None else float(ttl)
        self.max_entries = max_entries
        self.semantic = bool(semantic)
        self.similarity_threshold = float(similarity_threshold)
        self.embedding_model = embedding_model
        self.cache_sampled = bool(cache_sampled)
        self.on_hit = (on_hit,) if callable(on_hit) else tuple(on_hit)
        self.backend: MemoryBackend | RedisBackend = (
            MemoryBackend(max_entries=max_entries, clock=clock)
            if url is None
            else RedisBackend(
                url, namespace=namespace, max_entries=max_entries, timeout=float(redis_timeout)
            )
        )
        self.flights = Flights()
        self.async_flights = AsyncFlights()

    def __repr__(self) -> str:
        where = "memory" if isinstance(self.backend, MemoryBackend) else "redis"
        return (
            f"ResponseCache({where}, namespace={self.namespace!r}, ttl={self.ttl}, "
            f"max_entries={self.max_entries}, semantic={self.semantic})"
        )

    # A cache is a shared resource, like a connection pool: copies of the objects that hold
    # it (a deep-copied LangChain model, say) keep using it rather than fail or fork it.
    def __copy__(self) -> ResponseCache:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ResponseCache:
        return self

    def clear(self) -> None:
        """Drop every entry of this cache (on Redis: of its namespace)."""
        self.backend.clear()

    async def aclear(self) -> None:
        await self.backend.aclear()

    def close(self) -> None:
        """Release the sync Redis connections (async ones close with their event loop)."""
        if isinstance(self.backend, RedisBackend):
            self.backend.close()
