"""Request checks: every bad argument is an InvalidRequestError naming it, before the network."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from holysheep_core import InvalidRequestError
from holysheep_core.params import build_chat_body, build_embeddings_body, encode_json

MODEL = "deepseek-v3.2"
USER = {"role": "user", "content": "hi"}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
NAN = float("nan")


def call(messages: Any = None, **params: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [USER] if messages is None else messages, **params}


# (id, chat_completion kwargs, the param the error names)
BAD_CHAT: list[tuple[str, dict[str, Any], str]] = [
    ("empty messages", call([]), "messages"),
    ("messages is a string", call("hello"), "messages"),
    ("messages is None", {"model": MODEL, "messages": None}, "messages"),
    ("message is a string", call(["hi"]), "messages[0]"),
    ("unknown role", call([{"role": "wizard", "content": "hi"}]), "messages[0]"),
    ("missing role", call([{"content": "hi"}]), "messages[0]"),
    ("second message bad", call([USER, {"role": "robot", "content": "x"}]), "messages[1]"),
    ("user content None", call([{"role": "user", "content": None}]), "messages[0]"),
    ("content is a number", call([{"role": "user", "content": 5}]), "messages[0]"),
    ("content is a set", call([{"role": "user", "content": {"a", "b"}}]), "messages[0]"),
    ("content is an object", call([{"role": "user", "content": object()}]), "messages[0]"),
    ("content is NaN", call([{"role": "user", "content": NAN}]), "messages[0]"),
    ("part without type", call([{"role": "user", "content": [{"text": "x"}]}]), "messages[0]"),
    ("tool message without id", call([{"role": "tool", "content": "x"}]), "messages[0]"),
    (
        "tool_calls on a user message",
        call([{"role": "user", "content": "x", "tool_calls": []}]),
        "messages[0]",
    ),
    (
        "tool call without id",
        call([{"role": "assistant", "content": None, "tool_calls": [{"function": {}}]}]),
        "messages[0].tool_calls[0]",
    ),
    (
        "non-serialisable extra field",
        call([{"role": "user", "content": "hi", "name": object()}]),
        "messages[0].name",
    ),
    ("model empty", {"model": "", "messages": [USER]}, "model"),
    ("model blank", {"model": "  ", "messages": [USER]}, "model"),
    ("model None", {"model": None, "messages": [USER]}, "model"),
    ("max_tokens negative", call(max_tokens=-1), "max_tokens"),
    ("max_tokens zero", call(max_tokens=0), "max_tokens"),
    ("max_tokens float", call(max_tokens=1.5), "max_tokens"),
    ("max_tokens whole float", call(max_tokens=10.0), "max_tokens"),
    ("max_tokens string", call(max_tokens="10"), "max_tokens"),
    ("max_tokens bool", call(max_tokens=True), "max_tokens"),
    ("max_completion_tokens negative", call(max_completion_tokens=-5), "max_completion_tokens"),
    ("n zero", call(n=0), "n"),
    ("temperature below range", call(temperature=-0.1), "temperature"),
    ("temperature above range", call(temperature=2.5), "temperature"),
    ("temperature NaN", call(temperature=NAN), "temperature"),
    ("temperature inf", call(temperature=float("inf")), "temperature"),
    ("temperature string", call(temperature="hot"), "temperature"),
    ("temperature bool", call(temperature=True), "temperature"),
    ("top_p above 1", call(top_p=1.5), "top_p"),
    ("presence_penalty above 2", call(presence_penalty=3), "presence_penalty"),
    ("frequency_penalty below -2", call(frequency_penalty=-3), "frequency_penalty"),
    ("seed string", call(seed="42"), "seed"),
    ("stop empty string in list", call(stop=[""]), "stop"),
    ("stop number", call(stop=5), "stop"),
    ("NaN in an extra param", call(logit_bias={"50256": NAN}), "logit_bias.50256"),
    ("set in an extra param", call(metadata={"tags": {"a"}}), "metadata.tags"),
    ("tuple dict key", call(metadata={(1, 2): "a"}), "metadata.(1, 2)"),
    (
        "object in a tool schema",
        call(
            tools=[{"type": "function", "function": {"name": "f", "parameters": {"d": object()}}}]
        ),
        "tools[0].function.parameters.d",
    ),
    ("tools not a list", call(tools={"name": "f"}), "tools"),
    ("tool without name", call(tools=[{"type": "function", "function": {}}]), "tools"),
    (
        "tool parameters not an object",
        call(tools=[{"type": "function", "function": {"name": "f", "parameters": "x"}}]),
        "tools",
    ),
    ("tool_choice unknown word", call(tools=[TOOL], tool_choice="sometimes"), "tool_choice"),
    (
        "tool_choice names an unknown tool",
        call(tools=[TOOL], tool_choice={"type": "function", "function": {"name": "nope"}}),
        "tool_choice",
    ),
    ("tool_choice without tools", call(tool_choice="required"), "tool_choice"),
    ("tool_choice malformed", call(tools=[TOOL], tool_choice={"name": "x"}), "tool_choice"),
    (
        # tool_choice checked first must not index into malformed tools (was a KeyError)
        "tool_choice before a malformed tool",
        call(
            tool_choice={"type": "function", "function": {"name": "f"}},
            tools=[{"type": "function"}],
        ),
        "tools",
    ),
    (
        "tool_choice before tools that are not a list",
        call(tool_choice={"type": "function", "function": {"name": "f"}}, tools={"f": 1}),
        "tools",
    ),
    ("response_format unknown", call(response_format={"type": "xml"}), "response_format"),
    (
        "json_schema without schema",
        call(response_format={"type": "json_schema", "json_schema": {"name": "x"}}),
        "response_format",
    ),
]

BAD_EMBEDDINGS: list[tuple[str, dict[str, Any], str]] = [
    ("empty string", {"model": "e", "input": ""}, "input"),
    ("empty list", {"model": "e", "input": []}, "input"),
    ("numbers", {"model": "e", "input": [1, 2]}, "input"),
    ("None inside", {"model": "e", "input": ["a", None]}, "input"),
    ("None", {"model": "e", "input": None}, "input"),
    ("no model", {"model": "", "input": "a"}, "model"),
    ("dimensions zero", {"model": "e", "input": "a", "dimensions": 0}, "dimensions"),
    ("NaN param", {"model": "e", "input": "a", "user": NAN}, "user"),
    ("batch size zero", {"model": "e", "input": ["a"], "batch_size": 0}, "batch_size"),
]


def ids(table: list[tuple[str, Any, str]]) -> list[str]:
    return [row[0] for row in table]


def _build_chat(kwargs: dict[str, Any], stream: bool = False) -> bytes:
    params = {k: v for k, v in kwargs.items() if k not in ("model", "messages")}
    return encode_json(build_chat_body(kwargs["model"], kwargs["messages"], params, stream=stream))


@pytest.mark.parametrize(("name", "kwargs", "param"), BAD_CHAT, ids=ids(BAD_CHAT))
def test_bad_chat_arguments_name_the_parameter(name: str, kwargs: dict, param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        _build_chat(kwargs)
    assert info.value.param == param
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(("name", "kwargs", "param"), BAD_CHAT, ids=ids(BAD_CHAT))
def test_bad_chat_call_never_reaches_the_server(
    emulator: Any, make_client: Any, name: str, kwargs: dict, param: str
) -> None:
    client = make_client()
    with pytest.raises(InvalidRequestError):
        client.chat_completion(**kwargs)
    with pytest.raises(InvalidRequestError):
        client.stream_chat_completion(**kwargs)
    assert client.stats().requests == 0  # nothing was sent, so nothing to count
    assert emulator.requests == []


@pytest.mark.parametrize(("name", "kwargs", "param"), BAD_CHAT, ids=ids(BAD_CHAT))
async def test_bad_async_chat_call_never_reaches_the_server(
    emulator: Any, make_async_client: Any, name: str, kwargs: dict, param: str
) -> None:
    client = make_async_client()
    with pytest.raises(InvalidRequestError):
        await client.chat_completion(**kwargs)
    with pytest.raises(InvalidRequestError):
        await client.stream_chat_completion(**kwargs)
    assert emulator.requests == []


@pytest.mark.parametrize(("name", "kwargs", "param"), BAD_EMBEDDINGS, ids=ids(BAD_EMBEDDINGS))
def test_bad_embeddings_call_never_reaches_the_server(
    emulator: Any, make_client: Any, name: str, kwargs: dict, param: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        make_client().embeddings(**kwargs)
    assert info.value.param == param
    assert emulator.requests == []


@pytest.mark.parametrize(("name", "kwargs", "param"), BAD_EMBEDDINGS, ids=ids(BAD_EMBEDDINGS))
async def test_bad_async_embeddings_call_never_reaches_the_server(
    emulator: Any, make_async_client: Any, name: str, kwargs: dict, param: str
) -> None:
    with pytest.raises(InvalidRequestError):
        await make_async_client().embeddings(**kwargs)
    assert emulator.requests == []


def test_an_error_names_what_is_wrong() -> None:
    with pytest.raises(InvalidRequestError) as info:
        _build_chat(call(temperature=3))
    assert "temperature" in str(info.value) and "3" in str(info.value)
    with pytest.raises(InvalidRequestError) as info:
        _build_chat(call(tools=[TOOL], tool_choice={"type": "function", "function": {"name": "x"}}))
    assert "'x'" in str(info.value)


# --- what good calls send -------------------------------------------------------------------


def test_stream_asks_for_usage_by_default() -> None:
    body = build_chat_body(MODEL, [USER], {}, stream=True)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_stream_usage_can_be_turned_off() -> None:
    body = build_chat_body(MODEL, [USER], {}, stream=True, include_usage=False)
    assert body["stream"] is True
    assert "stream_options" not in body


def test_the_client_decides_stream_and_stream_options() -> None:
    params = {"stream": True, "stream_options": {"include_usage": False}}
    assert "stream" not in build_chat_body(MODEL, [USER], params)
    streamed = build_chat_body(MODEL, [USER], params, stream=True)
    assert streamed["stream_options"] == {"include_usage": True}


def test_none_params_are_left_out_and_others_pass_through() -> None:
    body = build_chat_body(MODEL, [USER], {"temperature": None, "user": "u1", "max_tokens": 5})
    assert body == {"model": MODEL, "messages": [USER], "user": "u1", "max_tokens": 5}


@pytest.mark.parametrize(
    "params",
    [
        {"temperature": 0},
        {"temperature": 2},
        {"top_p": 1},
        {"presence_penalty": -2.0},
        {"max_tokens": 1},
        {"n": 3},
        {"stop": "END"},
        {"stop": ["a", "b"]},
        {"seed": 0},
        {"tools": [TOOL], "tool_choice": "required"},
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        {"tool_choice": "none", "tools": [TOOL]},
        {"response_format": {"type": "json_object"}},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {}}}},
    ],
)
def test_edge_values_that_are_valid_pass(params: dict[str, Any]) -> None:
    body = build_chat_body(MODEL, [USER], params)
    for name, value in params.items():
        assert body[name] == value


def test_tool_loop_messages_are_accepted_and_arguments_become_json() -> None:
    assistant = {
        "role": "assistant",
        "content": None,
        "reasoning_content": "I should look it up.",
        "tool_calls": [{"id": "call_1", "function": {"name": "f", "arguments": {"city": "Oslo"}}}],
    }
    tool = {"role": "tool", "tool_call_id": "call_1", "content": "12C"}
    body = build_chat_body(MODEL, [USER, assistant, tool], {})
    sent = body["messages"][1]
    assert sent["tool_calls"][0]["type"] == "function"
    assert json.loads(sent["tool_calls"][0]["function"]["arguments"]) == {"city": "Oslo"}
    assert sent["reasoning_content"] == "I should look it up."
    # The caller's message is not changed behind its back.
    assert assistant["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}


def test_pydantic_messages_are_accepted() -> None:
    class Msg(BaseModel):
        role: str
        content: str | None = None

    body = build_chat_body(MODEL, [Msg(role="user", content="hi")], {})
    assert body["messages"] == [USER]


def test_content_parts_are_accepted() -> None:
    parts = [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {}}]
    body = build_chat_body(MODEL, [{"role": "user", "content": parts}], {})
    assert body["messages"][0]["content"] == parts


def test_encode_json_is_compact_utf8() -> None:
    assert encode_json({"a": "héllo", "b": [1, 2]}) == '{"a":"héllo","b":[1,2]}'.encode()


def test_embeddings_body() -> None:
    assert build_embeddings_body("e", ["a", "b"], {"dimensions": 8, "user": None}) == {
        "model": "e",
        "input": ["a", "b"],
        "dimensions": 8,
    }
