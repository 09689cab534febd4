"""Typed errors of the HolySheep client.

* HolySheepError
  + ConfigurationError        (local: a key or setting that cannot be right)
  + InvalidRequestError       (local: bad arguments, raised before any network call)
  + APIStatusError            (remote: the server answered with an error status)
  | + BadRequestError          400
  | | + ContextLengthExceededError
  | + AuthenticationError      401
  | + PermissionDeniedError    403
  | + NotFoundError            404
  | + ConflictError            409
  | + UnprocessableEntityError 422
  | + RateLimitError           429
  | + InternalServerError      >= 500
  + APIConnectionError        (remote: no usable answer reached us)
  | + APITimeoutError
  |   + PoolTimeoutError       (local: our own pool had no free connection in time)
  + APIResponseValidationError (remote: a 2xx answer that is not the wire format)
  + StreamError               (remote: a stream that failed after it started)
  | + StreamTimeoutError       (it stalled past a read timeout or its deadline; also an
  |                             APITimeoutError)
  | + StreamConnectionError    (the connection dropped or ended early; also an
  |                             APIConnectionError)
  + CircuitOpenError          (policy: the breaker sheds this call)
  + BudgetExceededError       (policy: the call would cross the USD cap)
    + BudgetUnavailableError  (policy: a shared budget's store did not answer)

Every error carries ``status_code``, ``request_id``, ``retry_after`` (seconds) and
``is_retryable`` where they apply; the server's message is the exception text. No error
ever holds the API key: requests are not attached, only method and URL.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "BudgetUnavailableError",
    "CircuitOpenError",
    "ConfigurationError",
    "ConflictError",
    "ContextLengthExceededError",
    "HolySheepError",
    "InternalServerError",
    "InvalidRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "PoolTimeoutError",
    "RateLimitError",
    "StreamConnectionError",
    "StreamError",
    "StreamTimeoutError",
    "UnprocessableEntityError",
    "error_from_response",
    "parse_retry_after",
]


class HolySheepError(Exception):
    """Base class of every error this package raises."""

    status_code: int | None = None
    request_id: str | None = None
    retry_after: float | None = None
    is_retryable: bool = False
    attempts: int = 0
    """HTTP attempts the failed call made (0: refused before anything was sent)."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        for name, value in fields.items():
            setattr(self, name, value)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep extra fields across pickling (multiprocessing, task queues).
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[HolySheepError], message: str, state: dict[str, Any]) -> HolySheepError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class ConfigurationError(HolySheepError, ValueError):
    """A setting that cannot be right, such as an empty or malformed API key."""


class InvalidRequestError(HolySheepError, ValueError):
    """Arguments refused before any network call."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message, param=param)


class APIStatusError(HolySheepError):
    """The server answered with a non-success status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
        code: str | None = None,
        error_type: str | None = None,
        param: str | None = None,
        body: Any = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            request_id=request_id,
            retry_after=retry_after,
            should_retry=should_retry,
            code=code,
            error_type=error_type,
            param=param,
            body=body,
            method=method,
            url=url,
        )
        if should_retry is not None:
            self.is_retryable = should_retry
        else:
            self.is_retryable = status_code in (408, 409, 429) or status_code >= 500

    def __str__(self) -> str:
        rid = f", request_id={self.request_id}" if self.request_id else ""
        return f"{self.status_code} {self.message}{rid}"


class BadRequestError(APIStatusError):
    """400: the server refused the request as malformed."""


class ContextLengthExceededError(BadRequestError):
    """400: the prompt plus max_tokens does not fit the model's context window."""


class AuthenticationError(APIStatusError):
    """401: the API key was refused. Check HOLYSHEEP_API_KEY or api_key=."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not use this model or endpoint."""


class NotFoundError(APIStatusError):
    """404: unknown model or endpoint."""


class ConflictError(APIStatusError):
    """409: a conflicting request; safe to retry."""


class UnprocessableEntityError(APIStatusError):
    """422: the server understood the request but cannot process it."""


class RateLimitError(APIStatusError):
    """429: too many requests or tokens; ``retry_after`` says when to come back."""


class InternalServerError(APIStatusError):
    """>= 500: the server or a proxy in front of it failed."""


class APIConnectionError(HolySheepError):
    """No usable answer: connection refused, reset, DNS failure, pool exhausted."""

    is_retryable = True


class APITimeoutError(APIConnectionError):
    """A connect, read, write or pool timeout, or the call's overall deadline."""


class PoolTimeoutError(APITimeoutError):
    """No free connection in our own pool in time: local saturation, not a server fault
    (the circuit breaker does not count it). Raise ``max_connections`` or lower concurrency."""


