"""A deadline for the whole of an attempt, not just for each read.

httpx and aiohttp time each read (or aiohttp nothing once bytes flow): a server trickling
one byte every half second holds a call as long as it likes. Each transport therefore turns
the attempt's seconds (``Send.timeout``, ``Send.stream_timeout``) into an absolute deadline
when it starts, and every wait after that is cut at the deadline:

* async transports wrap each await in :func:`asyncio.timeout_at`;
* the sync httpx transport reads through :class:`DeadlineBackend`, whose sockets cap every
  read, write and connect at the deadline held in :data:`DEADLINE` for the calling thread.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any, Protocol

import httpcore

from ..errors import HolySheepError

__all__ = [
    "DEADLINE",
    "DEADLINE_PASSED",
    "FINISH_GRACE",
    "FINISH_MAX_BYTES",
    "STREAM_DEADLINE_PASSED",
    "DeadlineBackend",
    "deadline_in",
    "drain",
    "loop_deadline",
]

FINISH_GRACE = 0.5
"""Seconds a complete stream waits for its body's end before dropping the connection."""
FINISH_MAX_BYTES = 65536
"""Bytes after ``[DONE]`` read while waiting; past that the connection is dropped."""

DEADLINE_PASSED = "request timed out: the call's deadline passed"
STREAM_DEADLINE_PASSED = "the stream timed out: its deadline (retry.stream_deadline) passed"

DEADLINE: ContextVar[float | None] = ContextVar("holysheep_deadline", default=None)
"""``time.monotonic()`` by which the current attempt (or stream) must be over; None = none."""


def deadline_in(seconds: float | None) -> float | None:
    """The monotonic time ``seconds`` from now (None stays None)."""
    return None if seconds is None else time.monotonic() + seconds


def loop_deadline(deadline: float | None, loop_time: float) -> float | None:
    """A monotonic deadline on the event loop's clock (``loop.time()`` may differ)."""
    return None if deadline is None else loop_time + (deadline - time.monotonic())


def _cap(timeout: float | None, kind: type[Exception]) -> float | None:
    deadline = DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise kind("the call's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    __slots__ = ("_stream",)

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _cap(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _cap(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        if "timeout" in kwargs:
            kwargs["timeout"] = _cap(kwargs["timeout"], httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(*args, **kwargs))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's sync network backend with every socket wait cut at :data:`DEADLINE`."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(
            host, port, _cap(timeout, httpcore.ConnectTimeout), local_address, socket_options
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_unix_socket(
            path, _cap(timeout, httpcore.ConnectTimeout), socket_options
        )
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _TimedChunks(Protocol):
    deadline: float | None

    async def __anext__(self) -> bytes: ...


async def drain(chunks: _TimedChunks) -> None:
    """Read what follows a complete stream's ``[DONE]`` (usually just the body's end) for
    at most ``FINISH_GRACE`` seconds and ``FINISH_MAX_BYTES`` bytes; never raises."""
    grace = time.monotonic() + FINISH_GRACE
    chunks.deadline = grace if chunks.deadline is None else min(grace, chunks.deadline)
    extra = 0
    with contextlib.suppress(HolySheepError, StopAsyncIteration):
        while extra <= FINISH_MAX_BYTES:
            extra += len(await chunks.__anext__())
