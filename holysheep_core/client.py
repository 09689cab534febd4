"""``HolySheepClient`` and ``AsyncHolySheepClient``: one pipeline, two thin drivers.

Everything but waiting and sending lives in :class:`_ClientBase` and
:mod:`holysheep_core.pipeline`; each client adds only how to sleep and how to send.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from .accounting import Stats
from .cache.client_cache import ClientCache
from .cache.replay import AsyncCachedChatStream, CachedChatStream
from .chat_stream import AsyncChatStream, ChatStream, _StreamBook
from .config import ClientConfig
from .errors import (
    APIResponseValidationError,
    ConfigurationError,
    HolySheepError,
    InvalidRequestError,
)
from .observer import CallEnd, watch_call
from .params import build_chat_body, build_embeddings_body, encode_json
from .pipeline import Consult, Effect, Pipeline, Plan, Served, Wait
from .policy.budget import Budget, media_parts
from .policy.fallback import check_models, model_chain
from .policy.ratelimit import estimate_tokens
from .record import CallRecord
from .transport.base import AsyncTransport, Reply, Send, SyncTransport
from .types import ChatCompletion, EmbeddingResponse, Model, ModelList, Usage

if TYPE_CHECKING:
    from .policy.redis_store import SharedUsage

__all__ = ["AsyncHolySheepClient", "Health", "HolySheepClient"]

EMBEDDING_BATCH = 512

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    latency: float
    """Seconds the check took."""
    status_code: int | None = None
    error: str | None = None


class _ClientBase:
    def __init__(self, config: ClientConfig | None = None, **settings: Any) -> None:
        if config is not None and settings:
            raise TypeError("pass either config= or settings, not both")
        self.config = config or ClientConfig.resolve(**settings)
        self._pipeline = Pipeline(self.config)
        self._closed = False
        cache = self.config.cache
        self._cache = None if cache is None else ClientCache(cache, self)

    # Read-only views users reach for.
    @property
    def base_url(self) -> str:
        return self.config.base_url

    @property
    def prices(self) -> Any:
        return self._pipeline.prices

    @property
    def ledger(self) -> Any:
        return self._pipeline.ledger

    @property
    def budget(self) -> Budget | None:
        """The client's own budget (``budget_usd=``): ``spent_usd``, ``held_usd``,
        ``remaining_usd``. A cap given as a number lives in the client's policy store."""
        return self._pipeline.policies.budget

    def stats(self) -> Stats:
        """Requests, errors, retries, latency and TTFT quantiles, tokens and cost by model,
        and the state of each circuit breaker."""
        stats = self._pipeline.ledger.snapshot(breakers=self._pipeline.policies.breaker_states())
        if self._cache is not None:
            stats = stats.model_copy(update={"cache": self._cache.stats()})
        return stats

    def shared_stats(self) -> SharedUsage:
        """Requests, tokens and cost by model of every client, in every process, that
        shares this client's policy store (``policy_store=RedisStore(...)``). A few Redis
        reads: a view for dashboards and tests, not for the hot path.

        Raises ``ConfigurationError`` when the store keeps no shared ledger."""
        store = self._pipeline.policies.store
        if not getattr(store, "shares_ledger", False):
            raise ConfigurationError(
                "shared_stats() reads a ledger shared by processes: give the client "
                "policy_store=RedisStore(...); stats() has this client's own"
            )
        return store.shared_usage()  # type: ignore[attr-defined,no-any-return]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.config.base_url!r})"

    # --- building requests (checked before any network call) ------------------------

    def _chat_plan(
        self, model: str, messages: Sequence[Any], params: Mapping[str, Any], stream: bool
    ) -> Plan:
        self._check_open()
        fallbacks = self.config.fallback_models
        if "fallback_models" in params:  # a call option, never part of the wire body
            params = dict(params)
            chosen = params.pop("fallback_models")
            if chosen is not None:
                fallbacks = check_models(chosen)
        body = build_chat_body(
            model, messages, params, stream=stream, include_usage=self.config.include_usage
        )
        send = Send("POST", "/chat/completions", encode_json(body), stream=stream)
        models = model_chain(model, fallbacks) if fallbacks else (model,)

        def resend(other: str) -> Send:
            return replace(send, body=encode_json({**body, "model": other}))

        max_out = body.get("max_completion_tokens") or body.get("max_tokens")
        return Plan(
            send,
            models,
            resend,
            estimate_tokens(send.body),
            max_out,
            body.get("n") or 1,
            media_parts(body["messages"]),
            watch_call("chat", model, self.config, body, stream),
        )

    def _embeddings_plans(
        self, model: str, input: str | list[str], params: Mapping[str, Any], batch_size: int
    ) -> list[tuple[Plan, int]]:
        """One plan per batch, with the number of texts it sends."""
        self._check_open()
        body = build_embeddings_body(model, input, params)  # whole input checked before any batch
        texts = [input] if isinstance(input, str) else input
        if batch_size < 1:
            raise InvalidRequestError("batch_size must be >= 1", param="batch_size")
        batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
        sends = [
            Send("POST", "/embeddings", encode_json(build_embeddings_body(model, b, params)))
            for b in batches
        ]
        watch = watch_call("embeddings", model, self.config, body)
        return [
            (Plan(s, (model,), None, estimate_tokens(s.body), 0, watch=watch), len(b))
            for s, b in zip(sends, batches, strict=True)
        ]

    def _health_flow(self, timeout: float) -> Generator[Send, Any, Health]:
        # One plain attempt: no retry, breaker or limiter between the caller and the answer.
        start = time.monotonic()
        outcome = yield Send("GET", "/models", timeout=timeout)
        latency = time.monotonic() - start
        if isinstance(outcome, HolySheepError):
            return Health(False, latency, None, str(outcome))
        if outcome.ok:
            return Health(True, latency, outcome.status)
        # The body may echo the key (some proxies print the request's headers).
        body = outcome.body.replace(self.config.api_key.get_secret_value().encode(), b"[redacted]")
        return Health(False, latency, outcome.status, body[:200].decode("utf-8", "replace"))

    def _flow_stopped(
        self, record: CallRecord | None, exc: BaseException, sent: int, *, end: bool
    ) -> None:
        """A driver's flow stopped on ``exc`` after ``sent`` attempts went out: count them,
        and end the call (unless its caller does, ``end`` False): failed on our error,
        cancelled when the caller went away with an attempt on the wire (it may be billed)."""
        if record is None:
            if isinstance(exc, HolySheepError):
                self._pipeline.fail(exc)
            return
        record.attempts += sent
        if not end:
            return
        if isinstance(exc, HolySheepError):
            record.failed(exc)
        elif sent:
            record.cancelled()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} is closed")

    # --- after the flow ---------------------------------------------------------------

    def _chat_result(self, served: Served, record: CallRecord) -> ChatCompletion:
        # Booked to the model that answered: a fallback's usage and cost are its own.
        record.served(served)
        try:
            completion = self._pipeline.parse(served.reply, ChatCompletion)
        except HolySheepError as exc:
            exc.attempts = record.attempts
            record.failed(exc, answered=True)  # answered, so maybe billed
            raise
        completion._cost_usd = record.finished(completion.usage, completion.model, completion)
        completion._attempts = record.attempts
        completion._request_id = record.request_id
        completion._served_model = served.model
        return completion

    def _embedding_batch(
        self, served: Served, record: CallRecord, texts: int, billed: list[EmbeddingResponse]
    ) -> EmbeddingResponse:
        """One batch's answer, its policies settled at once and kept in ``billed``: if a
        later batch fails, what this one spent is still known. Raises
        ``APIResponseValidationError`` unless it holds exactly one vector for each of its
        ``texts`` (indices ``0..texts-1``): a vector short or extra would pair every later
        text with the wrong vector."""
        p, guard = self._pipeline, served.guard
        try:
            part = p.parse(served.reply, EmbeddingResponse)
        except HolySheepError:
            if guard is not None:
                p.policies.settle(guard, None, None)  # answered, so maybe billed
            raise
        if guard is not None:
            usage = _embedding_usage(part)
            p.policies.settle(guard, usage, p.cost(record.model, None, usage))
        billed.append(part)  # answered, so billed, whether or not it is usable
        indices = sorted(item.index for item in part.data)
        if indices != list(range(texts)):
            raise APIResponseValidationError(
                f"the server returned {len(part.data)} embeddings (indices {_span(indices)}) "
                f"for {texts} input texts: refused rather than pair texts with wrong vectors",
                request_id=served.reply.request_id,
            )
        return part

    @staticmethod
    def _embeddings_failed(
        record: CallRecord, error: HolySheepError, billed: list[EmbeddingResponse]
    ) -> None:
        # The batches answered before the failure were billed: their usage is booked.
        usage = _embedding_usage(_merge_embeddings(billed)) if billed else None
        error.attempts = record.attempts
        record.failed(error, usage)

    @staticmethod
    def _embeddings_result(parts: list[EmbeddingResponse], record: CallRecord) -> EmbeddingResponse:
        merged = _merge_embeddings(parts)
        record.request_id = parts[-1].request_id
        merged._cost_usd = record.finished(_embedding_usage(merged), merged.model, merged)
        merged._attempts = record.attempts
        return merged


