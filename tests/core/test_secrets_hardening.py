"""The key never rides along: not in a stream error's cause, an echoed error event, a
redirect, credentials in the base URL, or a header that cannot be sent."""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from holysheep_core import (
    AsyncHolySheepClient,
    ConfigurationError,
    HolySheepClient,
    StreamConnectionError,
    StreamError,
)

MODEL = "deepseek-v3.2"
HI = [{"role": "user", "content": "hi"}]


def chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__]


def assert_no_key(exc: BaseException, key: str) -> None:
    for e in chain(exc):
        for view in (str(e), repr(e), repr(vars(e)), repr(getattr(e, "__notes__", []))):
            assert key not in view, view[:300]
        if isinstance(e, httpx.RequestError):
            # httpx keeps the request, Authorization header and all, unless it was dropped.
            with pytest.raises(RuntimeError):
                _ = e.request
    assert key not in "".join(traceback.format_exception(exc))
    assert key.encode() not in pickle.dumps(exc)


async def stream_error(transport: str, url: str, key: str) -> StreamError:
    if transport == "sync":
        with HolySheepClient(api_key=key, base_url=url, max_retries=0) as client:
            with pytest.raises(StreamError) as caught:
                for _ in client.stream_chat_completion(model=MODEL, messages=HI):
                    pass
            return caught.value
    async with AsyncHolySheepClient(
        api_key=key, base_url=url, max_retries=0, async_backend=transport
    ) as client:
        with pytest.raises(StreamError) as caught:
            async for _ in await client.stream_chat_completion(model=MODEL, messages=HI):
                pass
        return caught.value


TRANSPORTS = ["sync", "aiohttp", "httpx"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_dropped_stream_carries_no_request(
    scripted: Any, canary_key: str, transport: str
) -> None:
    first = scripted.stream_events()[:2]
    scripted.queue(scripted.Answer(parts=[*first, scripted.DROP]))
    err = await stream_error(transport, scripted.url, canary_key)
    assert isinstance(err, StreamConnectionError)
    assert_no_key(err, canary_key)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    "event",
    [
        'event: error\ndata: {"error": {"message": "invalid key Bearer KEY", "code": "401"}}\n\n',
        "data: not json at all, Authorization: Bearer KEY\n\n",
        'data: {"error": "bad key KEY"}\n\n',
    ],
    ids=["error-event", "malformed", "error-payload"],
)
async def test_a_key_echoed_in_a_stream_event_is_redacted(
    scripted: Any, canary_key: str, transport: str, event: str
) -> None:
    first = scripted.stream_events()[:2]
    scripted.queue(scripted.Answer(parts=[*first, event.replace("KEY", canary_key).encode()]))
    err = await stream_error(transport, scripted.url, canary_key)
    assert "[redacted]" in str(err)
    assert_no_key(err, canary_key)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_credentials_in_the_base_url_are_refused_masked(canary_key: str, transport: str) -> None:
    url = "http://user:hunter2-password@127.0.0.1:9/v1"
    with pytest.raises(ConfigurationError) as caught:
        if transport == "sync":
            HolySheepClient(api_key=canary_key, base_url=url)
        else:
            AsyncHolySheepClient(api_key=canary_key, base_url=url, async_backend=transport)
    assert "credentials" in str(caught.value)
    assert "127.0.0.1" in str(caught.value)
    for e in chain(caught.value):
        assert "hunter2" not in str(e) and "hunter2" not in repr(e)
        assert canary_key not in str(e)


def test_credentials_in_the_environment_base_url_are_refused(
    monkeypatch: pytest.MonkeyPatch, canary_key: str
) -> None:
    monkeypatch.setenv("HOLYSHEEP_BASE_URL", "https://me:hunter2@api.example/v1")
    with pytest.raises(ConfigurationError) as caught:
        HolySheepClient(api_key=canary_key)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Team": "a\r\nX-Injected: 1"},
        {"X-Team": "a\nb"},
        {"X-Team": "a\x00b"},
        {"X Team": "a"},
        {"X-Team:": "a"},
        {"": "a"},
    ],
)
def test_headers_no_request_can_carry_are_refused_before_the_network(
    scripted: Any, canary_key: str, headers: dict[str, str]
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        HolySheepClient(api_key=canary_key, base_url=scripted.url, default_headers=headers)
    assert "header" in str(caught.value)
    assert scripted.requests == []


def test_a_header_value_is_not_repeated_in_the_error(canary_key: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        HolySheepClient(api_key=canary_key, default_headers={"X-Api-Key": f"{canary_key}\r\n"})
    assert "X-Api-Key" in str(caught.value)
    assert_no_key(caught.value, canary_key)
