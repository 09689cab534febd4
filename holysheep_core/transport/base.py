"""What the request flow asks of a transport, and what a transport gives back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["AsyncBody", "AsyncTransport", "Reply", "Send", "SyncBody", "SyncTransport"]


@dataclass(frozen=True, slots=True)
class Send:
    """One HTTP attempt. ``timeout`` (seconds) caps the wait for the answer's headers and
    body when the call's deadline is nearer than the configured read timeout."""

    method: str
    path: str
    body: bytes | None = None
    stream: bool = False
    timeout: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class SyncBody(Protocol):
    def iter_bytes(self) -> Iterator[bytes]: ...
    def close(self) -> None: ...


class AsyncBody(Protocol):
    def aiter_bytes(self) -> AsyncIterator[bytes]: ...
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