def _span(indices: list[int]) -> str:
    if not indices:
        return "none"
    return f"{indices[0]}..{indices[-1]}" if len(set(indices)) == len(indices) else "repeated"


def _cache_hit_seen(plan: Plan, answer: Any) -> Any:
    """A response-cache hit made no request, so no call record ends its telemetry: end it
    here (a miss is ended by its record)."""
    watch = plan.watch
    if watch is None:
        return answer
    if isinstance(answer, (CachedChatStream, AsyncCachedChatStream)):
        watch.finished(CallEnd(plan.models[0], None, None, 0, cache_hit=True))
    elif getattr(answer, "cache_hit", False):
        served = answer.served_model or plan.models[0]
        watch.finished(
            CallEnd(served, answer.usage, answer.cost_usd, 0, answer, answer.id, cache_hit=True)
        )
    return answer


def _embedding_usage(response: EmbeddingResponse) -> Usage | None:
    u = response.usage
    return None if u is None else Usage(prompt_tokens=u.prompt_tokens, total_tokens=u.total_tokens)


def _merge_embeddings(parts: list[EmbeddingResponse]) -> EmbeddingResponse:
    if len(parts) == 1:
        return parts[0]
    data, offset, prompt, total = [], 0, 0, 0
    for part in parts:
        for item in sorted(part.data, key=lambda e: e.index):
            data.append(item.model_copy(update={"index": offset + item.index}))
        offset += len(part.data)
        if part.usage is not None:
            prompt += part.usage.prompt_tokens
            total += part.usage.total_tokens
    first = parts[0]
    return first.model_copy(
        update={
            "data": data,
            "usage": first.usage.model_copy(update={"prompt_tokens": prompt, "total_tokens": total})
            if first.usage is not None
            else None,
        }
    )


