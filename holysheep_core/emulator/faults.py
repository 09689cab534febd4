"""Faults to inject: a frozen ``Fault``, its header grammar, and a thread-safe schedule.

Header grammar (``x-emulator-fault``), one fault per request::

    fault  = kind ["=" value] *(";" key "=" value)
    kind   = "status" "=" CODE        ; key: body, retry-after, retry-after-date,
                                      ;      retry-after-ms, should-retry
           / "slow-first-byte" "=" SECONDS
           / "wrong-content-type"
           / "stall" "=" SECONDS      ; key: after
           / "drop" / "malformed-sse" / "error-event" / "error-data"   ; key: after
           / "oversized-line" ["=" BYTES]                               ; key: after
           / "no-final-newline"

Values: CODE an integer 400-599; SECONDS a number >= 0; ``body`` ``json`` or ``html``;
booleans ``true``/``false``; ``after`` a chunk count >= 0. Example:
``status=429;retry-after=2;retry-after-ms=1500``. ``Fault.to_header`` writes this form and
``Fault.from_header`` reads it.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import formatdate
from enum import StrEnum
from typing import Any, Literal

__all__ = ["Fault", "FaultKind", "FaultSchedule"]

DEFAULT_OVERSIZED_BYTES = 2 * 1024 * 1024


class FaultKind(StrEnum):
    STATUS = "status"
    SLOW_FIRST_BYTE = "slow-first-byte"
    WRONG_CONTENT_TYPE = "wrong-content-type"
    STALL = "stall"
    DROP = "drop"
    MALFORMED_SSE = "malformed-sse"
    OVERSIZED_LINE = "oversized-line"
    ERROR_EVENT = "error-event"
    ERROR_DATA = "error-data"
    NO_FINAL_NEWLINE = "no-final-newline"


_STREAM_KINDS = frozenset(
    {
        FaultKind.STALL,
        FaultKind.DROP,
        FaultKind.MALFORMED_SSE,
        FaultKind.OVERSIZED_LINE,
        FaultKind.ERROR_EVENT,
        FaultKind.ERROR_DATA,
        FaultKind.NO_FINAL_NEWLINE,
    }
)
# The field a kind's "=value" sets, and the fields its other keys may set.
_MAIN_FIELD = {
    FaultKind.STATUS: "status_code",
    FaultKind.SLOW_FIRST_BYTE: "seconds",
    FaultKind.STALL: "seconds",
    FaultKind.OVERSIZED_LINE: "size",
}
_KEY_FIELDS: dict[FaultKind, tuple[str, ...]] = {
    FaultKind.STATUS: ("body", "retry_after", "retry_after_date", "retry_after_ms", "should_retry"),
    FaultKind.SLOW_FIRST_BYTE: (),
    FaultKind.WRONG_CONTENT_TYPE: (),
    FaultKind.STALL: ("after",),
    FaultKind.DROP: ("after",),
    FaultKind.MALFORMED_SSE: ("after",),
    FaultKind.OVERSIZED_LINE: ("after",),
    FaultKind.ERROR_EVENT: ("after",),
    FaultKind.ERROR_DATA: ("after",),
    FaultKind.NO_FINAL_NEWLINE: (),
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Fault:
    """One injected failure; build it with a constructor, e.g. ``Fault.status(503)``.

    ``path`` limits which requests a scheduled fault applies to (default: any ``/v1/``
    path); it has no header form. Stream faults apply to streaming chat requests only, and
    ``after`` counts the chunks sent before the fault (past the last chunk: at the end).
    """

    kind: FaultKind
    status_code: int = 500
    body: Literal["json", "html"] = "json"
    retry_after: float | None = None
    retry_after_date: bool = False
    retry_after_ms: int | None = None
    should_retry: bool | None = None
    seconds: float = 0.0
    after: int = 0
    size: int = DEFAULT_OVERSIZED_BYTES
    path: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FaultKind(self.kind))
        if not 400 <= self.status_code <= 599:
            raise ValueError(f"status code must be 400-599, not {self.status_code}")
        if self.body not in ("json", "html"):
            raise ValueError(f"body must be 'json' or 'html', not {self.body!r}")
        for name in ("retry_after", "retry_after_ms", "seconds", "after"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, not {value}")
        if self.size < 1:
            raise ValueError(f"size must be >= 1, not {self.size}")

    @classmethod
    def status(
        cls,
        code: int,
        *,
        body: Literal["json", "html"] = "json",
        retry_after: float | None = None,
        retry_after_date: bool = False,
        retry_after_ms: int | None = None,
        should_retry: bool | None = None,
    ) -> Fault:
        """Answer ``code`` with an error body (JSON or an HTML page) and retry headers.

        ``retry_after`` sends ``Retry-After`` in seconds, or as the HTTP date that many
        seconds ahead when ``retry_after_date``; ``retry_after_ms`` sends ``retry-after-ms``;
        ``should_retry`` sends ``x-should-retry``.
        """
        return cls(
            kind=FaultKind.STATUS,
            status_code=code,
            body=body,
            retry_after=retry_after,
            retry_after_date=retry_after_date,
            retry_after_ms=retry_after_ms,
            should_retry=should_retry,
        )

    @classmethod
    def slow_first_byte(cls, seconds: float) -> Fault:
        """Wait ``seconds`` before sending the response headers."""
        return cls(kind=FaultKind.SLOW_FIRST_BYTE, seconds=seconds)

    @classmethod
    def wrong_content_type(cls) -> Fault:
        """Answer 200 with a ``text/html`` page instead of the API's JSON or SSE."""
        return cls(kind=FaultKind.WRONG_CONTENT_TYPE)

    @classmethod
    def stall_mid_stream(cls, *, after: int, seconds: float) -> Fault:
        """Pause ``seconds`` after ``after`` chunks, then finish the stream normally."""
        return cls(kind=FaultKind.STALL, after=after, seconds=seconds)

    @classmethod
    def drop_mid_stream(cls, *, after: int) -> Fault:
        """Abort the connection after ``after`` chunks, with no terminating chunk."""
        return cls(kind=FaultKind.DROP, after=after)

    @classmethod
    def malformed_sse(cls, *, after: int = 0) -> Fault:
        """Send ``data: {malformed`` (not JSON) after ``after`` chunks, then go on."""
        return cls(kind=FaultKind.MALFORMED_SSE, after=after)

    @classmethod
    def oversized_line(cls, *, after: int = 0, size: int = DEFAULT_OVERSIZED_BYTES) -> Fault:
        """Pad the chunk after ``after`` chunks to one ``size``-byte line of valid JSON."""
        return cls(kind=FaultKind.OVERSIZED_LINE, after=after, size=size)

    @classmethod
    def error_event(cls, *, after: int = 0) -> Fault:
        """Send ``event: error`` with ``{"error": {...}}`` data after ``after`` chunks, then end."""
        return cls(kind=FaultKind.ERROR_EVENT, after=after)

    @classmethod
    def error_data(cls, *, after: int = 0) -> Fault:
        """Send a plain ``data: {"error": {...}}`` event after ``after`` chunks, then end."""
        return cls(kind=FaultKind.ERROR_DATA, after=after)

    @classmethod
    def no_final_newline(cls) -> Fault:
        """End the stream with its last chunk unterminated (no blank line) and no ``[DONE]``."""
        return cls(kind=FaultKind.NO_FINAL_NEWLINE)

    def at(self, path: str) -> Fault:
        """This fault, scheduled for requests to ``path`` only (e.g. ``/v1/embeddings``)."""
        return dataclasses.replace(self, path=path)

    @property
    def in_stream(self) -> bool:
        """Whether the fault happens inside an SSE stream (so needs a streaming request)."""
        return self.kind in _STREAM_KINDS

    def matches(self, path: str, *, stream: bool) -> bool:
        """Whether a scheduled fault applies to a request for path."""
        on_path = path == self.path if self.path is not None else path.startswith("/v1/")
        return on_path and (stream or not self.in_stream)

    def retry_headers(self, now: float) -> dict[str, str]:
        """The retry headers a status fault sends, with ``now`` the current Unix time."""
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = (
                formatdate(now + self.retry_after, usegmt=True)
                if self.retry_after_date
                else _format(self.retry_after)
            )
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = str(self.retry_after_ms)
        if self.should_retry is not None:
            headers["x-should-retry"] = _format(self.should_retry)
        return headers

    def to_header(self) -> str:
        """This fault in the ``x-emulator-fault`` grammar."""
        default = Fault(kind=self.kind)
        main = _MAIN_FIELD.get(self.kind)
        head = str(self.kind) + (f"={_format(getattr(self, main))}" if main else "")
        keys = [
            f"{name.replace('_', '-')}={_format(getattr(self, name))}"
            for name in _KEY_FIELDS[self.kind]
            if getattr(self, name) != getattr(default, name)
        ]
        return ";".join([head, *keys])

    @classmethod
    def from_header(cls, text: str) -> Fault:
        """Parse the ``x-emulator-fault`` grammar; ``ValueError`` says what is wrong."""
        head, *items = [item.strip() for item in text.split(";")]
        name, has_value, value = head.partition("=")
        try:
            kind = FaultKind(name.strip())
        except ValueError:
            kinds = ", ".join(k.value for k in FaultKind)
            raise ValueError(f"unknown fault {name.strip()!r}; expected one of: {kinds}") from None
        fields: dict[str, Any] = {}
        main = _MAIN_FIELD.get(kind)
        if has_value and main is None:
            raise ValueError(f"fault {kind.value!r} takes no value")
        if main is not None and has_value:
            fields[main] = _parse(main, value.strip(), kind.value)
        elif kind in (FaultKind.STATUS, FaultKind.SLOW_FIRST_BYTE, FaultKind.STALL):
            raise ValueError(f"fault {kind.value!r} needs a value: {kind.value}=...")
        for item in filter(None, items):
            key, _, raw = item.partition("=")
            field = key.strip().replace("-", "_")
            if field not in _KEY_FIELDS[kind]:
                raise ValueError(f"fault {kind.value!r} has no parameter {key.strip()!r}")
            fields[field] = _parse(field, raw.strip(), key.strip())
        return cls(kind=kind, **fields)


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _boolean(raw: str) -> bool:
    if raw not in ("true", "false"):
        raise ValueError(raw)
    return raw == "true"


_PARSERS: dict[str, Any] = {
    "status_code": int,
    "body": str,
    "retry_after": float,
    "retry_after_date": _boolean,
    "retry_after_ms": int,
    "should_retry": _boolean,
    "seconds": float,
    "after": int,
    "size": int,
}


def _parse(field: str, raw: str, key: str) -> Any:
    try:
        return _PARSERS[field](raw)
    except ValueError:
        raise ValueError(f"bad value {raw!r} for {key!r}") from None


class FaultSchedule:
    """Faults waiting for requests; each request takes the earliest one that matches it."""

    def __init__(self, faults: Iterable[Fault] = ()) -> None:
        self._lock = threading.Lock()
        self._pending = list(faults)

    def add(self, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self._pending.extend([fault] * times)

    def take(self, path: str, *, stream: bool) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._pending):
                if fault.matches(path, stream=stream):
                    return self._pending.pop(i)
        return None

    def pending(self) -> tuple[Fault, ...]:
        with self._lock:
            return tuple(self._pending)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
