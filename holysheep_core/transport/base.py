"""What the request flow asks of a transport, and what a transport gives back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["AsyncBody", "AsyncTransport", "Reply", "Send", "SyncBody", "SyncTransport"]


@dataclass(frozen=True, slots=True)
class Send:
    """One HTTP attempt. ``timeout`` (seconds) bounds the whole attempt, however the bytes
    trickle in: connecting, sending, and the answer's headers and body (a stream's headers
    only); ``stream_timeout`` bounds a stream from sending to its last byte. None = no bound
    beyond the configured per-operation timeouts."""

    method: str
    path: str
    body: bytes | None = None
    stream: bool = False
    timeout: float | None = None
    stream_timeout: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class SyncBody(Protocol):
    """A streamed body. ``finish`` is for when the answer is complete (``[DONE]``): it
    keeps the connection for reuse if the body ends within ``FINISH_GRACE`` seconds, and
    closes it otherwise; ``close`` drops it at once (the reader left early)."""

    def iter_bytes(self) -> Iterator[bytes]: ...
    def finish(self) -> None: ...
    def close(self) -> None: ...


class AsyncBody(Protocol):
    def aiter_bytes(self) -> AsyncIterator[bytes]: ...
    async def finish(self) -> None: ...
    def close(self) -> None: ...
    async def aclose(self) -> None: ...


@dataclass(slots=True)
class Reply:
    """An answer's status and headers, with its body read (``body``) or still open
    (``stream``, only for a successful streaming request). Header lookups are
    case-insensitive."""

    status: int
    headers: Mapping[str, str]
    body: bytes = b""
    stream: Any = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-request-id")


class SyncTransport(Protocol):
    def send(self, request: Send) -> Reply: ...
    def close(self) -> None: ...


class AsyncTransport(Protocol):
    async def send(self, request: Send) -> Reply: ...
    async def aclose(self) -> None: ...
