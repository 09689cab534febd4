"""httpx transports: the sync client's, and an async one for those who want httpx there."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx

from ..config import ClientConfig
from ..errors import APIConnectionError, APITimeoutError, HolySheepError, PoolTimeoutError
from .base import Reply, Send
from .deadline import (
    DEADLINE,
    DEADLINE_PASSED,
    FINISH_GRACE,
    FINISH_MAX_BYTES,
    STREAM_DEADLINE_PASSED,
    DeadlineBackend,
    deadline_in,
    drain,
    loop_deadline,
)
from .headers import default_headers
from .per_loop import PerLoop

__all__ = ["AsyncHttpxTransport", "HttpxTransport", "convert_httpx_error"]


def _limits(config: ClientConfig) -> tuple[httpx.Timeout, httpx.Limits]:
    t = config.timeout
    return (
        httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
        httpx.Limits(
            max_connections=config.max_connections,
            max_keepalive_connections=config.max_keepalive_connections,
            keepalive_expiry=config.keepalive_expiry,
        ),
    )


def _timeout(config: ClientConfig, cap: float | None) -> Any:
    if cap is None:
        return httpx.USE_CLIENT_DEFAULT
    t = config.timeout
    return httpx.Timeout(
        connect=min(t.connect, cap),
        read=min(t.read, cap),
        write=min(t.write, cap),
        pool=min(t.pool, cap),
    )


POOL_SATURATED = (
    "timed out waiting for a free connection: the pool is saturated "
    "(raise max_connections or lower concurrency)"
)


def convert_httpx_error(exc: Exception) -> HolySheepError:
    """The most specific of our errors for an httpx failure (the key is never in it)."""
    # The httpx error stays chained as __cause__ for debugging; its request, which holds the
    # Authorization header, must not travel with it into error trackers.
    if isinstance(exc, httpx.RequestError):
        exc._request = None
    if isinstance(exc, httpx.PoolTimeout):
        return PoolTimeoutError(POOL_SATURATED)
    if isinstance(exc, httpx.TimeoutException):
        detail = f": {exc}" if str(exc) else ""
        return APITimeoutError(f"request timed out ({type(exc).__name__}{detail})")
    return APIConnectionError(f"connection failed: {type(exc).__name__}: {exc}")


def _sync_transport(limits: httpx.Limits) -> httpx.HTTPTransport:
    """httpx's own transport, reading through sockets that honour :data:`DEADLINE` (httpx
    takes no network backend as an argument, so its pool's is wrapped in place)."""
    transport = httpx.HTTPTransport(limits=limits)
    pool = transport._pool
    pool._network_backend = DeadlineBackend(pool._network_backend)  # type: ignore[union-attr]
    return transport


class _SyncBody:
    __slots__ = ("_chunks", "_deadline", "_release", "_response")

    def __init__(
        self, response: httpx.Response, release: Callable[[], None], deadline: float | None
    ) -> None:
        self._response = response
        self._release = release
        self._deadline = deadline
        self._chunks = response.iter_bytes()

    def _next(self, deadline: float | None) -> bytes | None:
        token = DEADLINE.set(deadline)
        try:
            return next(self._chunks, None)
        except httpx.HTTPError as exc:
            raise convert_httpx_error(exc) from exc
        finally:
            DEADLINE.reset(token)

    def iter_bytes(self) -> Iterator[bytes]:
        while (data := self._next(self._deadline)) is not None:
            yield data

    def finish(self) -> None:
        deadline = time.monotonic() + FINISH_GRACE
        if self._deadline is not None:
            deadline = min(deadline, self._deadline)
        extra = 0
        # Whatever comes, the connection is closed below if the body did not end in time.
        with contextlib.suppress(HolySheepError):
            while extra <= FINISH_MAX_BYTES and (data := self._next(deadline)) is not None:
                extra += len(data)
        self.close()

    def close(self) -> None:
        self._response.close()
        self._release()


class _Builder:
    _config: ClientConfig
    _headers: dict[str, str]
    _base: str

    def _build(self, client: httpx.Client | httpx.AsyncClient, request: Send) -> httpx.Request:
        headers = {**self._headers, **request.headers} if request.headers else self._headers
        return client.build_request(
            request.method,
            self._base + request.path,
            content=request.body,
            headers=headers,
            timeout=_timeout(self._config, request.timeout),
        )


