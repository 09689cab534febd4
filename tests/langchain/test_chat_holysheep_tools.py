"""Tool calling: bind_tools on the wire, streamed calls that merge, and a thinking-mode loop
that sends reasoning back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.exceptions import ModelInvalidRequestError
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.tools import tool
from langchain_helpers import chat_bodies
from pydantic import BaseModel, Field

from holysheep_core.emulator import QUIRKS_HEADER
from langchain_holysheep import ChatHolySheep

Make = Callable[..., ChatHolySheep]


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny in {city}"


@tool
def get_time(city: str) -> str:
    """Get the local time in a city."""
    return f"Noon in {city}"


class CountSheep(BaseModel):
    """Count the sheep in a field."""

    field: str = Field(description="name of the field")


TOOLS = {"get_weather": get_weather, "get_time": get_time}
QUESTION = 'What are the weather and the time in "Paris"?'


@pytest.mark.parametrize(
    ("choice", "wire", "called"),
    [
        ("get_time", {"type": "function", "function": {"name": "get_time"}}, ["get_time"]),
        # "required" calls the best-matching tool; both match, the first declared wins.
        ("any", "required", ["get_weather"]),
        ("required", "required", ["get_weather"]),
        (True, "required", ["get_weather"]),
        ("auto", "auto", ["get_weather", "get_time"]),
        ("none", "none", []),
    ],
)
def test_tool_choice_on_the_wire(
    emulator: Any, chat: ChatHolySheep, choice: Any, wire: Any, called: list[str]
) -> None:
    reply = chat.bind_tools([get_weather, get_time], tool_choice=choice).invoke(QUESTION)
    (body,) = chat_bodies(emulator)
    assert body["tool_choice"] == wire
    assert [c["name"] for c in reply.tool_calls] == called


def test_tools_strict_and_parallel(emulator: Any, chat: ChatHolySheep) -> None:
    bound = chat.bind_tools([get_weather, CountSheep], strict=True, parallel_tool_calls=False)
    reply = bound.invoke(QUESTION)
    (body,) = chat_bodies(emulator)
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather", "CountSheep"]
    assert all(t["function"]["strict"] is True for t in body["tools"])
    assert body["parallel_tool_calls"] is False
    assert "tool_choice" not in body
    assert [c["name"] for c in reply.tool_calls] == ["get_weather"]
    assert reply.tool_calls[0]["args"] == {"city": "Paris"}


def test_unknown_tool_choice_fails_before_any_request(emulator: Any, chat: ChatHolySheep) -> None:
    with pytest.raises(ValueError, match="get_wether"):
        chat.bind_tools([get_weather], tool_choice="get_wether")
    assert emulator.requests == []


def _streamed(model: ChatHolySheep, messages: Any, **kwargs: Any) -> AIMessageChunk:
    full = None
    for chunk in model.stream(messages, **kwargs):
        full = chunk if full is None else full + chunk
    assert isinstance(full, AIMessageChunk)
    return full


@pytest.mark.parametrize("quirk", ["", "no-tool-index"])
def test_streamed_parallel_calls_merge(emulator: Any, make_chat: Make, quirk: str) -> None:
    # With "no-tool-index" the emulator leaves `index` out of tool call deltas, as some
    # compatible servers do (langchain #31634); the core numbers them again.
    headers = {QUIRKS_HEADER: quirk} if quirk else None
    model = make_chat(default_headers=headers).bind_tools([get_weather, get_time])
    invoked = model.invoke(QUESTION)
    streamed = _streamed(model, QUESTION)
    assert emulator.requests[-1].headers.get(QUIRKS_HEADER) == (quirk or None)
    assert len(streamed.tool_calls) == 2
    assert [(c["name"], c["args"]) for c in streamed.tool_calls] == [
        (c["name"], c["args"]) for c in invoked.tool_calls
    ]
    assert all(c["id"] and c["id"].startswith("call_") for c in streamed.tool_calls)
    assert not streamed.invalid_tool_calls


def _run_tools(reply: AIMessage) -> list[BaseMessage]:
    return [TOOLS[call["name"]].invoke(call) for call in reply.tool_calls]


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_mode_tool_loop(emulator: Any, make_chat: Make, stream: bool) -> None:
    """DeepSeek's thinking mode refuses a tool loop whose assistant turn lost its reasoning
    (langchain #34166): the loop works because the reasoning goes back on the wire."""
    model = make_chat(thinking=True).bind_tools([get_weather, get_time])
    messages: list[BaseMessage] = [HumanMessage(QUESTION)]
    first = _streamed(model, messages) if stream else model.invoke(messages)
    assert len(first.tool_calls) == 2
    reasoning = first.additional_kwargs["reasoning_content"]
    messages += [first, *_run_tools(first)]
    final = _streamed(model, messages) if stream else model.invoke(messages)
    assert final.content == (
        "Based on the tool results: get_weather returned Sunny in Paris; "
        "get_time returned Noon in Paris"
    )
    sent = chat_bodies(emulator)[-1]["messages"]
    assistant = next(m for m in sent if m["role"] == "assistant")
    assert assistant["reasoning_content"] == reasoning
    assert [c["id"] for c in assistant["tool_calls"]] == [c["id"] for c in first.tool_calls]


def test_without_reasoning_the_server_refuses_the_loop(make_chat: Make) -> None:
    # The control for the test above: drop the reasoning and thinking mode says no.
    model = make_chat(thinking=True, max_retries=0).bind_tools([get_weather])
    first = model.invoke('What is the weather in "Paris"?')
    stripped = AIMessage(content="", tool_calls=first.tool_calls)
    messages = [HumanMessage('What is the weather in "Paris"?'), stripped, *_run_tools(first)]
    with pytest.raises(ModelInvalidRequestError, match="reasoning_content"):
        model.invoke(messages)


async def test_async_tool_calls(chat: ChatHolySheep) -> None:
    model = chat.bind_tools([get_weather], tool_choice="get_weather")
    reply = await model.ainvoke('Weather in "Oslo"?')
    assert reply.tool_calls[0]["args"] == {"city": "Oslo"}
    full = None
    async for chunk in model.astream('Weather in "Oslo"?'):
        full = chunk if full is None else full + chunk
    assert isinstance(full, AIMessageChunk)
    assert full.tool_calls[0]["args"] == {"city": "Oslo"}
