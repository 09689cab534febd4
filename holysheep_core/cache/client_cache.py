"""How a client uses its ``ResponseCache``: look up before the request flow, store after a
success, count what happened. The only place the clients touch the cache.

A lookup tries the exact key, then (semantic caches) the nearest prompt of the same scope.
Non-streamed misses go out through a single flight, so identical calls in flight together
send one request. A hit is not a request: no budget, rate limit, breaker or ledger entry,
only ``stats().cache`` and the ``on_hit`` hooks.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..accounting import CacheStats, TokenUsage
from ..errors import HolySheepError
from ..hooks import logger, run_hooks
from ..types import ChatCompletion
from .entries import Entry, replay_chunks
from .keys import RequestKey, is_sampled, request_key, same_specifics
from .replay import AsyncCachedChatStream, AsyncRecordingStream, CachedChatStream, RecordingStream
from .response_cache import CacheHit, ResponseCache
from .semantic import nearest, pack

__all__ = ["ClientCache"]


@dataclass(slots=True)
class _Lookup:
    key: RequestKey
    vector: bytes | None = None
    """The prompt's embedding, computed once per call and stored with a miss's answer."""


@dataclass(slots=True)
class _Found:
    completion: ChatCompletion
    kind: str
    similarity: float | None = None


class ClientCache:
    """One client's view of a cache, and its counters."""

    def __init__(self, cache: ResponseCache, client: Any) -> None:
        self.cache = cache
        self._client = client
        self._lock = threading.Lock()
        self._counts = {"hits": 0, "semantic_hits": 0, "misses": 0, "skipped": 0, "errors": 0}
        self._counts_unpriced = 0
        self._saved = Decimal(0)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                **self._counts, saved_usd=self._saved, unpriced_hits=self._counts_unpriced
            )

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    # --- pure steps -----------------------------------------------------------------

    def _key(self, plan: Any) -> RequestKey | None:
        body = json.loads(plan.send.body)
        if is_sampled(body) and not self.cache.cache_sampled:
            self._count("skipped")
            return None
        return request_key(body, semantic=self.cache.semantic)

    def _semantic(self, key: RequestKey) -> bool:
        return self.cache.semantic and key.prompt is not None

    def _entry(
        self, data: bytes | None, key: RequestKey, *, near: bool = False
    ) -> ChatCompletion | None:
        entry = None if data is None else Entry.loads(data)
        # The digest already names the model; checking it again costs nothing and keeps a
        # corrupted or foreign entry from answering another model.
        if entry is None or entry.model != key.model:
            return None
        if near and not (
            entry.scope == key.scope
            and entry.prompt is not None
            and key.prompt is not None
            and same_specifics(entry.prompt, key.prompt)
        ):
            return None
        return entry.answer()

    def _record(self, key: RequestKey, completion: ChatCompletion) -> bytes | None:
        """What to store for a miss's answer; None when a fallback model served it (reused,
        it would answer for a model that did not write it)."""
        if completion.served_model not in (None, key.model) or completion.cache_hit:
            return None
        wire = completion.model_dump(mode="json", exclude_none=True)
        return Entry(wire, key.model, key.scope, key.prompt).dumps()

    def _answer(
        self, key: RequestKey, completion: ChatCompletion, found: _Found | None, shared: bool
    ) -> ChatCompletion:
        """A single flight's outcome for one caller: the leader's miss, or a hit."""
        if found is None and not shared:
            self._count("misses")
            return completion
        served = completion.served_model or key.model  # a fallback's, when it answered
        if shared:  # the leader's object: each caller gets its own copy
            completion = ChatCompletion.model_validate(completion.model_dump())
        kind = "shared" if found is None else found.kind
        similarity = None if found is None else found.similarity
        return self._hit(_Found(completion, kind, similarity), key, stream=False, served=served)

    def _hit(
        self, found: _Found, key: RequestKey, *, stream: bool, served: str | None = None
    ) -> ChatCompletion:
        completion = found.completion  # this caller's own object
        completion._cost_usd = Decimal(0)
        completion._attempts = 0
        completion._served_model = served or key.model
        completion._cache_hit = True
        saved = self._client.prices.cost(completion.served_model, completion.usage)
        with self._lock:
            self._counts["hits"] += 1
            if found.kind == "semantic":
                self._counts["semantic_hits"] += 1
            if saved is None:
                self._counts_unpriced += 1
            else:
                self._saved += saved
        run_hooks(
            self.cache.on_hit,
            CacheHit(
                model=key.model,
                kind=found.kind,
                similarity=found.similarity,
                saved_usd=saved,
                usage=TokenUsage.from_usage(completion.usage, saved),
                stream=stream,
            ),
        )
        return completion

    def _replay(self, completion: ChatCompletion, plan: Any) -> list[Any]:
        body = json.loads(plan.send.body)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = replay_chunks(completion, include_usage=include_usage)
        for chunk in chunks:
            chunk._cache_hit = True
            chunk._cost_usd = Decimal(0) if chunk.usage is not None else None
        return chunks

    def _failed(self, what: str, exc: BaseException) -> None:
        # The cache must never fail a call: it goes on as a miss, loudly.
        self._count("errors")
        logger.warning(
            "response cache %s failed (%s: %s); going on without it", what, type(exc).__name__, exc
        )

    # --- the lookup, written once: a generator of backend operations -----------------

    def _lookup(self, look: _Lookup) -> Generator[tuple[Any, ...], Any, _Found | None]:
        """Exact key first, then (semantic caches) the nearest prompt of the same scope.
        Yields ``(operation, *args)``: a backend method's name, or ``"embed"``; each
        driver below carries them out, sync or async."""
        key = look.key
        completion = self._entry((yield ("get", key.exact)), key)
        if completion is not None:
            return _Found(completion, "exact")
        if not self._semantic(key):
            return None
        if look.vector is None:
            look.vector = yield ("embed", key.prompt)
        if look.vector is None:
            return None
        best = nearest(look.vector, (yield ("vectors", key.scope)))
        if best is None or best[1] < self.cache.similarity_threshold:
            return None
        data = yield ("get", best[0])
        if data is None:  # expired: its vector goes too
            yield ("forget", key.scope, best[0])
            return None
        completion = self._entry(data, key, near=True)
        return None if completion is None else _Found(completion, "semantic", best[1])

    # --- sync -----------------------------------------------------------------------

    def _find(self, look: _Lookup) -> _Found | None:
        flow = self._lookup(look)
        try:
            op = next(flow)
            while True:
                name, *args = op
                done = (
                    self._embed(*args)
                    if name == "embed"
                    else (getattr(self.cache.backend, name)(*args))
                )
                op = flow.send(done)
        except StopIteration as stop:
            return stop.value
        except Exception as exc:
            self._failed("lookup", exc)
            return None

    def _embed(self, prompt: str | None) -> bytes | None:
        try:
            reply = self._client.embeddings(model=self.cache.embedding_model, input=prompt)
            return pack(reply.data[0].embedding)
        except HolySheepError as exc:
            self._failed("embedding", exc)
            return None

    def _store(self, look: _Lookup, completion: ChatCompletion) -> None:
        data = self._record(look.key, completion)
        if data is None:
            return
        try:
            self.cache.backend.put(
                look.key.exact, data, look.key.scope, look.vector, self.cache.ttl
            )
        except Exception as exc:
            self._failed("store", exc)

    def complete(self, plan: Any, fetch: Callable[[], ChatCompletion]) -> ChatCompletion:
        key = self._key(plan)
        if key is None:
            return fetch()
        look = _Lookup(key)

        def lead() -> tuple[ChatCompletion, _Found | None]:
            found = self._find(look)
            if found is not None:
                return found.completion, found
            completion = fetch()
            self._store(look, completion)
            return completion, None

        (completion, found), shared = self.cache.flights.run(key.exact, lead)
        return self._answer(key, completion, found, shared)

    def stream(self, plan: Any, fetch: Callable[[], Any]) -> Any:
        key = self._key(plan)
        if key is None:
            return fetch()
        look = _Lookup(key)
        found = self._find(look)
        if found is not None:
            return CachedChatStream(self._replay(self._hit(found, key, stream=True), plan))
        self._count("misses")
        return RecordingStream(fetch(), lambda completion: self._store(look, completion))

    # --- async ----------------------------------------------------------------------

    async def _afind(self, look: _Lookup) -> _Found | None:
        flow = self._lookup(look)
        try:
            op = next(flow)
            while True:
                name, *args = op
                done = await (
                    self._aembed(*args)
                    if name == "embed"
                    else getattr(self.cache.backend, "a" + name)(*args)
                )
                op = flow.send(done)
        except StopIteration as stop:
            return stop.value
        except Exception as exc:
            self._failed("lookup", exc)
            return None

    async def _aembed(self, prompt: str | None) -> bytes | None:
        try:
            reply = await self._client.embeddings(model=self.cache.embedding_model, input=prompt)
            return pack(reply.data[0].embedding)
        except HolySheepError as exc:
            self._failed("embedding", exc)
            return None

    async def _astore(self, look: _Lookup, completion: ChatCompletion) -> None:
        data = self._record(look.key, completion)
        if data is None:
            return
        try:
            await self.cache.backend.aput(
                look.key.exact, data, look.key.scope, look.vector, self.cache.ttl
            )
        except Exception as exc:
            self._failed("store", exc)

    async def acomplete(
        self, plan: Any, fetch: Callable[[], Awaitable[ChatCompletion]]
    ) -> ChatCompletion:
        key = self._key(plan)
        if key is None:
            return await fetch()
        look = _Lookup(key)

        async def lead() -> tuple[ChatCompletion, _Found | None]:
            found = await self._afind(look)
            if found is not None:
                return found.completion, found
            completion = await fetch()
            await self._astore(look, completion)
            return completion, None

        (completion, found), shared = await self.cache.async_flights.run(key.exact, lead)
        return self._answer(key, completion, found, shared)

    async def astream(self, plan: Any, fetch: Callable[[], Awaitable[Any]]) -> Any:
        key = self._key(plan)
        if key is None:
            return await fetch()
        look = _Lookup(key)
        found = await self._afind(look)
        if found is not None:
            return AsyncCachedChatStream(self._replay(self._hit(found, key, stream=True), plan))
        self._count("misses")
        return AsyncRecordingStream(
            await fetch(), lambda completion: self._astore(look, completion)
        )