class HolySheepClient(_ClientBase):
    """Sync client with one pooled, thread-safe connection pool.

    Args: ``api_key`` (else ``HOLYSHEEP_API_KEY``), ``base_url`` (else
    ``HOLYSHEEP_BASE_URL``, else the public endpoint), ``timeout``, ``max_retries``, and any
    other :class:`ClientConfig` field; or a whole ``config=``.

    Raises: ``ConfigurationError`` for a missing or malformed key, before any request.
    """

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        transport: SyncTransport | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(config, **settings)
        if transport is None:
            # Imported on first use: importing the package stays cheap for apps (and
            # framework adapters) that never build a sync client.
            from .transport.httpx_backend import HttpxTransport

            transport = HttpxTransport(self.config)
        self._transport = transport

    def _run(
        self, flow: Generator[Effect, Any, T], record: CallRecord | None = None, *, end: bool = True
    ) -> T:
        """Drive ``flow``; a failure ends ``record`` (unless ``end`` is False: the caller
        ends it), and a caller going away with an attempt on the wire cancels it."""
        sent = 0
        try:
            action = next(flow)
            while True:
                if isinstance(action, Wait):
                    time.sleep(action.seconds)
                    action = next(flow)
                    continue
                if isinstance(action, Consult):
                    action = flow.send(action.store.apply(action.op))
                    continue
                sent += 1
                try:
                    outcome: Reply | HolySheepError = self._transport.send(action)
                except HolySheepError as exc:
                    outcome = exc
                action = flow.send(outcome)
        except StopIteration as stop:
            if record is not None:
                record.attempts += sent
            return stop.value
        except BaseException as exc:
            self._flow_stopped(record, exc, sent, end=end)
            raise
        finally:
            # Stopped mid-flow (cancelled, interrupted): the flow gives back what it holds.
            flow.close()

    def chat_completion(
        self, *, model: str, messages: Sequence[Any], **params: Any
    ) -> ChatCompletion:
        """One chat completion. ``params`` are wire parameters (temperature, tools, ...).

        Raises: ``InvalidRequestError`` before the network for bad arguments; an
        ``APIStatusError`` subclass, ``APIConnectionError`` or ``APITimeoutError`` once
        retries are spent.
        """
        plan = self._chat_plan(model, messages, params, stream=False)
        if self._cache is not None:  # a hit never enters the request flow
            return _cache_hit_seen(plan, self._cache.complete(plan, lambda: self._complete(plan)))
        return self._complete(plan)

    def _complete(self, plan: Plan) -> ChatCompletion:
        record = self._pipeline.record(plan.models[0], watch=plan.watch)
        return self._chat_result(self._run(self._pipeline.call(plan), record), record)

    def stream_chat_completion(
        self, *, model: str, messages: Sequence[Any], **params: Any
    ) -> ChatStream:
        """A streamed chat completion. Errors before the first byte are retried and raised
        here; after it, a failure raises ``StreamError`` from the iteration."""
        plan = self._chat_plan(model, messages, params, stream=True)
        if self._cache is not None:  # a hit replays as a stream, usage chunk included
            return _cache_hit_seen(plan, self._cache.stream(plan, lambda: self._stream(plan)))
        return self._stream(plan)

    def _stream(self, plan: Plan) -> ChatStream:
        record = self._pipeline.record(plan.models[0], stream=True, watch=plan.watch)
        served = self._run(self._pipeline.call(plan), record)
        record.served(served)
        return ChatStream(_StreamBook(record, served.reply))

    def embeddings(
        self,
        *,
        model: str,
        input: str | list[str],
        batch_size: int = EMBEDDING_BATCH,
        **params: Any,
    ) -> EmbeddingResponse:
        """Embeddings for one text or many; long lists go out in ``batch_size`` requests."""
        plans = self._embeddings_plans(model, input, params, batch_size)
        record = self._pipeline.record(model, watch=plans[0][0].watch)
        billed: list[EmbeddingResponse] = []  # in order: the batches go one after another
        try:
            for plan, texts in plans:
                served = self._run(self._pipeline.call(plan), record, end=False)
                self._embedding_batch(served, record, texts, billed)
        except HolySheepError as exc:
            self._embeddings_failed(record, exc, billed)
            raise
        return self._embeddings_result(billed, record)

    def models(self) -> list[Model]:
        self._check_open()
        reply, _ = self._run(self._pipeline.attempts(Send("GET", "/models"), model="-"))
        try:
            return self._pipeline.parse(reply, ModelList).data
        except HolySheepError as exc:
            self._pipeline.fail(exc)
            raise

    def health_check(self, timeout: float = 5.0) -> Health:
        """Whether the API answers ``GET /models`` with this key within ``timeout`` seconds
        (the whole check, however slowly the server answers). Never raises."""
        return self._run(self._health_flow(timeout))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._transport.close()

    def __enter__(self) -> HolySheepClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncHolySheepClient(_ClientBase):
    """Async client. The default transport is aiohttp (``async_backend="aiohttp"``);
    ``async_backend="httpx"`` uses httpx. Safe to share across tasks, and across event
    loops (one pool per loop)."""

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        transport: AsyncTransport | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(config, **settings)
        if transport is None:
            # Only the chosen backend is imported, and only when a client needs it.
            if self.config.async_backend == "aiohttp":
                from .transport.aiohttp_backend import AiohttpTransport

                transport = AiohttpTransport(self.config)
            else:
                from .transport.httpx_backend import AsyncHttpxTransport

                transport = AsyncHttpxTransport(self.config)
        self._transport = transport

    async def _run(
        self, flow: Generator[Effect, Any, T], record: CallRecord | None = None, *, end: bool = True
    ) -> T:
        """Drive ``flow``; a failure ends ``record`` (unless ``end`` is False: the caller
        ends it), and a caller going away with an attempt on the wire cancels it."""
        sent = 0
        try:
            action = next(flow)
            while True:
                if isinstance(action, Wait):
                    await asyncio.sleep(action.seconds)
                    action = next(flow)
                    continue
                if isinstance(action, Consult):
                    action = flow.send(await action.store.apply_async(action.op))
                    continue
                sent += 1
                try:
                    outcome: Reply | HolySheepError = await self._transport.send(action)
                except HolySheepError as exc:
                    outcome = exc
                action = flow.send(outcome)
        except StopIteration as stop:
            if record is not None:
                record.attempts += sent
            return stop.value
        except BaseException as exc:
            self._flow_stopped(record, exc, sent, end=end)
            raise
        finally:
            # Stopped mid-flow (cancelled, interrupted): the flow gives back what it holds.
            flow.close()

    async def chat_completion(
        self, *, model: str, messages: Sequence[Any], **params: Any
    ) -> ChatCompletion:
        """Async twin of :meth:`HolySheepClient.chat_completion`."""
        plan = self._chat_plan(model, messages, params, stream=False)
        if self._cache is not None:  # a hit never enters the request flow
            answer = await self._cache.acomplete(plan, lambda: self._complete(plan))
            return _cache_hit_seen(plan, answer)
        return await self._complete(plan)

    async def _complete(self, plan: Plan) -> ChatCompletion:
        record = self._pipeline.record(plan.models[0], watch=plan.watch)
        return self._chat_result(await self._run(self._pipeline.call(plan), record), record)

    async def stream_chat_completion(
        self, *, model: str, messages: Sequence[Any], **params: Any
    ) -> AsyncChatStream:
        """Async twin of :meth:`HolySheepClient.stream_chat_completion`:
        ``async with await client.stream_chat_completion(...) as stream: async for ...``."""
        plan = self._chat_plan(model, messages, params, stream=True)
        if self._cache is not None:  # a hit replays as a stream, usage chunk included
            return _cache_hit_seen(
                plan, await self._cache.astream(plan, lambda: self._stream(plan))
            )
        return await self._stream(plan)

    async def _stream(self, plan: Plan) -> AsyncChatStream:
        record = self._pipeline.record(plan.models[0], stream=True, watch=plan.watch)
        served = await self._run(self._pipeline.call(plan), record)
        record.served(served)
        return AsyncChatStream(_StreamBook(record, served.reply))

    async def embeddings(
        self,
        *,
        model: str,
        input: str | list[str],
        batch_size: int = EMBEDDING_BATCH,
        **params: Any,
    ) -> EmbeddingResponse:
        """Async twin of :meth:`HolySheepClient.embeddings`; batches go out concurrently."""
        plans = self._embeddings_plans(model, input, params, batch_size)
        record = self._pipeline.record(model, watch=plans[0][0].watch)
        billed: list[EmbeddingResponse] = []

        # A task group, not gather: when one batch fails the others are cancelled instead of
        # running on unobserved.
        async def batch(plan: Plan, texts: int) -> EmbeddingResponse:
            served = await self._run(self._pipeline.call(plan), record, end=False)
            return self._embedding_batch(served, record, texts, billed)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(batch(p, n)) for p, n in plans]
        except BaseExceptionGroup as eg:
            first = eg.exceptions[0]
            if isinstance(first, HolySheepError):
                self._embeddings_failed(record, first, billed)
            raise first from None
        return self._embeddings_result([t.result() for t in tasks], record)

    async def models(self) -> list[Model]:
        self._check_open()
        reply, _ = await self._run(self._pipeline.attempts(Send("GET", "/models"), model="-"))
        try:
            return self._pipeline.parse(reply, ModelList).data
        except HolySheepError as exc:
            self._pipeline.fail(exc)
            raise

    async def health_check(self, timeout: float = 5.0) -> Health:
        """Async twin of :meth:`HolySheepClient.health_check`. Never raises."""
        return await self._run(self._health_flow(timeout))

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._transport.aclose()

    close = aclose  # the name the sync client and the openai SDK use

    async def __aenter__(self) -> AsyncHolySheepClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