class HttpxTransport(_Builder):
    """One pooled ``httpx.Client`` for the life of a sync client; thread-safe.

    A gate of ``max_connections`` slots, held from sending until the body is closed, keeps
    httpcore's pool from ever queueing a request: with queued requests it can hand a queued
    one a connection it is about to close (encode/httpcore#1110), and the retry that follows
    would send the same POST, and bill it, twice.

    Its sockets cut every wait at the attempt's deadline (:mod:`.deadline`). An injected
    ``client`` is used as it is: its own transport times each read, not the whole attempt.
    """

    def __init__(self, config: ClientConfig, *, client: httpx.Client | None = None) -> None:
        self._config = config
        timeout, limits = _limits(config)
        self._owns = client is None
        # Redirects are never followed: the key would go wherever a Location points.
        self._client = client or httpx.Client(
            timeout=timeout, limits=limits, transport=_sync_transport(limits)
        )
        self._headers = default_headers(config)
        self._base = config.base_url
        self._gate = threading.BoundedSemaphore(config.max_connections)

    def _enter(self, cap: float | None) -> Callable[[], None]:
        wait = self._config.timeout.pool if cap is None else min(self._config.timeout.pool, cap)
        if not self._gate.acquire(timeout=wait):
            raise PoolTimeoutError(POOL_SATURATED)
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._gate.release()

        return release

    def send(self, request: Send) -> Reply:
        client = self._client
        stream_deadline = deadline_in(request.stream_timeout)
        token = DEADLINE.set(deadline_in(request.timeout))
        release = self._enter(request.timeout)
        try:
            try:
                response = client.send(
                    self._build(client, request), stream=True, follow_redirects=False
                )
            except httpx.HTTPError as exc:
                raise convert_httpx_error(exc) from exc
            if request.stream and response.is_success:
                body = _SyncBody(response, release, stream_deadline)
                release = _nothing  # the body gives the slot back when it is closed
                return Reply(response.status_code, response.headers, stream=body)
            try:
                data = response.read()
            except httpx.HTTPError as exc:
                raise convert_httpx_error(exc) from exc
            finally:
                response.close()
            return Reply(response.status_code, response.headers, data)
        finally:
            release()
            DEADLINE.reset(token)

    def close(self) -> None:
        if self._owns:
            self._client.close()


def _nothing() -> None:
    pass


class _AsyncChunks:
    """A body's chunks, each read cut at a deadline (a plain class: leaving it early needs
    no event-loop finaliser)."""

    __slots__ = ("_chunks", "deadline")

    def __init__(self, response: httpx.Response, deadline: float | None) -> None:
        self._chunks = response.aiter_bytes()
        self.deadline = deadline

    def __aiter__(self) -> _AsyncChunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            if self.deadline is None:
                return await self._chunks.__anext__()
            loop = asyncio.get_running_loop()
            async with asyncio.timeout_at(loop_deadline(self.deadline, loop.time())):
                return await self._chunks.__anext__()
        except TimeoutError as exc:
            raise APITimeoutError(STREAM_DEADLINE_PASSED) from exc
        except httpx.HTTPError as exc:
            raise convert_httpx_error(exc) from exc


class _AsyncBody:
    __slots__ = ("_chunks", "_response")

    def __init__(self, response: httpx.Response, deadline: float | None) -> None:
        self._response = response
        self._chunks = _AsyncChunks(response, deadline)

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def finish(self) -> None:
        await drain(self._chunks)
        await self.aclose()  # the connection is reused only if its body ended

    def close(self) -> None:
        # Called from __del__ or sync code: schedule the close if a loop is running.
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(self._response.aclose())

    async def aclose(self) -> None:
        await self._response.aclose()


class AsyncHttpxTransport(_Builder):
    """httpx.AsyncClient per event loop (an httpx pool cannot cross loops)."""

    def __init__(self, config: ClientConfig) -> None:
        self._config = config
        self._headers = default_headers(config)
        self._base = config.base_url
        self._clients = PerLoop(self._new_client, _close_client, _forget_client)

    def _new_client(self) -> httpx.AsyncClient:
        timeout, limits = _limits(self._config)
        return httpx.AsyncClient(timeout=timeout, limits=limits)

    async def send(self, request: Send) -> Reply:
        client = self._clients.current() or await self._clients.open()
        stream_deadline = deadline_in(request.stream_timeout)
        try:
            async with asyncio.timeout(request.timeout):
                response = await client.send(
                    self._build(client, request), stream=True, follow_redirects=False
                )
                if request.stream and response.is_success:
                    body = _AsyncBody(response, stream_deadline)
                    return Reply(response.status_code, response.headers, stream=body)
                try:
                    data = await response.aread()
                finally:
                    await response.aclose()
        except TimeoutError as exc:
            raise APITimeoutError(DEADLINE_PASSED) from exc
        except httpx.HTTPError as exc:
            raise convert_httpx_error(exc) from exc
        return Reply(response.status_code, response.headers, data)

    async def aclose(self) -> None:
        await self._clients.aclose()


async def _close_client(client: httpx.AsyncClient) -> None:
    await client.aclose()


def _forget_client(client: httpx.AsyncClient) -> None:
    """Its loop is closed; its sockets closed with the loop's transports."""
