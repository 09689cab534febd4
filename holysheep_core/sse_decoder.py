"""Incremental, sans-IO Server-Sent Events decoder: bytes in, events out.

Follows the WHATWG EventSource parsing rules (HTML standard, "Parsing an event stream"), with
one deliberate difference: at end of stream an event that lacks its closing blank line is still
dispatched, because some servers omit it (openai-python drops that event; we do not).

The decoder never does I/O. A driver feeds it whatever the transport returned and asks for
events until it is told what is needed next::

    decoder = SSEDecoder()
    for chunk in response.iter_bytes():
        decoder.feed(chunk)
        yield from decoder.events()
    decoder.feed(b"")                      # EOF
    yield from decoder.events()

State machine. Fed bytes wait in one buffer. ``next_event()`` hands out a queued event if there
is one; otherwise it cuts the buffer after its last line terminator, parses those complete lines
in one pass (queueing each event ended by a blank line), and keeps only the unterminated tail.
A tail that ends in CR may be half of a CRLF, so an LF at the start of the next chunk is
dropped. Lines are split and parsed as bytes (CR and LF never occur inside a UTF-8 character)
and text is decoded only from complete lines, ``data`` once per event, so a character split
across chunks is never decoded in halves. ``feed(b"")`` marks EOF; the next call parses the
tail as a last line, dispatches the pending event, and from then on returns ``Need.END``.
A limit breach is remembered: events queued before it are still returned, then every call
raises ``StreamError``.

``id`` and ``retry`` carry forward like EventSource's ``lastEventId`` and reconnection time:
each event reports the latest valid value the stream has sent so far, even if that value came
in a block without data (such blocks are never dispatched).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from enum import Enum

from .errors import StreamError

__all__ = ["Need", "SSEDecoder", "SSEEvent", "SSEStateError"]

_BOM = b"\xef\xbb\xbf"
_CR = 0x0D
_LF = 0x0A


class Need(Enum):
    """What ``SSEDecoder.next_event()`` needs when it has no event to return."""

    DATA = "need-data"
    """Feed more bytes (or ``b""`` for EOF)."""
    END = "end-of-stream"
    """EOF was fed and every event has been returned; nothing more will come."""


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event."""

    data: str
    """The ``data`` lines joined with ``"\\n"``."""
    event: str = "message"
    """The ``event`` field, or ``"message"`` when absent or empty."""
    id: str | None = None
    """The last event id the stream set (sticky across events), or None if it never did."""
    retry: int | None = None
    """The last reconnection time in milliseconds the stream set (sticky), or None."""


class SSEStateError(RuntimeError):
    """Local error: the decoder was used out of order, e.g. fed data after EOF."""


