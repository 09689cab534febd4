"""The API key never shows: not in a repr, a dump, a log line, an exception, its notes, its
traceback or its pickle, even when a server echoes it back."""

from __future__ import annotations

import json
import logging
import pickle
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from holysheep_core import (
    AsyncHolySheepClient,
    ClientConfig,
    ConfigurationError,
    HolySheepClient,
    HolySheepError,
)
from holysheep_core.config import ENV_KEY

MODEL = "deepseek-v3.2"
HI = [{"role": "user", "content": "hi"}]


def leaks(text: str | bytes, key: str) -> bool:
    needle = key.encode() if isinstance(text, bytes) else key
    return needle in text


def exception_views(exc: BaseException) -> list[str | bytes]:
    """Everything a user, a logger or an error tracker could print or ship of an error."""
    return [
        str(exc),
        repr(exc),
        repr(exc.args),
        repr(getattr(exc, "__notes__", [])),
        repr(vars(exc)),
        "".join(traceback.format_exception(exc)),  # with its whole cause chain
        pickle.dumps(exc),
    ]


def assert_secret(key: str, *views: str | bytes) -> None:
    for view in views:
        assert not leaks(view, key), f"the key leaked in: {view[:300]!r}"


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx, httpcore, aiohttp
    return caplog


def echoing_answers(scripted: Any, key: str) -> list[Any]:
    """Answers that put the key where a careless server or proxy would."""
    answer = scripted.Answer
    return [
        answer(503, {"error": {"message": "busy"}}),  # retried: logged
        answer(401, {"error": {"message": f"Incorrect API key provided: {key}"}}),
        answer(
            502,
            f"<html><body><h1>502</h1><pre>Authorization: Bearer {key}</pre></body>".encode(),
            content_type="text/html",
        ),
    ]


# --- configuration -------------------------------------------------------------------------


def test_config_reprs_and_dumps_hide_the_key(canary_key: str) -> None:
    config = ClientConfig.resolve(api_key=canary_key, env={})
    assert config.api_key.get_secret_value() == canary_key
    assert_secret(
        canary_key,
        repr(config),
        str(config),
        f"{config}",
        repr(config.api_key),
        str(config.api_key),
        config.model_dump_json(),
        json.dumps(config.model_dump(mode="json")),
        repr(config.model_dump()),
    )


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
def test_client_reprs_hide_the_key(canary_key: str, backend: str) -> None:
    with HolySheepClient(api_key=canary_key) as client:
        assert_secret(canary_key, repr(client), str(client), repr(client.stats()))
    client = AsyncHolySheepClient(api_key=canary_key, async_backend=backend)
    assert_secret(canary_key, repr(client), str(client), repr(client.config))


@pytest.mark.parametrize(
    "build",
    [
        lambda key: ClientConfig.resolve(api_key=key, env={}),
        lambda key: ClientConfig.resolve(env={ENV_KEY: key}),
        lambda key: ClientConfig(api_key=key),
        lambda key: ClientConfig(api_key=SecretStr(key)),
        lambda key: HolySheepClient(api_key=key),
        lambda key: AsyncHolySheepClient(api_key=key),
    ],
    ids=["resolve", "env", "model", "model-secret", "client", "async-client"],
)
@pytest.mark.parametrize("flaw", [" ", "\n", "\x00", "é"])
def test_a_refused_key_is_not_repeated_in_the_error(
    canary_key: str, build: Callable[[str], object], flaw: str
) -> None:
    key = canary_key[:10] + flaw + canary_key[10:]
    with pytest.raises(ConfigurationError) as info:
        build(key)
    for part in (canary_key[:10], canary_key[10:]):
        assert_secret(part, *exception_views(info.value))


# --- calls that fail in every way, sync -----------------------------------------------------


