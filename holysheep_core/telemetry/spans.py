"""One span per call, and the call's metrics, from what the core tells its watch.

:class:`SpanObserver` is what :class:`~holysheep_core.telemetry.HolySheepInstrumentor`
installs in :mod:`holysheep_core.observer`; each call gets a :class:`SpanWatch`, which opens
a CLIENT span named ``"{operation} {model}"`` under the caller's current context, turns the
call's policy events into span events, and ends the span once, with the response's
attributes or the error's type, recording the metrics at the same time.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.metrics import Counter, Histogram
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ..errors import BudgetExceededError, CircuitOpenError
from ..hooks import BreakerChanged, FallbackUsed, RetryScheduled
from ..observer import CallEnd, CallStart, RateLimitWait
from . import attributes as a
from .content import StreamedMessages, completion_messages, dumps, input_messages

__all__ = ["Instruments", "SpanObserver", "SpanWatch"]

logger = logging.getLogger("holysheep.telemetry")

F = TypeVar("F", bound=Callable[..., None])


def _never_raises(method: F) -> F:
    """Telemetry must never fail a call: a bug here is logged, and the call goes on."""

    @functools.wraps(method)
    def guarded(*args: Any) -> None:
        try:
            method(*args)
        except Exception:
            logger.exception("holysheep telemetry failed; the call is unaffected")

    return guarded  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Instruments:
    duration: Histogram
    tokens: Histogram
    time_to_first_chunk: Histogram
    cost: Counter


class SpanObserver:
    """Opens a :class:`SpanWatch` per call (see :mod:`holysheep_core.observer`)."""

    def __init__(
        self, tracer: trace.Tracer, instruments: Instruments, *, capture_content: bool
    ) -> None:
        self.tracer = tracer
        self.instruments = instruments
        self.capture_content = capture_content

    def start(self, call: CallStart) -> SpanWatch | _Unwatched:
        try:
            return SpanWatch(self, call)
        except Exception:
            logger.exception("holysheep telemetry failed; the call is unaffected")
            return _UNWATCHED

    def current_parent(self) -> Span | None:
        """The current span when it is a real one, kept as it is now: a tracer that stops
        showing its span as current once its method returns (OpenInference) has the later
        call still nest under it."""
        # Its context, not the span object: OpenInference's current span is a proxy that
        # turns invalid when its method returns.
        context = trace.get_current_span().get_span_context()
        return trace.NonRecordingSpan(context) if context.is_valid else None


class _Unwatched:
    """The watch of a call whose span could not be started: hears everything, does nothing."""

    def event(self, record: object) -> None:
        pass

    def chunks(self, chunks: Sequence[Any]) -> None:
        pass

    def finished(self, end: CallEnd) -> None:
        pass

    def failed(self, error: BaseException) -> None:
        pass

    def abandoned(self) -> None:
        pass


_UNWATCHED = _Unwatched()


class SpanWatch:
    __slots__ = (
        "_base",
        "_call",
        "_ended",
        "_finish_reasons",
        "_obs",
        "_response_id",
        "_response_model",
        "_span",
        "_started",
        "_streamed",
        "_ttfc",
    )

    def __init__(self, observer: SpanObserver, call: CallStart) -> None:
        self._obs = observer
        self._call = call
        self._started = time.perf_counter()
        self._ended = False
        self._ttfc: float | None = None
        self._response_id: str | None = None
        self._response_model: str | None = None
        self._finish_reasons: dict[int, str] = {}
        self._streamed: StreamedMessages | None = None
        # The attributes every metric of this call carries.
        self._base: dict[str, Any] = {
            a.OPERATION: call.operation,
            a.PROVIDER_NAME: a.PROVIDER,
            a.REQUEST_MODEL: call.model,
            **a.server_attributes(call.base_url),
        }
        attrs = {**self._base, a.SYSTEM: a.PROVIDER, **a.request_attributes(call.body)}
        if call.stream:
            attrs[a.STREAM] = True
        self._span: Span = observer.tracer.start_span(
            f"{call.operation} {call.model}",
            _parent_context(call.framework_run),
            kind=SpanKind.CLIENT,
            attributes=attrs,
        )
        if observer.capture_content and call.operation == "chat" and self._span.is_recording():
            self._capture_input()
            if call.stream:
                self._streamed = StreamedMessages()

    # --- during the call ----------------------------------------------------------------

    @_never_raises
    def event(self, record: object) -> None:
        if self._ended or not self._span.is_recording():
            return
        span, secret = self._span, self._call.secret
        if isinstance(record, RetryScheduled):
            attrs: dict[str, Any] = {
                a.REQUEST_MODEL: record.model,
                "holysheep.attempt": record.attempt,
                "holysheep.retry.wait_s": record.wait_for,
                a.ERROR_TYPE: record.error_type,
                a.REASON: _scrub(record.message, secret),
            }
            if record.status_code is not None:
                attrs[a.HTTP_STATUS] = record.status_code
            span.add_event(a.EVENT_RETRY, attrs)
        elif isinstance(record, FallbackUsed):
            attrs = {
                "holysheep.fallback.from": record.model,
                "holysheep.fallback.to": record.next_model,
                a.ERROR_TYPE: record.error_type,
                a.REASON: _scrub(record.message, secret),
            }
            if record.status_code is not None:
                attrs[a.HTTP_STATUS] = record.status_code
            span.add_event(a.EVENT_FALLBACK, attrs)
        elif isinstance(record, BreakerChanged):
            attrs = {
                "holysheep.breaker.key": record.key,
                "holysheep.breaker.from": record.old,
                "holysheep.breaker.to": record.new,
                a.REASON: _breaker_reason(record),
            }
            if record.retry_after is not None:
                attrs["holysheep.breaker.retry_after_s"] = record.retry_after
            span.add_event(a.EVENT_BREAKER, attrs)
        elif isinstance(record, RateLimitWait):
            span.add_event(
                a.EVENT_RATE_LIMIT,
                {
                    a.REQUEST_MODEL: record.model,
                    "holysheep.wait_s": record.seconds,
                    a.REASON: "client-side rate limit: waiting for this attempt's turn",
                },
            )

    @_never_raises
    def chunks(self, chunks: Sequence[Any]) -> None:
        if self._ttfc is None:
            self._ttfc = time.perf_counter() - self._started
        for chunk in chunks:
            if self._response_id is None and chunk.id:
                self._response_id = chunk.id
            if self._response_model is None and chunk.model:
                self._response_model = chunk.model
            for choice in chunk.choices:
                if choice.finish_reason is not None:
                    self._finish_reasons[choice.index] = choice.finish_reason
            if self._streamed is not None:
                self._streamed.add(chunk)

    # --- the end, once ------------------------------------------------------------------

    @_never_raises
    def finished(self, end: CallEnd) -> None:
        if self._ended:
            return
        self._ended = True
        span = self._span
        response = end.response
        if response is not None:
            self._response_id = getattr(response, "id", None) or end.request_id
            self._response_model = response.model or None
        response_model = self._response_model or end.served_model
        if span.is_recording():  # a span sampled out is not worth the attributes
            span.set_attributes(self._end_attributes(end, response_model))
            if self._obs.capture_content:
                self._capture_output(response)
        span.end()
        self._record_metrics(response_model, end, None)

    def _end_attributes(self, end: CallEnd, response_model: str) -> dict[str, Any]:
        for choice in getattr(end.response, "choices", ()):
            if choice.finish_reason is not None:
                self._finish_reasons[choice.index] = choice.finish_reason
        attrs: dict[str, Any] = {
            a.SERVED_MODEL: end.served_model,
            a.ATTEMPTS: end.attempts,
            a.CACHE_HIT: end.cache_hit,
            a.RESPONSE_MODEL: response_model,
        }
        if self._response_id:
            attrs[a.RESPONSE_ID] = self._response_id
        if self._finish_reasons:
            attrs[a.FINISH_REASONS] = tuple(
                self._finish_reasons[i] for i in sorted(self._finish_reasons)
            )
        usage = end.usage
        if usage is not None:
            attrs[a.INPUT_TOKENS] = usage.prompt_tokens
            if self._call.operation == "chat":
                attrs[a.OUTPUT_TOKENS] = usage.completion_tokens
            cached = getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", 0)
            if cached:
                attrs[a.CACHE_READ_TOKENS] = cached
        if end.cost_usd is not None:
            attrs[a.COST_USD] = float(end.cost_usd)
        if self._ttfc is not None:
            attrs[a.TIME_TO_FIRST_CHUNK] = self._ttfc
        return attrs

    @_never_raises
    def failed(self, error: BaseException) -> None:
        if self._ended:
            return
        self._ended = True
        span = self._span
        kind = _error_type(error)
        secret = self._call.secret
        message = _scrub(str(error), secret)
        attrs: dict[str, Any] = {a.ERROR_TYPE: kind}
        if self._ttfc is not None:  # a stream that broke after its first chunk
            attrs[a.TIME_TO_FIRST_CHUNK] = self._ttfc
        status = getattr(error, "status_code", None)
        if isinstance(status, int):
            attrs[a.HTTP_STATUS] = status
        attempts = getattr(error, "attempts", None)
        if isinstance(attempts, int):
            attrs[a.ATTEMPTS] = attempts
        if isinstance(error, BudgetExceededError):
            span.add_event(a.EVENT_BUDGET_REFUSED, {a.REASON: message})
        elif isinstance(error, CircuitOpenError):
            span.add_event(a.EVENT_CIRCUIT_REFUSED, {a.REASON: message})
        span.add_event("exception", {"exception.type": kind, "exception.message": message})
        span.set_attributes(attrs)
        span.set_status(Status(StatusCode.ERROR, message))
        span.end()
        self._record_metrics(None, None, kind)

    @_never_raises
    def abandoned(self) -> None:
        if self._ended:
            return
        self._ended = True
        attrs: dict[str, Any] = {a.ABANDONED: True}
        if self._ttfc is not None:
            attrs[a.TIME_TO_FIRST_CHUNK] = self._ttfc
        if self._response_model:
            attrs[a.RESPONSE_MODEL] = self._response_model
        self._span.set_attributes(attrs)
        self._span.end()
        self._record_metrics(self._response_model, None, None)

    # --- helpers ------------------------------------------------------------------------

    def _record_metrics(
        self, response_model: str | None, end: CallEnd | None, error_type: str | None
    ) -> None:
        inst = self._obs.instruments
        attrs = dict(self._base)
        if response_model:
            attrs[a.RESPONSE_MODEL] = response_model
        if error_type is not None:
            attrs[a.ERROR_TYPE] = error_type
        inst.duration.record(time.perf_counter() - self._started, attrs)
        if self._ttfc is not None:
            inst.time_to_first_chunk.record(self._ttfc, attrs)
        if end is None:
            return
        usage = end.usage
        if usage is not None:
            inst.tokens.record(usage.prompt_tokens, {**attrs, a.TOKEN_TYPE: "input"})
            if self._call.operation == "chat":
                inst.tokens.record(usage.completion_tokens, {**attrs, a.TOKEN_TYPE: "output"})
        if end.cost_usd is not None:
            inst.cost.add(float(end.cost_usd), {**attrs, a.SERVED_MODEL: end.served_model})

    def _capture_input(self) -> None:
        messages = self._call.body.get("messages") or ()
        system, inputs = input_messages(messages)
        secret = self._call.secret
        attrs = {a.INPUT_MESSAGES: dumps(inputs, secret)}
        if system:
            attrs[a.SYSTEM_INSTRUCTIONS] = dumps(system, secret)
        self._span.set_attributes(attrs)

    def _capture_output(self, response: Any) -> None:
        if self._streamed is not None:
            out = self._streamed.messages()
        elif response is not None and hasattr(response, "choices"):
            out = completion_messages(response.choices)
        else:
            return
        self._span.set_attribute(a.OUTPUT_MESSAGES, dumps(out, self._call.secret))


def _parent_context(run: Any) -> Any:
    """The context to start a call's span in: the current one, unless the call runs under a
    LangChain run whose span OpenInference's tracer keeps without making it current (a
    choice it makes on purpose: callbacks cannot promise to detach), or under a span
    captured earlier by :meth:`SpanObserver.current_parent`. None = the current."""
    if run is None:
        return None
    if isinstance(run, Span):
        return trace.set_span_in_context(run)
    langchain = sys.modules.get("openinference.instrumentation.langchain")
    run_id = getattr(run, "run_id", None)
    if langchain is None or run_id is None:
        return None
    span = langchain.LangChainInstrumentor().get_span(run_id)
    return None if span is None else trace.set_span_in_context(span)


def _error_type(error: BaseException) -> str:
    if isinstance(error, GeneratorExit):
        # The driver closed the flow: its caller was cancelled or interrupted.
        return "cancelled"
    return type(error).__qualname__


def _breaker_reason(record: BreakerChanged) -> str:
    if record.new == "open":
        return f"opened after {record.failures} consecutive failures"
    if record.new == "half_open":
        return "cool-down over: letting a probe through"
    return f"{record.old} -> {record.new}"


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]") if secret and secret in text else text
