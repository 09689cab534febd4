"""Swapping ``ChatOpenAI(...)`` for ``ChatHolySheep(...)`` in existing code: ChatOpenAI's
arguments are taken, refused with what to use instead, or sent on as model_kwargs."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from canned_server import LOGPROBS, CannedServer
from langchain_helpers import chat_bodies
from pydantic import BaseModel

from holysheep_core import ConfigurationError
from langchain_holysheep import ChatHolySheep


@pytest.fixture
def canned() -> Iterator[CannedServer]:
    with CannedServer() as server:
        yield server


def chat_openai_arguments(api_key: str, base_url: str) -> dict[str, Any]:
    """25 arguments as a ChatOpenAI user writes them."""
    return {
        "model": "deepseek-v3.2",
        "temperature": 0.2,
        "max_tokens": 256,
        "top_p": 0.9,
        "n": 1,
        "seed": 7,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.1,
        "stop": ["\n\n\n"],
        "request_timeout": (5, 30),
        "max_retries": 3,
        "openai_api_key": api_key,
        "openai_api_base": base_url,
        "organization": os.environ.get("NO_SUCH_ORG_ID_VARIABLE"),  # None, as usual
        "streaming": False,
        "stream_usage": True,
        "logprobs": True,
        "top_logprobs": 2,
        "default_headers": {"X-App": "farm"},
        "default_query": None,
        "http_client": None,
        "tiktoken_model_name": None,
        "disabled_params": {"parallel_tool_calls": None},
        "service_tier": "auto",
        "verbosity": "low",
    }


class Weather(BaseModel):
    """Get the weather."""

    city: str


def test_a_chat_openai_call_swapped_for_chat_holysheep(api_key: str, canned: CannedServer) -> None:
    arguments = chat_openai_arguments(api_key, canned.url)
    assert len(arguments) == 25
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = ChatHolySheep(**arguments)
    told = sorted(str(w.message).split(" ")[0] for w in caught)
    assert told == ["service_tier", "verbosity"]  # unknown: sent as model_kwargs, with a word
    assert all(w.filename == __file__ for w in caught)  # pointing at the caller's line
    assert model.base_url == canned.url
    assert model.api_key.get_secret_value() == api_key

    reply = model.bind_tools([Weather], parallel_tool_calls=False).invoke("Hi")
    headers, body = canned.requests[-1]
    assert headers["x-app"] == "farm"
    assert {k: body[k] for k in ("temperature", "max_tokens", "top_p", "seed", "stop")} == {
        "temperature": 0.2,
        "max_tokens": 256,
        "top_p": 0.9,
        "seed": 7,
        "stop": ["\n\n\n"],
    }
    assert (body["logprobs"], body["top_logprobs"]) == (True, 2)
    assert (body["service_tier"], body["verbosity"]) == ("auto", "low")
    assert "parallel_tool_calls" not in body  # disabled_params
    assert reply.response_metadata["logprobs"] == {"content": LOGPROBS}
    assert reply.usage_metadata["total_tokens"] == 7


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_streamed_logprobs_reach_response_metadata(
    api_key: str, canned: CannedServer, asynchronous: bool
) -> None:
    model = ChatHolySheep(api_key=api_key, base_url=canned.url, logprobs=True)
    chunks = [c async for c in model.astream("Hi")] if asynchronous else list(model.stream("Hi"))
    with_logprobs = [c for c in chunks if c.response_metadata.get("logprobs")]
    assert [c.response_metadata["logprobs"]["content"] for c in with_logprobs] == [
        [p] for p in LOGPROBS
    ]
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert whole.response_metadata["logprobs"] == {"content": LOGPROBS}
    assert canned.requests[-1][1]["logprobs"] is True


def test_timeouts_in_chat_openai_forms(api_key: str) -> None:
    import httpx

    pair = ChatHolySheep(api_key=api_key, request_timeout=(2, 20))
    assert pair._client_config().timeout.connect == 2
    assert pair._client_config().timeout.read == 20
    full = ChatHolySheep(api_key=api_key, timeout=httpx.Timeout(7.0, connect=3.0))
    timeouts = full._client_config().timeout
    assert (timeouts.connect, timeouts.read, timeouts.write, timeouts.pool) == (3, 7, 7, 7)


def test_reasoning_effort_in_chat_openai_form(make_chat: Any, emulator: Any) -> None:
    make_chat(model="gpt-4.1", reasoning={"effort": "low"}).invoke("Hi")
    assert chat_bodies(emulator)[-1]["reasoning_effort"] == "low"


def test_disabled_params_drop_only_the_values_named(make_chat: Any) -> None:
    model = make_chat(disabled_params={"tool_choice": ["required"]})
    bound = model.bind_tools([Weather], tool_choice="required")
    _, _, params, _ = model._request([], None, bound.kwargs)  # type: ignore[attr-defined]
    assert "tool_choice" not in params and params["tools"]
    bound = model.bind_tools([Weather], tool_choice="auto")
    _, _, params, _ = model._request([], None, bound.kwargs)  # type: ignore[attr-defined]
    assert params["tool_choice"] == "auto"


@pytest.mark.parametrize(
    ("name", "value", "instead"),
    [
        ("organization", "org-farm", "bills by API key"),
        ("http_client", object(), "max_connections"),
        ("default_query", {"api-version": "1"}, "no query parameters"),
        ("tiktoken_model_name", "gpt-4o", "custom_get_token_ids"),
        ("openai_proxy", "http://proxy:3128", "HTTPS_PROXY"),
        ("use_responses_api", True, "Chat Completions API only"),
    ],
)
def test_openai_client_options_are_refused_saying_what_to_use(
    api_key: str, name: str, value: Any, instead: str
) -> None:
    with pytest.raises(ConfigurationError, match=instead) as raised:
        ChatHolySheep(api_key=api_key, **{name: value})
    assert name in str(raised.value)
    assert api_key not in str(raised.value)
    assert api_key not in repr(raised.value.__context__)


def test_both_spellings_of_one_setting_are_refused(api_key: str) -> None:
    with pytest.raises(ConfigurationError, match="same setting") as raised:
        ChatHolySheep(api_key=api_key, openai_api_key=api_key)
    assert api_key not in str(raised.value)


def test_stream_usage_none_means_the_default(make_chat: Any) -> None:
    assert make_chat(stream_usage=None).stream_usage is True
