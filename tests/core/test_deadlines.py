"""The call's deadline bounds the whole call on every transport, whatever the server does
with its bytes: trickled headers or body, keep-alive comments for ever, a connection held
open after ``[DONE]``, a redirect loop.

The misbehaving server runs in another process (``tests/raw_server.py``), so its pace does
not depend on this one's. Bounds are generous for a busy machine: a 1 s deadline against a
server that would take for ever must end well under 10 s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

from holysheep_core import (
    APIStatusError,
    APITimeoutError,
    AsyncHolySheepClient,
    BreakerPolicy,
    HolySheepClient,
    HolySheepError,
    RetryPolicy,
    Stats,
    StreamTimeoutError,
)
from holysheep_core.emulator import Fault

KEY = "hs-deadline-key-0123456789"
TRANSPORTS = ["sync", "aiohttp", "httpx"]
MESSAGES = [{"role": "user", "content": "hi"}]
GENEROUS = 10.0
"""Seconds a call bounded at 1-2 s must end within, even on a busy machine."""


@dataclass
class Outcome:
    result: Any
    error: HolySheepError | None
    seconds: float
    stats: Stats


async def run(transport: str, what: str, base_url: str, **settings: Any) -> Outcome:
    """Make one call (``chat``, ``stream`` or ``health``) on a fresh client of
    ``transport``; return what it gave or raised, how long it took, and the client's stats."""
    settings = {"api_key": KEY, "base_url": base_url, **settings}
    start = time.monotonic()
    result: Any = None
    error: HolySheepError | None = None
    if transport == "sync":
        with HolySheepClient(**settings) as client:
            try:
                if what == "chat":
                    result = client.chat_completion(model="deepseek-v3.2", messages=MESSAGES)
                elif what == "stream":
                    with client.stream_chat_completion(
                        model="deepseek-v3.2", messages=MESSAGES
                    ) as stream:
                        result = list(stream)
                else:
                    result = client.health_check(timeout=1.0)
            except HolySheepError as exc:
                error = exc
            return Outcome(result, error, time.monotonic() - start, client.stats())
    async with AsyncHolySheepClient(async_backend=transport, **settings) as client:
        try:
            if what == "chat":
                result = await client.chat_completion(model="deepseek-v3.2", messages=MESSAGES)
            elif what == "stream":
                async with await client.stream_chat_completion(
                    model="deepseek-v3.2", messages=MESSAGES
                ) as stream:
                    result = [chunk async for chunk in stream]
            else:
                result = await client.health_check(timeout=1.0)
        except HolySheepError as exc:
            error = exc
        return Outcome(result, error, time.monotonic() - start, client.stats())


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", ["trickle-headers", "trickle-body"])
async def test_a_trickling_server_cannot_outlive_the_deadline(
    raw_server: Any, transport: str, fault: str
) -> None:
    # One byte every 0.5 s never trips a per-read timeout; the call's deadline must.
    out = await run(transport, "chat", raw_server.url(fault), retry=RetryPolicy(deadline=1.0))
    assert isinstance(out.error, APITimeoutError), out.error
    assert out.seconds < GENEROUS
    assert out.stats.errors == {type(out.error).__name__: 1} and out.stats.requests == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_deadline_timeout_reaches_the_breaker(raw_server: Any, transport: str) -> None:
    out = await run(
        transport,
        "chat",
        raw_server.url("trickle-body"),
        retry=RetryPolicy(deadline=1.0),
        breaker=BreakerPolicy(failure_threshold=1, cool_down=60),
    )
    assert isinstance(out.error, APITimeoutError)
    assert list(out.stats.breakers.values()) == ["open"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_health_check_timeout_bounds_the_whole_check(raw_server: Any, transport: str) -> None:
    out = await run(transport, "health", raw_server.url("trickle-headers"))
    assert out.error is None and out.result.ok is False
    assert "timed out" in (out.result.error or "")
    assert out.seconds < GENEROUS


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_keep_alive_comments_cannot_outlive_a_stream_deadline(
    raw_server: Any, transport: str
) -> None:
    out = await run(
        transport,
        "stream",
        raw_server.url("keepalive-sse"),
        retry=RetryPolicy(deadline=30.0, stream_deadline=1.5),
    )
    assert isinstance(out.error, StreamTimeoutError), out.error
    assert isinstance(out.error, APITimeoutError)  # caught like any other timeout
    assert out.seconds < GENEROUS
    assert out.stats.errors == {"StreamTimeoutError": 1}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_stream_ends_at_done_though_the_server_holds_the_connection(
    raw_server: Any, transport: str
) -> None:
    # Default timeouts: reading on after [DONE] would wait out the 60 s read timeout.
    out = await run(transport, "stream", raw_server.url("done-then-hold"))
    assert out.error is None, out.error
    assert "".join(c.choices[0].delta.content or "" for c in out.result if c.choices) == "ok"
    assert out.result[-1].usage is not None and out.result[-1].usage.total_tokens == 7
    assert out.seconds < GENEROUS
    assert out.stats.requests == 1 and out.stats.errors == {}
    assert out.stats.usage.total_tokens == 7


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_redirects_are_never_followed(raw_server: Any, transport: str) -> None:
    out = await run(transport, "chat", raw_server.url("redirect-loop"))
    assert isinstance(out.error, APIStatusError) and out.error.status_code == 307
    assert out.error.attempts == 1  # not retried, not followed
    chain: BaseException | None = out.error
    while chain is not None:  # no redirect error carrying the request's headers
        assert KEY not in repr(chain.__dict__) and KEY not in str(chain)
        chain = chain.__cause__ or chain.__context__


def test_a_stall_mid_stream_is_a_stream_timeout(emulator: Any, make_client: Any) -> None:
    client = make_client(timeout=0.3, max_retries=0)
    emulator.inject(Fault.stall_mid_stream(after=2, seconds=5))
    with pytest.raises(StreamTimeoutError) as caught:
        for _ in client.stream_chat_completion(model="deepseek-v3.2", messages=MESSAGES):
            pass
    assert "deadline" not in str(caught.value)  # the read timeout, not a deadline
    assert client.stats().errors == {"StreamTimeoutError": 1}


async def test_a_stall_mid_stream_is_a_stream_timeout_async(
    emulator: Any, make_async_client: Any
) -> None:
    client = make_async_client(timeout=0.3, max_retries=0)
    emulator.inject(Fault.stall_mid_stream(after=2, seconds=5))
    with pytest.raises(StreamTimeoutError) as caught:
        async for _ in await client.stream_chat_completion(
            model="deepseek-v3.2", messages=MESSAGES
        ):
            pass
    assert "deadline" not in str(caught.value)
    assert client.stats().errors == {"StreamTimeoutError": 1}
