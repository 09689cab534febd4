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

from .accounting import Stats, TokenUsage
from .config import ClientConfig
from .errors import ConfigurationError, HolySheepError, InvalidRequestError
from .params import build_chat_body, build_embeddings_body, encode_json
from .pipeline import Consult, Effect, Pipeline, Plan, Served, Wait
from .policy.budget import Budget, media_parts
from .policy.fallback import check_models, model_chain
from .policy.ratelimit import estimate_tokens
from .streams import AsyncChatStream, ChatStream, _StreamBook
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
        return self._pipeline.ledger.snapshot(breakers=self._pipeline.policies.breaker_states())

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
        )

    def _embeddings_plans(
        self, model: str, input: str | list[str], params: Mapping[str, Any], batch_size: int
    ) -> list[Plan]:
        self._check_open()
        build_embeddings_body(model, input, params)  # whole input checked before any batch
        texts = [input] if isinstance(input, str) else input
        if batch_size < 1:
            raise InvalidRequestError("batch_size must be >= 1", param="batch_size")
        sends = [
            Send(
                "POST",
                "/embeddings",
                encode_json(build_embeddings_body(model, texts[i : i + batch_size], params)),
            )
            for i in range(0, len(texts), batch_size)
        ]
        return [Plan(s, (model,), None, estimate_tokens(s.body), 0) for s in sends]

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

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} is closed")

    # --- after the flow ---------------------------------------------------------------

    def _chat_result(self, served: Served, started: float) -> ChatCompletion:
        # Booked to the model that answered: a fallback's usage and cost are its own.
        p = self._pipeline
        reply, attempts = served.reply, served.attempts
        completion = p.parse(reply, ChatCompletion, attempts=attempts, guard=served.guard)
        completion._cost_usd = p.book(
            served.model,
            completion.model,
            completion.usage,
            started=started,
            attempts=attempts,
            request_id=reply.request_id,
            guard=served.guard,
        )
        completion._attempts = attempts
        completion._request_id = reply.request_id
        completion._served_model = served.model
        return completion

    def _chat_stream_book(self, served: Served, started: float) -> _StreamBook:
        return _StreamBook(
            self._pipeline, served.reply, served.model, started, served.attempts, served.guard
        )

    def _embedding_batch(self, served: Served, model: str) -> tuple[EmbeddingResponse, int]:
        """One batch's answer, its budget hold settled at once: if a later batch fails, what
        this one spent is still known."""
        p = self._pipeline
        part = p.parse(
            served.reply, EmbeddingResponse, attempts=served.attempts, guard=served.guard
        )
        if served.guard is not None:
            usage = _embedding_usage(part)
            p.settle(served.guard, usage, p.prices.cost(model, usage))
        return part, served.attempts

    def _embeddings_failed(self, done: list[tuple[EmbeddingResponse, int]], model: str) -> None:
        # The call failed (and was counted so), but the batches before the failure were
        # answered and billed: their tokens and cost still belong in the ledger.
        for part, _ in done:
            usage = _embedding_usage(part)
            cost = self._pipeline.prices.cost(model, usage)
            self._pipeline.ledger.add_usage(model, TokenUsage.from_usage(usage, cost))

    def _embeddings_result(
        self, results: list[tuple[EmbeddingResponse, int]], model: str, started: float
    ) -> EmbeddingResponse:
        p = self._pipeline
        parts = [part for part, _ in results]
        merged = _merge_embeddings(parts)
        attempts = sum(a for _, a in results)
        merged._cost_usd = p.book(
            model,
            merged.model,
            _embedding_usage(merged),
            started=started,
            attempts=attempts - len(results) + 1,
            request_id=parts[-1].request_id,
        )
        merged._attempts = attempts
        return merged


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

    def _run(self, flow: Generator[Effect, Any, T]) -> T:
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
                try:
                    outcome: Reply | HolySheepError = self._transport.send(action)
                except HolySheepError as exc:
                    outcome = exc
                action = flow.send(outcome)
        except StopIteration as stop:
            return stop.value
        except HolySheepError as exc:
            self._pipeline.fail(exc)
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
        started = self._pipeline.clock()
        return self._chat_result(self._run(self._pipeline.call(plan)), started)

    def stream_chat_completion(
        self, *, model: str, messages: Sequence[Any], **params: Any
    ) -> ChatStream:
        """A streamed chat completion. Errors before the first byte are retried and raised
        here; after it, a failure raises ``StreamError`` from the iteration."""
        plan = self._chat_plan(model, messages, params, stream=True)
        started = self._pipeline.clock()
        served = self._run(self._pipeline.call(plan))
        return ChatStream(self._chat_stream_book(served, started))

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
        started = self._pipeline.clock()
        done: list[tuple[EmbeddingResponse, int]] = []
        try:
            for plan in plans:
                done.append(self._embedding_batch(self._run(self._pipeline.call(plan)), model))
        except HolySheepError:
            self._embeddings_failed(done, model)
            raise
        return self._embeddings_result(done, model, started)

    def models(self) -> list[Model]:
        self._check_open()
        reply, _ = self._run(self._pipeline.attempts(Send("GET", "/models"), model="-"))
        return self._pipeline.parse(reply, ModelList).data

    def health_check(self, timeout: float = 5.0) -> Health:
        """Whether the API answers ``GET /models`` with this key. Never raises."""
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

    async def _run(self, flow: Generator[Effect, Any, T]) -> T:
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
                try:
                    outcome: Reply | HolySheepError = await self._transport.send(action)
                except HolySheepError as exc:
                    outcome = exc
                action = flow.send(outcome)
        except StopIteration as stop:
            return stop.value
        except HolySheepError as exc:
            self._pipeline.fail(exc)
            raise
        finally:
            # Stopped mid-flow (cancelled, interrupted): the flow gives back what it holds.
            flow.close()

    async def chat_completion(
        self, *, model: str, messages: Sequence[Any], **params: Any
    ) -> ChatCompletion:
        """Async twin of :meth:`HolySheepClient.chat_completion`."""
        plan = self._chat_plan(model, messages, params, stream=False)
        started = self._pipeline.clock()
        return self._chat_result(await self._run(self._pipeline.call(plan)), started)

    async def stream_chat_completion(
        self, *, model: str, messages: Sequence[Any], **params: Any
    ) -> AsyncChatStream:
        """Async twin of :meth:`HolySheepClient.stream_chat_completion`:
        ``async with await client.stream_chat_completion(...) as stream: async for ...``."""
        plan = self._chat_plan(model, messages, params, stream=True)
        started = self._pipeline.clock()
        served = await self._run(self._pipeline.call(plan))
        return AsyncChatStream(self._chat_stream_book(served, started))

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
        started = self._pipeline.clock()

        # A task group, not gather: when one batch fails the others are cancelled instead of
        # running on unobserved.
        async def batch(plan: Plan) -> tuple[EmbeddingResponse, int]:
            return self._embedding_batch(await self._run(self._pipeline.call(plan)), model)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(batch(p)) for p in plans]
        except BaseExceptionGroup as eg:
            done = [
                t.result() for t in tasks if t.done() and not t.cancelled() and not t.exception()
            ]
            self._embeddings_failed(done, model)
            raise eg.exceptions[0] from None
        return self._embeddings_result([t.result() for t in tasks], model, started)

    async def models(self) -> list[Model]:
        self._check_open()
        reply, _ = await self._run(self._pipeline.attempts(Send("GET", "/models"), model="-"))
        return self._pipeline.parse(reply, ModelList).data

    async def health_check(self, timeout: float = 5.0) -> Health:
        """Whether the API answers ``GET /models`` with this key. Never raises."""
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