def test_sync_errors_and_logs_never_carry_the_key(
    scripted: Any, make_client: Any, canary_key: str, all_logs: pytest.LogCaptureFixture
) -> None:
    client = make_client(api_key=canary_key, base_url=scripted.url, max_retries=1)
    scripted.queue(*echoing_answers(scripted, canary_key))
    errors: list[HolySheepError] = []
    for _ in range(2):  # 503 then 401; then the 502 page, retried into a success
        try:
            client.chat_completion(model=MODEL, messages=HI)
        except HolySheepError as exc:
            errors.append(exc)
    scripted.queue(scripted.Answer(parts=[*scripted.stream_events()[:2], scripted.DROP]))
    try:
        list(client.stream_chat_completion(model=MODEL, messages=HI))
    except HolySheepError as exc:
        errors.append(exc)
    scripted.queue(scripted.Answer(delay=1.0))
    try:
        make_client(
            api_key=canary_key, base_url=scripted.url, timeout={"read": 0.1}, max_retries=0
        ).chat_completion(model=MODEL, messages=HI)
    except HolySheepError as exc:
        errors.append(exc)
    try:
        make_client(api_key=canary_key, base_url="http://127.0.0.1:9/v1").models()
    except HolySheepError as exc:
        errors.append(exc)
    scripted.queue(echoing_answers(scripted, canary_key)[1])
    health = client.health_check()
    assert [type(e).__name__ for e in errors] == [
        "AuthenticationError",
        "StreamConnectionError",
        "APITimeoutError",
        "APIConnectionError",
    ]
    assert "[redacted]" in errors[0].message  # the echo is still readable, minus the key
    assert not health.ok and "[redacted]" in health.error
    assert "retrying" in all_logs.text  # the logs were captured, and are clean
    assert_secret(canary_key, all_logs.text, repr(health), repr(client.stats()))
    for exc in errors:
        assert_secret(canary_key, *exception_views(exc))
    # The key did go where it belongs: the Authorization header.
    assert scripted.requests[0].headers["authorization"] == f"Bearer {canary_key}"


async def test_async_errors_and_logs_never_carry_the_key(
    scripted: Any, make_async_client: Any, canary_key: str, all_logs: pytest.LogCaptureFixture
) -> None:
    client = make_async_client(api_key=canary_key, base_url=scripted.url, max_retries=1)
    scripted.queue(*echoing_answers(scripted, canary_key))
    errors: list[HolySheepError] = []
    for _ in range(2):
        try:
            await client.chat_completion(model=MODEL, messages=HI)
        except HolySheepError as exc:
            errors.append(exc)
    scripted.queue(scripted.Answer(parts=[*scripted.stream_events()[:2], scripted.DROP]))
    try:
        async for _ in await client.stream_chat_completion(model=MODEL, messages=HI):
            pass
    except HolySheepError as exc:
        errors.append(exc)
    scripted.queue(scripted.Answer(delay=1.0))
    try:
        await make_async_client(
            api_key=canary_key, base_url=scripted.url, timeout={"read": 0.1}, max_retries=0
        ).chat_completion(model=MODEL, messages=HI)
    except HolySheepError as exc:
        errors.append(exc)
    try:
        await make_async_client(api_key=canary_key, base_url="http://127.0.0.1:9/v1").models()
    except HolySheepError as exc:
        errors.append(exc)
    scripted.queue(echoing_answers(scripted, canary_key)[1])
    health = await client.health_check()
    assert [type(e).__name__ for e in errors] == [
        "AuthenticationError",
        "StreamConnectionError",
        "APITimeoutError",
        "APIConnectionError",
    ]
    assert not health.ok and "[redacted]" in health.error
    assert "retrying" in all_logs.text
    assert_secret(canary_key, all_logs.text, repr(health), repr(client.stats()))
    for exc in errors:
        assert_secret(canary_key, *exception_views(exc))


def test_results_carry_no_key(scripted: Any, make_client: Any, canary_key: str) -> None:
    client = make_client(api_key=canary_key, base_url=scripted.url)
    completion = client.chat_completion(model=MODEL, messages=HI)
    chunks = list(client.stream_chat_completion(model=MODEL, messages=HI))
    assert_secret(
        canary_key,
        completion.model_dump_json(),
        pickle.dumps(completion),
        repr(completion),
        *(pickle.dumps(c) for c in chunks),
    )