class APIResponseValidationError(HolySheepError):
    """A success status whose body is not the documented wire format."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message, request_id=request_id)


class StreamError(HolySheepError):
    """A stream that failed after it started: dropped, malformed, or an error event.

    ``partial_usage`` holds what the server had reported before the failure (often nothing).
    Streams are never retried once a byte was delivered: that would repeat tokens and cost.
    """

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        code: str | None = None,
        partial_usage: Any = None,
        partial_content: str = "",
    ) -> None:
        super().__init__(
            message,
            request_id=request_id,
            code=code,
            partial_usage=partial_usage,
            partial_content=partial_content,
        )


class StreamTimeoutError(StreamError, APITimeoutError):
    """A stream that stalled past the read timeout, or outlived ``retry.stream_deadline``.
    Caught by ``except APITimeoutError`` too, as the same stall outside a stream is."""


class StreamConnectionError(StreamError, APIConnectionError):
    """A stream whose connection dropped, or ended before the answer was complete. Caught
    by ``except APIConnectionError`` too, as the same drop outside a stream is."""


class CircuitOpenError(HolySheepError):
    """The circuit breaker for this endpoint and model is open; no request was sent."""

    def __init__(self, message: str, *, key: str, retry_after: float) -> None:
        super().__init__(message, key=key, retry_after=retry_after)


class BudgetExceededError(HolySheepError):
    """The call would take spending past the configured USD cap; nothing was sent."""

    def __init__(
        self, message: str, *, budget_usd: Decimal, spent_usd: Decimal, estimate_usd: Decimal
    ) -> None:
        super().__init__(
            message, budget_usd=budget_usd, spent_usd=spent_usd, estimate_usd=estimate_usd
        )


class BudgetUnavailableError(BudgetExceededError):
    """A budget shared between processes could not be asked (its store, such as Redis, did
    not answer) and refuses rather than risk passing its cap; nothing was sent.
    ``spent_usd`` is None: unknown."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}

_CONTEXT_CODES = frozenset({"context_length_exceeded", "context_window_exceeded"})
# How servers and the proxies in front of them word it: OpenAI ("maximum context length"),
# LiteLLM ("ContextWindowExceededError ... context window exceeded"), vLLM, Anthropic
# ("prompt is too long"), Gemini ("input token count ... exceeds the maximum").
_CONTEXT_PHRASES = (
    "context length",
    "context window",
    "contextwindowexceeded",
    "context_length_exceeded",
    "context_window_exceeded",
    "prompt is too long",
    "input token count",
)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asks us to wait, from ``retry-after-ms`` or ``retry-after``.

    ``retry-after`` may be a number of seconds or an HTTP date (RFC 9110 §10.2.3); a date in
    the past means 0. ``now`` is the wall clock (``time.time()``) used for dates.
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        seconds = _number(raw_ms)
        if seconds is not None:
            return max(seconds / 1000.0, 0.0)
    raw = headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    seconds = _number(raw)
    if seconds is not None:
        return max(seconds, 0.0)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def _number(text: str) -> float | None:
    # "nan" and "inf" parse as floats but are no wait at all: nan would reach sleep() and
    # crash there, inf would make a call give up that a missing header would have retried.
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _is_context_overflow(code: str | None, message: str) -> bool:
    if code in _CONTEXT_CODES:
        return True
    text = message.lower()
    return any(phrase in text for phrase in _CONTEXT_PHRASES)


def _should_retry(headers: Mapping[str, str]) -> bool | None:
    value = headers.get("x-should-retry")
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def _describe_body(body: bytes, content_type: str) -> tuple[str, Any, dict[str, Any]]:
    """The readable message, the parsed body and the ``error`` object, whatever came back."""
    text = body.decode("utf-8", errors="replace")
    parsed: Any = None
    if text:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
    if isinstance(parsed, dict):
        err = parsed.get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err.get("code") or "error"), parsed, err
        if isinstance(err, str):
            return err, parsed, {"message": err}
        if "message" in parsed:
            return str(parsed["message"]), parsed, parsed
    # A proxy's HTML or plain-text page: keep a short, readable excerpt.
    snippet = " ".join(_strip_tags(text).split())[:200]
    kind = "HTML page" if "html" in content_type or text.lstrip().startswith("<") else "body"
    return (f"non-JSON {kind}: {snippet}" if snippet else "empty body"), text or None, {}


def _strip_tags(text: str) -> str:
    out: list[str] = []
    depth = 0
    for ch in text:
        if ch == "<":
            depth += 1
        elif ch == ">" and depth:
            depth -= 1
            out.append(" ")
        elif not depth:
            out.append(ch)
    return "".join(out)


def error_from_response(
    status_code: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str | None = None,
    url: str | None = None,
    now: float | None = None,
    secret: str | None = None,
) -> APIStatusError:
    """The most specific ``APIStatusError`` for an error response. Header names lower-case.

    ``secret`` (the API key) is cut out of the body first: some proxies echo the request's
    ``Authorization`` header in their error pages, and the message must never carry it.
    """
    if secret:
        body = body.replace(secret.encode(), b"[redacted]")
    message, parsed, err = _describe_body(body, headers.get("content-type", ""))
    code = err.get("code")
    code = str(code) if code is not None else None
    cls = _STATUS_CLASSES.get(status_code)
    if cls is None:
        cls = InternalServerError if status_code >= 500 else APIStatusError
    if cls is BadRequestError and _is_context_overflow(code, message):
        cls = ContextLengthExceededError
    return cls(
        message,
        status_code=status_code,
        request_id=headers.get("x-request-id"),
        retry_after=parse_retry_after(headers, now),
        should_retry=_should_retry(headers),
        code=code,
        error_type=err.get("type"),
        param=err.get("param"),
        body=parsed,
        method=method,
        url=url,
    )
