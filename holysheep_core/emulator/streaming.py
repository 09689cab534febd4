"""What a stream sends: SSE events for the chunks, reshaped by a stream fault."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import Enum
from typing import Any

from .errors import error_body
from .faults import Fault, FaultKind

__all__ = ["ABORT", "DONE", "StreamStep", "sse_event", "stream_plan"]

DONE = b"data: [DONE]\n\n"
MALFORMED = b"data: {malformed\n\n"


class _Abort(Enum):
    ABORT = "abort"


ABORT = _Abort.ABORT
"""Plan step: abort the connection here."""

StreamStep = bytes | float | _Abort
"""Plan step: bytes to write, seconds to pause, or ``ABORT``."""


def sse_event(data: str, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n".encode()


def _stream_error() -> str:
    return json.dumps(
        error_body(
            "The server had an error while processing your request. Sorry about that!",
            type="server_error",
            code="stream_error",
        )
    )


def _padded(chunk: dict[str, Any], size: int) -> bytes:
    # Whitespace inside the JSON object keeps the chunk's value while the line grows.
    data = json.dumps(chunk)
    padding = max(0, size - len("data: ") - len(data))
    return sse_event("{" + " " * padding + data[1:])


def stream_plan(chunks: Sequence[dict[str, Any]], fault: Fault | None) -> list[StreamStep]:
    """The steps of a stream: each chunk as an event, then ``[DONE]``, changed by fault."""
    events = [sse_event(json.dumps(chunk)) for chunk in chunks]
    if fault is None or not fault.in_stream:
        return [*events, DONE]
    at = min(fault.after, len(events))
    before, rest = events[:at], events[at:]
    match fault.kind:
        case FaultKind.STALL:
            return [*before, fault.seconds, *rest, DONE]
        case FaultKind.DROP:
            return [*before, ABORT]
        case FaultKind.MALFORMED_SSE:
            return [*before, MALFORMED, *rest, DONE]
        case FaultKind.OVERSIZED_LINE:
            at = min(fault.after, len(chunks) - 1)
            return [*events[:at], _padded(chunks[at], fault.size), *events[at + 1 :], DONE]
        case FaultKind.ERROR_EVENT:
            return [*before, sse_event(_stream_error(), event="error")]
        case FaultKind.ERROR_DATA:
            return [*before, sse_event(_stream_error())]
        case FaultKind.NO_FINAL_NEWLINE:
            return [*events[:-1], events[-1].rstrip(b"\n")]
    raise AssertionError(fault.kind)
