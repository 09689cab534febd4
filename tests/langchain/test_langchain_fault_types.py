"""Faults reach LangChain as the ModelError class a ``with_retry``/``with_fallbacks`` user
catches for the same fault anywhere: a stall mid-stream is a ``ModelTimeoutError``, a drop
a ``ModelConnectionError``, a proxy's context-window error a ``ContextOverflowError``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.exceptions import ContextOverflowError, ModelConnectionError, ModelTimeoutError

from holysheep_core import errors as core
from holysheep_core.emulator import Fault
from langchain_holysheep import ChatHolySheep

PROMPT = "tell me about the flock of sheep"


async def consume(chat: ChatHolySheep, asynchronous: bool) -> list[Any]:
    received: list[Any] = []
    if asynchronous:
        async for chunk in chat.astream(PROMPT):
            received.append(chunk)
    else:
        received.extend(chat.stream(PROMPT))
    return received


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_drop_mid_stream_is_a_connection_error(
    emulator: Any, make_chat: Callable[..., ChatHolySheep], asynchronous: bool
) -> None:
    emulator.inject(Fault.drop_mid_stream(after=3))
    with pytest.raises(ModelConnectionError) as caught:
        await consume(make_chat(max_retries=0), asynchronous)
    assert isinstance(caught.value, core.StreamError)  # and still a stream error
    assert caught.value.partial_content


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_stall_mid_stream_is_a_timeout(
    emulator: Any, make_chat: Callable[..., ChatHolySheep], asynchronous: bool
) -> None:
    emulator.inject(Fault.stall_mid_stream(after=2, seconds=5))
    with pytest.raises(ModelTimeoutError) as caught:
        await consume(make_chat(max_retries=0, timeout=0.3), asynchronous)
    assert isinstance(caught.value, core.StreamError)


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_litellm_context_window_error_is_a_context_overflow(
    raw_server: Any, api_key: str, asynchronous: bool
) -> None:
    chat = ChatHolySheep(api_key=api_key, base_url=raw_server.url("litellm-context"))
    with pytest.raises(ContextOverflowError) as caught:
        if asynchronous:
            await chat.ainvoke("hi")
        else:
            chat.invoke("hi")
    assert isinstance(caught.value, core.ContextLengthExceededError)
    assert caught.value.status_code == 400
