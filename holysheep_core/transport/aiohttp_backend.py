"""The default async transport: aiohttp, several times faster than httpx's pool under
concurrency (DESIGN.md §5). One session per event loop, since a pool cannot cross loops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp

from ..config import ClientConfig
from ..errors import APIConnectionError, APITimeoutError, HolySheepError, PoolTimeoutError
from .base import Reply, Send
from .deadline import (
    DEADLINE_PASSED,
    STREAM_DEADLINE_PASSED,
    deadline_in,
    drain,
    loop_deadline,
)
from .headers import default_headers
from .per_loop import PerLoop

__all__ = ["AiohttpTransport", "convert_aiohttp_error"]


def convert_aiohttp_error(exc: BaseException, *, pool_full: bool = False) -> HolySheepError:
    """The most specific of our errors for an aiohttp failure. aiohttp raises the same
    timeout for a slow connect and a long wait for a pooled connection: ``pool_full`` (every
    connection busy when it struck) tells them apart."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        if pool_full:
            return PoolTimeoutError(
                "timed out waiting for a free connection: the pool is saturated "
                "(raise max_connections or lower concurrency)"
            )
        return APITimeoutError("timed out connecting to the server")
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return APITimeoutError(f"request timed out ({type(exc).__name__})")
    return APIConnectionError(f"connection failed: {type(exc).__name__}: {exc}")


class _Chunks:
    """A body's chunks, each read cut at a deadline (a plain class: leaving it early needs
    no event-loop finaliser); failures come out as our errors."""

    __slots__ = ("_content", "deadline")

    def __init__(self, response: aiohttp.ClientResponse, deadline: float | None) -> None:
        self._content = response.content
        self.deadline = deadline

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            if self.deadline is None:
                data = await self._content.readany()
            else:
                loop = asyncio.get_running_loop()
                async with asyncio.timeout_at(loop_deadline(self.deadline, loop.time())):
                    data = await self._content.readany()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            # aiohttp's own read timeout is a TimeoutError too: only ours is the deadline.
            if isinstance(exc, TimeoutError) and not isinstance(exc, aiohttp.ClientError):
                raise APITimeoutError(STREAM_DEADLINE_PASSED) from exc
            raise convert_aiohttp_error(exc) from exc
        if not data:
            raise StopAsyncIteration
        return data


class _Body:
    __slots__ = ("_chunks", "_response")

    def __init__(self, response: aiohttp.ClientResponse, deadline: float | None) -> None:
        self._response = response
        self._chunks = _Chunks(response, deadline)

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def finish(self) -> None:
        await drain(self._chunks)
        await self.aclose()  # the connection is reused only if its body ended

    def close(self) -> None:
        # Leaving early: drop the connection rather than drain an unbounded body.
        self._response.close()

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class AiohttpTransport:
    def __init__(self, config: ClientConfig) -> None:
        self._config = config
        self._headers = default_headers(config)
        self._base = config.base_url
        t = config.timeout
        # aiohttp's `connect` covers waiting for a pooled connection plus connecting.
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=t.pool + t.connect, sock_connect=t.connect, sock_read=t.read
        )
        self._sessions = PerLoop(self._new_session, _close_session, _close_dead_session)

    def _new_session(self) -> aiohttp.ClientSession:
        cfg = self._config
        connector = aiohttp.TCPConnector(
            limit=cfg.max_connections,
            limit_per_host=0,
            keepalive_timeout=cfg.keepalive_expiry,
            ttl_dns_cache=300,
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers=self._headers,
            auto_decompress=True,
            raise_for_status=False,
        )

    def _request_timeout(self, cap: float | None) -> aiohttp.ClientTimeout | None:
        if cap is None:
            return None
        t = self._config.timeout
        return aiohttp.ClientTimeout(
            total=None,
            connect=min(t.pool + t.connect, cap),
            sock_connect=min(t.connect, cap),
            sock_read=min(t.read, cap),
        )

    async def send(self, request: Send) -> Reply:
        session = self._sessions.current() or await self._sessions.open()
        stream_deadline = deadline_in(request.stream_timeout)
        # aiohttp times each read, not the whole: a server trickling bytes would hold the
        # call for ever without this bound on the attempt.
        loop = asyncio.get_running_loop()
        when = None if request.timeout is None else loop.time() + request.timeout
        bound = asyncio.timeout_at(when)
        try:
            async with bound:
                response = await session.request(
                    request.method,
                    self._base + request.path,
                    data=request.body,
                    headers=request.headers or None,
                    timeout=self._request_timeout(request.timeout) or aiohttp.helpers.sentinel,
                    # The key would go wherever a Location points, and a loop's error would
                    # carry the request's headers.
                    allow_redirects=False,
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            if bound.expired():
                raise APITimeoutError(DEADLINE_PASSED) from exc
            raise convert_aiohttp_error(exc, pool_full=_pool_full(session)) from exc
        if request.stream and 200 <= response.status < 300:
            return Reply(response.status, response.headers, stream=_Body(response, stream_deadline))
        bound = asyncio.timeout_at(when)
        try:
            async with bound:
                body = await response.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            response.close()
            if bound.expired():
                raise APITimeoutError(DEADLINE_PASSED) from exc
            raise convert_aiohttp_error(exc) from exc
        response.release()
        return Reply(response.status, response.headers, body)

    async def aclose(self) -> None:
        await self._sessions.aclose()


def _pool_full(session: aiohttp.ClientSession) -> bool:
    connector = session.connector
    return connector is not None and 0 < connector.limit <= len(connector._acquired)


async def _close_session(session: aiohttp.ClientSession) -> None:
    await session.close()


def _close_dead_session(session: aiohttp.ClientSession) -> None:
    # Its loop is closed, so nothing can be awaited: close the sockets directly.
    connector = session.connector
    session.detach()
    if connector is not None:
        connector._close()
