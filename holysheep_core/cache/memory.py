"""The in-memory backend: an LRU of entries with a size bound and a TTL, and the vectors of
the semantic index beside them. Thread-safe; its async methods never block for long (a few
dictionary operations under one lock, no I/O)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["MemoryBackend"]


class MemoryBackend:
    def __init__(self, *, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        # digest -> (expires at or None, stored bytes, scope); oldest use first.
        self._entries: OrderedDict[str, tuple[float | None, bytes, str]] = OrderedDict()
        self._vectors: dict[str, dict[str, bytes]] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, digest: str) -> bytes | None:
        with self._lock:
            item = self._entries.get(digest)
            if item is None:
                return None
            if item[0] is not None and self._clock() >= item[0]:
                self._drop(digest)
                return None
            self._entries.move_to_end(digest)
            return item[1]

    def put(
        self, digest: str, data: bytes, scope: str, vector: bytes | None, ttl: float | None
    ) -> None:
        expires = None if ttl is None else self._clock() + ttl
        with self._lock:
            if digest in self._entries:
                self._drop(digest)
            self._entries[digest] = (expires, data, scope)
            if vector is not None:
                self._vectors.setdefault(scope, {})[digest] = vector
            while len(self._entries) > self._max:
                self._drop(next(iter(self._entries)))

    def vectors(self, scope: str) -> dict[str, bytes]:
        with self._lock:
            return dict(self._vectors.get(scope, ()))

    def forget(self, scope: str, digest: str) -> None:
        with self._lock:
            self._drop(digest, scope)

    def _drop(self, digest: str, scope: str | None = None) -> None:
        item = self._entries.pop(digest, None)
        scope = item[2] if item is not None else scope
        vectors = self._vectors.get(scope) if scope is not None else None
        if vectors is not None:
            vectors.pop(digest, None)
            if not vectors:
                del self._vectors[scope]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._vectors.clear()

    async def aget(self, digest: str) -> bytes | None:
        return self.get(digest)

    async def aput(
        self, digest: str, data: bytes, scope: str, vector: bytes | None, ttl: float | None
    ) -> None:
        self.put(digest, data, scope, vector, ttl)

    async def avectors(self, scope: str) -> dict[str, bytes]:
        return self.vectors(scope)

    async def aforget(self, scope: str, digest: str) -> None:
        self.forget(scope, digest)

    async def aclear(self) -> None:
        self.clear()