class SSEDecoder:
    """Turn a byte stream, split anywhere, into ``SSEEvent`` objects.

    Args:
        max_event_bytes: the most bytes one event may span (its lines, not counting line
            terminators, comments included) before its blank line. Also bounds a single
            unterminated line. Going past it makes ``next_event()`` raise ``StreamError``.

    Raises:
        ValueError: ``max_event_bytes`` is not positive.
    """

    __slots__ = (
        "_bom_checked",
        "_buf",
        "_data",
        "_done",
        "_eof",
        "_error",
        "_event_size",
        "_event_type",
        "_last_id",
        "_max",
        "_ready",
        "_retry",
        "_scanned",
        "_skip_lf",
    )

    def __init__(self, *, max_event_bytes: int = 4 * 1024 * 1024) -> None:
        if max_event_bytes < 1:
            raise ValueError(f"max_event_bytes must be positive, got {max_event_bytes!r}")
        self._max = max_event_bytes
        # bytes while it is one untouched chunk (no copy); bytearray once we append to it.
        self._buf: bytes | bytearray = b""
        # Length of the prefix of _buf already searched for line terminators in vain: keeps a
        # long line arriving in small chunks from being rescanned on every call.
        self._scanned = 0
        self._skip_lf = False
        self._bom_checked = False
        self._eof = False
        self._done = False
        self._error: str | None = None
        self._ready: deque[SSEEvent] = deque()
        self._data: list[bytes | bytearray] = []
        self._event_type: bytes | bytearray = b""
        self._event_size = 0
        self._last_id: str | None = None
        self._retry: int | None = None

    def feed(self, data: bytes) -> None:
        """Add bytes received from the peer; ``b""`` means end of stream.

        Raises:
            SSEStateError: non-empty data after EOF was fed (local misuse). Feeding ``b""``
                again is allowed, like ``socket.recv`` returning ``b""`` repeatedly.
        """
        if self._eof:
            if data:
                raise SSEStateError("SSEDecoder.feed() called with data after EOF (b'')")
            return
        if not data:
            self._eof = True
            return
        if self._error is not None:
            return  # the stream is already broken; holding more of it only costs memory
        buf = self._buf
        if not buf:
            self._buf = bytes(data)  # no copy for bytes; a snapshot of a mutable buffer
        elif isinstance(buf, bytearray):
            buf += data
        else:
            grown = bytearray(buf)  # from now on appends are amortised, not quadratic
            grown += data
            self._buf = grown

    def next_event(self) -> SSEEvent | Need:
        """The next complete event, or what the decoder needs before it can produce one.

        Returns:
            An ``SSEEvent``; ``Need.DATA`` when more bytes must be fed; ``Need.END`` once EOF
            was fed and every event has been returned.

        Raises:
            StreamError: the peer sent an event or line longer than ``max_event_bytes``
                (remote error). Raised after the events that preceded it are returned, and
                again on every later call.
        """
        ready = self._ready
        if ready:
            return ready.popleft()
        if self._error is None and (
            len(self._buf) > self._scanned or (self._eof and not self._done)
        ):
            self._parse()
            if ready:
                return ready.popleft()
        if self._error is not None:
            raise StreamError(self._error)
        return Need.END if self._done else Need.DATA

    def events(self) -> Iterator[SSEEvent]:
        """Yield every event that is ready; stop at the first ``Need``. Raises as ``next_event``."""
        while True:
            event = self.next_event()
            if isinstance(event, Need):
                return
            yield event

    @property
    def buffered(self) -> int:
        """Bytes held and not yet returned as events: the unparsed input plus ``data`` values
        of the event being assembled."""
        return len(self._buf) + sum(map(len, self._data))

    def _parse(self) -> None:
        buf = self._buf
        eof = self._eof
        if not self._bom_checked:
            if not eof and len(buf) < len(_BOM) and _BOM.startswith(buf):
                return  # cannot tell a BOM from data yet
            self._bom_checked = True
            if buf.startswith(_BOM):
                buf = buf[len(_BOM) :]
        if self._skip_lf and buf:
            self._skip_lf = False
            if buf[0] == _LF:
                buf = buf[1:]
        if buf and buf[-1] in (_LF, _CR):
            end = len(buf)  # the usual case: the chunk ends at a line end, no search needed
        else:
            start = self._scanned
            end = max(buf.rfind(b"\n", start), buf.rfind(b"\r", start)) + 1
        if end:
            if end == len(buf):
                lines = buf.splitlines()
                tail: bytes | bytearray = b""
                # The CR may be the first half of a CRLF whose LF is still in flight.
                self._skip_lf = buf[-1] == _CR
            else:
                lines = buf[:end].splitlines()
                tail = buf[end:]  # cannot start with LF: that LF would have been the last end
        else:
            lines = []
            tail = buf
        if eof:
            # Unlike the spec, the last line and event count even without their terminators.
            if tail:
                lines.append(tail)
            lines.append(b"")
            tail = b""
            self._done = True
        self._buf = tail
        self._scanned = len(tail)

        # The hot loop: locals instead of attributes, data lines tested first.
        ready = self._ready
        data = self._data
        event_type = self._event_type
        size = self._event_size
        limit = self._max
        for line in lines:
            if not line:
                # Checked per event rather than per line: the outcome is the same (the events
                # before the oversized one are kept) and the common path stays short.
                if size > limit:
                    self._fail(size)
                    return
                if data:
                    ready.append(
                        SSEEvent(
                            b"\n".join(data).decode("utf-8", "replace"),
                            event_type.decode("utf-8", "replace") if event_type else "message",
                            self._last_id,
                            self._retry,
                        )
                    )
                    data.clear()
                event_type = b""
                size = 0
                continue
            size += len(line)
            if line.startswith(b"data: "):
                data.append(line[6:])
                continue
            colon = line.find(b":")
            if colon == 0:
                continue  # comment
            if colon < 0:
                name, value = line, b""
            else:
                name = line[:colon]
                value = line[colon + 2 :] if line.startswith(b" ", colon + 1) else line[colon + 1 :]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                event_type = value
            elif name == b"id":
                if b"\0" not in value:
                    self._last_id = value.decode("utf-8", "replace")
            elif name == b"retry" and value.isdigit():  # bytes.isdigit: ASCII digits only
                # More digits than int() accepts (sys.int_info) is no usable delay: ignore it.
                with suppress(ValueError):
                    self._retry = int(value)
        self._event_type = event_type
        self._event_size = size
        if size + len(tail) > limit:
            self._fail(size + len(tail))

    def _fail(self, size: int) -> None:
        self._error = (
            f"SSE event or line larger than max_event_bytes={self._max} ({size} bytes without "
            "a blank line ending the event); the server is not sending well-formed events"
        )
        # Nothing after this point will be parsed: free the memory now.
        self._buf = b""
        self._scanned = 0
        self._data.clear()
