"""Transports: what they send, what they give back, and how their failures become ours."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import httpx
import pytest

from holysheep_core import APIConnectionError, APITimeoutError, ClientConfig, PoolTimeoutError
from holysheep_core.transport.aiohttp_backend import AiohttpTransport, convert_aiohttp_error
from holysheep_core.transport.base import Reply, Send
from holysheep_core.transport.headers import USER_AGENT, default_headers
from holysheep_core.transport.httpx_backend import (
    AsyncHttpxTransport,
    HttpxTransport,
    _timeout,
    convert_httpx_error,
)

KEY = "hs-transport-key-4242"


def config(url: str = "http://127.0.0.1:9/v1", **settings: Any) -> ClientConfig:
    return ClientConfig.resolve(api_key=KEY, base_url=url, env={}, **settings)


def async_transport(backend: str, cfg: ClientConfig) -> Any:
    return AiohttpTransport(cfg) if backend == "aiohttp" else AsyncHttpxTransport(cfg)


# --- converting failures ----------------------------------------------------------------------


def test_httpx_pool_timeout_says_the_pool_is_saturated() -> None:
    err = convert_httpx_error(httpx.PoolTimeout("no connection"))
    assert isinstance(err, APITimeoutError)
    assert "pool is saturated" in str(err)
    assert "max_connections" in str(err)  # and what to do about it


@pytest.mark.parametrize("cls", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.WriteTimeout])
def test_httpx_other_timeouts(cls: type[Exception]) -> None:
    err = convert_httpx_error(cls("slow"))
    assert isinstance(err, APITimeoutError)
    assert cls.__name__ in str(err)
    assert "pool" not in str(err)


@pytest.mark.parametrize(
    "cls", [httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError]
)
def test_httpx_connection_failures(cls: type[Exception]) -> None:
    err = convert_httpx_error(cls("reset by peer"))
    assert type(err) is APIConnectionError
    assert err.is_retryable
    assert "reset by peer" in str(err)


def test_aiohttp_connect_timeout_tells_a_full_pool_from_a_slow_server() -> None:
    full = convert_aiohttp_error(aiohttp.ConnectionTimeoutError(), pool_full=True)
    assert type(full) is PoolTimeoutError
    assert "saturated" in str(full)
    slow = convert_aiohttp_error(aiohttp.ConnectionTimeoutError(), pool_full=False)
    assert type(slow) is APITimeoutError
    assert "saturated" not in str(slow)


@pytest.mark.parametrize(
    "exc", [aiohttp.SocketTimeoutError(), aiohttp.ServerTimeoutError(), TimeoutError()]
)
def test_aiohttp_read_timeouts(exc: BaseException) -> None:
    err = convert_aiohttp_error(exc)
    assert isinstance(err, APITimeoutError)
    assert "saturated" not in str(err)


@pytest.mark.parametrize(
    "exc",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("cut"),
        aiohttp.ClientOSError(104, "reset"),
        ConnectionResetError("reset"),
    ],
)
def test_aiohttp_connection_failures(exc: BaseException) -> None:
    err = convert_aiohttp_error(exc)
    assert type(err) is APIConnectionError and err.is_retryable


# --- headers and timeouts --------------------------------------------------------------------


def test_default_headers() -> None:
    headers = default_headers(config(default_headers={"X-Team": "search"}))
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == USER_AGENT
    assert headers["X-Team"] == "search"


def test_user_headers_can_replace_the_user_agent() -> None:
    assert default_headers(config(default_headers={"User-Agent": "mine"}))["User-Agent"] == "mine"


def test_a_per_attempt_cap_lowers_every_httpx_timeout() -> None:
    cfg = config(timeout={"connect": 5, "read": 60, "write": 10, "pool": 10})
    capped = _timeout(cfg, 2.5)
    assert (capped.connect, capped.read, capped.write, capped.pool) == (2.5, 2.5, 2.5, 2.5)
    looser = _timeout(cfg, 7)
    assert (looser.connect, looser.read, looser.write, looser.pool) == (5, 7, 7, 7)
    assert _timeout(cfg, None) is httpx.USE_CLIENT_DEFAULT


def test_a_per_attempt_cap_lowers_every_aiohttp_timeout() -> None:
    transport = AiohttpTransport(config(timeout={"connect": 5, "read": 60, "pool": 10}))
    capped = transport._request_timeout(3)
    assert (capped.connect, capped.sock_connect, capped.sock_read) == (3, 3, 3)
    assert transport._request_timeout(None) is None


def test_reply_ok_and_request_id() -> None:
    headers = httpx.Headers({"X-Request-ID": "req_9"})
    assert Reply(204, headers).ok and not Reply(302, headers).ok and not Reply(500, headers).ok
    assert Reply(200, headers).request_id == "req_9"
    assert Reply(200, {}).request_id is None


# --- against a real server --------------------------------------------------------------------


def test_sync_transport_sends_headers_and_body(scripted: Any) -> None:
    transport = HttpxTransport(config(scripted.url, default_headers={"X-Team": "search"}))
    try:
        reply = transport.send(
            Send("POST", "/chat/completions", b'{"model":"m"}', headers={"X-Trace": "t1"})
        )
    finally:
        transport.close()
    [seen] = scripted.requests
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.headers["x-team"] == "search" and seen.headers["x-trace"] == "t1"
    assert seen.body == b'{"model":"m"}'
    assert reply.ok and reply.stream is None
    assert reply.headers.get("X-REQUEST-ID") == "req-1"  # case-insensitive


async def test_async_transport_sends_headers_and_body(scripted: Any, async_backend: str) -> None:
    cfg = config(scripted.url, default_headers={"X-Team": "a"})
    transport = async_transport(async_backend, cfg)
    try:
        reply = await transport.send(
            Send("POST", "/chat/completions", b'{"model":"m"}', headers={"X-Trace": "t1"})
        )
    finally:
        await transport.aclose()
    [seen] = scripted.requests
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.headers["x-team"] == "a" and seen.headers["x-trace"] == "t1"
    assert reply.ok and reply.body
    assert reply.headers.get("X-REQUEST-ID") == "req-1"


def test_an_error_status_on_a_stream_request_comes_back_read(scripted: Any) -> None:
    scripted.queue(scripted.Answer(429, {"error": {"message": "slow down"}}))
    transport = HttpxTransport(config(scripted.url))
    try:
        reply = transport.send(Send("POST", "/chat/completions", b"{}", stream=True))
    finally:
        transport.close()
    assert reply.status == 429 and reply.stream is None and b"slow down" in reply.body


async def test_async_error_status_on_a_stream_request_comes_back_read(
    scripted: Any, async_backend: str
) -> None:
    scripted.queue(scripted.Answer(503, {"error": {"message": "busy"}}))
    transport = async_transport(async_backend, config(scripted.url))
    try:
        reply = await transport.send(Send("POST", "/chat/completions", b"{}", stream=True))
    finally:
        await transport.aclose()
    assert reply.status == 503 and reply.stream is None and b"busy" in reply.body


def test_an_injected_httpx_client_is_left_open(scripted: Any) -> None:
    with httpx.Client() as own:
        transport = HttpxTransport(config(scripted.url), client=own)
        transport.send(Send("GET", "/models"))
        transport.close()
        assert not own.is_closed
        assert own.get(scripted.url + "/models").status_code == 200


def test_connection_refused_is_a_connection_error() -> None:
    transport = HttpxTransport(config("http://127.0.0.1:9/v1"))
    with pytest.raises(APIConnectionError) as info:
        transport.send(Send("GET", "/models"))
    transport.close()
    assert not isinstance(info.value, APITimeoutError)
    assert isinstance(info.value.__cause__, httpx.ConnectError)


async def test_async_connection_refused_is_a_connection_error(async_backend: str) -> None:
    transport = async_transport(async_backend, config("http://127.0.0.1:9/v1"))
    with pytest.raises(APIConnectionError) as info:
        await transport.send(Send("GET", "/models"))
    await transport.aclose()
    assert not isinstance(info.value, APITimeoutError)


def test_async_transport_pools_are_per_event_loop(scripted: Any, async_backend: str) -> None:
    transport = async_transport(async_backend, config(scripted.url))
    pools = transport._sessions if async_backend == "aiohttp" else transport._clients

    async def use() -> object:
        reply = await transport.send(Send("GET", "/models"))
        assert reply.ok
        return pools.current()

    first = asyncio.run(use())
    second = asyncio.run(use())  # a new loop gets a new pool, the old one is gone
    assert first is not second
    assert len(scripted.requests) == 2
