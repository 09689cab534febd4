"""Core errors surface as langchain-core's ModelError family, fields and cause kept."""

from __future__ import annotations

import inspect
import pickle
import socket
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from langchain_core.exceptions import (
    ContextOverflowError,
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelRateLimitError,
    ModelTimeoutError,
)
from langchain_helpers import chat_bodies

from holysheep_core import errors as core
from holysheep_core.emulator import Fault, reply_to
from langchain_holysheep import ChatHolySheep
from langchain_holysheep.errors import (
    HolySheepRateLimitError,
    HolySheepStreamError,
    langchain_errors,
    to_langchain_error,
)


def _raise(exc: BaseException) -> None:
    with langchain_errors():
        raise exc


@pytest.mark.parametrize(
    ("core_error", "family"),
    [
        (core.RateLimitError("slow down", status_code=429, retry_after=3.0), ModelRateLimitError),
        (core.AuthenticationError("bad key", status_code=401), ModelAuthenticationError),
        (core.NotFoundError("no model", status_code=404), ModelNotFoundError),
        (core.ContextLengthExceededError("too long", status_code=400), ContextOverflowError),
        (core.BadRequestError("bad", status_code=400), ModelInvalidRequestError),
        (
            core.InvalidRequestError("bad temperature", param="temperature"),
            ModelInvalidRequestError,
        ),
        (core.InternalServerError("boom", status_code=503), ModelAPIError),
        (core.APIStatusError("teapot", status_code=418), ModelAPIError),
        (core.APIConnectionError("refused"), ModelConnectionError),
        (core.APITimeoutError("slow"), ModelTimeoutError),
        (core.StreamError("cut", partial_content="Hel"), ModelAPIError),
        (core.CircuitOpenError("open", key="gpt-4.1", retry_after=5.0), ModelAPIError),
        (
            core.BudgetExceededError(
                "over budget",
                budget_usd=Decimal("1"),
                spent_usd=Decimal("0.99"),
                estimate_usd=Decimal("0.02"),
            ),
            ModelError,
        ),
    ],
)
def test_each_core_error_maps_into_the_family(core_error: Exception, family: type) -> None:
    with pytest.raises(family) as caught:
        _raise(core_error)
    mapped = caught.value
    assert isinstance(mapped, type(core_error)), "code catching the core error keeps working"
    assert mapped.__cause__ is core_error
    assert mapped.is_retryable == core_error.is_retryable
    assert str(mapped) == str(core_error)
    for name in ("status_code", "request_id", "retry_after"):
        assert getattr(mapped, name) == getattr(core_error, name)


def test_every_core_error_has_a_twin() -> None:
    classes = [
        c
        for _, c in inspect.getmembers(core, inspect.isclass)
        if issubclass(c, core.HolySheepError)
        and c not in (core.HolySheepError, core.ConfigurationError)
    ]
    assert len(classes) > 15
    for cls in classes:
        bare = cls.__new__(cls)
        Exception.__init__(bare, "x")
        assert isinstance(to_langchain_error(bare), ModelError), cls.__name__


def test_mapped_errors_keep_retryability_and_pickle() -> None:
    err = core.RateLimitError(
        "slow down", status_code=429, request_id="req_1", retry_after=2.5, should_retry=False
    )
    mapped = to_langchain_error(err)
    assert isinstance(mapped, HolySheepRateLimitError)
    # The server's x-should-retry: false wins over the class default of a 429.
    assert mapped.is_retryable is False
    again = pickle.loads(pickle.dumps(mapped))
    assert type(again) is HolySheepRateLimitError
    assert (again.request_id, again.retry_after, again.is_retryable) == ("req_1", 2.5, False)


def test_other_errors_pass_through_unchanged() -> None:
    config_error = core.ConfigurationError("no API key")
    assert to_langchain_error(config_error) is config_error
    with pytest.raises(KeyError):
        _raise(KeyError("x"))


# --- against the emulator ---------------------------------------------------------------


@pytest.fixture
def strict_chat(make_chat: Callable[..., ChatHolySheep]) -> ChatHolySheep:
    return make_chat(max_retries=0)


def test_rate_limit(emulator: Any, strict_chat: ChatHolySheep) -> None:
    emulator.inject(Fault.status(429, retry_after=7))
    with pytest.raises(ModelRateLimitError) as caught:
        strict_chat.invoke("hi")
    err = caught.value
    assert isinstance(err, core.RateLimitError)
    assert err.is_retryable and err.status_code == 429 and err.retry_after == 7
    assert err.request_id and err.request_id.startswith("req_")
    assert isinstance(err.__cause__, core.RateLimitError)


async def test_server_error_async(emulator: Any, strict_chat: ChatHolySheep) -> None:
    emulator.inject(Fault.status(503))
    with pytest.raises(ModelAPIError) as caught:
        await strict_chat.ainvoke("hi")
    assert caught.value.status_code == 503 and caught.value.is_retryable


def test_retries_happen_in_the_core(emulator: Any, make_chat: Callable[..., Any]) -> None:
    emulator.inject(Fault.status(503, retry_after=0))
    reply = make_chat(max_retries=1).invoke("hi")
    assert reply.content == reply_to("hi")
    assert len(chat_bodies(emulator)) == 2


def test_wrong_key(base_url: str) -> None:
    model = ChatHolySheep(api_key="hs-wrong", base_url=base_url, max_retries=0)
    with pytest.raises(ModelAuthenticationError) as caught:
        model.invoke("hi")
    assert caught.value.status_code == 401 and not caught.value.is_retryable


def test_unknown_model(strict_chat: ChatHolySheep) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        strict_chat.invoke("hi", model="no-such-model")
    assert caught.value.status_code == 404


def test_context_overflow(make_chat: Callable[..., ChatHolySheep]) -> None:
    # The emulator serves "-small-context" models with a 1000-token window.
    model = make_chat(model="deepseek-v3.2-small-context", max_retries=0)
    with pytest.raises(ContextOverflowError) as caught:
        model.invoke("sheep " * 1200)
    assert isinstance(caught.value, ModelError)
    assert isinstance(caught.value, core.ContextLengthExceededError)


def test_bad_argument_fails_before_any_request(emulator: Any, chat: ChatHolySheep) -> None:
    with pytest.raises(ModelInvalidRequestError) as caught:
        chat.invoke("hi", temperature=7)
    assert isinstance(caught.value, ValueError)
    assert emulator.requests == []


def test_connection_refused(api_key: str) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = ChatHolySheep(api_key=api_key, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    with pytest.raises(ModelConnectionError) as caught:
        model.invoke("hi")
    assert caught.value.is_retryable


def test_timeout(emulator: Any, make_chat: Callable[..., ChatHolySheep]) -> None:
    emulator.inject(Fault.slow_first_byte(1.0))
    with pytest.raises(ModelTimeoutError):
        make_chat(timeout=0.2, max_retries=0).invoke("hi")


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_stream_cut_mid_way(
    emulator: Any, strict_chat: ChatHolySheep, asynchronous: bool
) -> None:
    emulator.inject(Fault.drop_mid_stream(after=3))
    received = []
    with pytest.raises(HolySheepStreamError) as caught:
        if asynchronous:
            async for chunk in strict_chat.astream("tell me about the flock of sheep"):
                received.append(chunk)
        else:
            for chunk in strict_chat.stream("tell me about the flock of sheep"):
                received.append(chunk)
    assert isinstance(caught.value, ModelError) and isinstance(caught.value, core.StreamError)
    assert received, "chunks before the cut reach the caller"
    text = "".join(str(c.content) for c in received)
    assert caught.value.partial_content == text
