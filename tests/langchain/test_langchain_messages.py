"""Translation between LangChain messages and the wire, without a server."""

from __future__ import annotations

import pytest
from langchain_core.messages import (
    AIMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from holysheep_core.types import ChatMessage as WireMessage
from holysheep_core.types import Usage
from langchain_holysheep.messages import ai_message, to_wire_messages, usage_metadata
from langchain_holysheep.tools import tool_choice_to_wire

CALL = {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
WIRE_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def test_roles_and_names() -> None:
    wire = to_wire_messages(
        [
            SystemMessage("be brief"),
            SystemMessage("dev rules", additional_kwargs={"__openai_role__": "developer"}),
            HumanMessage("hi", name="ann"),
            AIMessage("hello", name="bot"),
            FunctionMessage("42", name="f"),
            ChatMessage("custom", role="user"),
        ]
    )
    assert wire == [
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": "dev rules"},
        {"role": "user", "content": "hi", "name": "ann"},
        {"role": "assistant", "content": "hello", "name": "bot"},
        {"role": "function", "content": "42", "name": "f"},
        {"role": "user", "content": "custom"},
    ]


def test_assistant_tool_calls_carry_reasoning_back() -> None:
    message = AIMessage(
        "", tool_calls=[CALL], additional_kwargs={"reasoning_content": "I need the weather."}
    )
    assert to_wire_messages([message]) == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [WIRE_CALL],
            "reasoning_content": "I need the weather.",
        }
    ]


def test_reasoning_from_v1_content_blocks() -> None:
    # output_version="v1" keeps reasoning as a content block rather than in additional_kwargs.
    message = AIMessage(
        [{"type": "reasoning", "reasoning": "thinking..."}, {"type": "text", "text": "ok"}],
        tool_calls=[CALL],
    )
    (wire,) = to_wire_messages([message])
    assert wire["content"] == "ok"
    assert wire["reasoning_content"] == "thinking..."


def test_reasoning_left_out_of_turns_without_tool_calls() -> None:
    message = AIMessage("the answer", additional_kwargs={"reasoning_content": "long thoughts"})
    assert to_wire_messages([message]) == [{"role": "assistant", "content": "the answer"}]


def test_invalid_tool_call_is_sent_back_as_written() -> None:
    message = AIMessage(
        "",
        invalid_tool_calls=[
            {"name": "f", "args": "{not json", "id": "call_9", "error": "bad", "type": ""}
        ],
    )
    (wire,) = to_wire_messages([message])
    assert wire["tool_calls"][0]["function"] == {"name": "f", "arguments": "{not json"}


def test_tool_message_text_parts_flatten_to_a_string() -> None:
    message = ToolMessage([{"type": "text", "text": "4"}, "2"], tool_call_id="call_1")
    assert to_wire_messages([message]) == [
        {"role": "tool", "tool_call_id": "call_1", "content": "42"}
    ]


def test_image_blocks_become_image_url_parts() -> None:
    (wire,) = to_wire_messages(
        [
            HumanMessage(
                [
                    "look",
                    {"type": "image", "base64": "AAAA", "mime_type": "image/png"},
                    {"type": "image", "url": "https://example.com/a.png"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/jpeg", "data": "BBBB"},
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}},
                ]
            )
        ]
    )
    assert wire["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,BBBB"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}},
    ]


def test_text_part_extras_are_dropped() -> None:
    # Anthropic's cache_control has no meaning on this wire.
    (wire,) = to_wire_messages(
        [HumanMessage([{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}])]
    )
    assert wire["content"] == [{"type": "text", "text": "hi"}]


def test_usage_metadata_details() -> None:
    usage = Usage.model_validate(
        {
            "prompt_tokens": 100,
            "completion_tokens": 30,
            "total_tokens": 130,
            "prompt_tokens_details": {"cached_tokens": 60},
            "completion_tokens_details": {"reasoning_tokens": 12},
        }
    )
    assert usage_metadata(usage) == {
        "input_tokens": 100,
        "output_tokens": 30,
        "total_tokens": 130,
        "input_token_details": {"cache_read": 60},
        "output_token_details": {"reasoning": 12},
    }
    # A server that leaves the details and total out: zeros and a derived total.
    bare = usage_metadata(Usage(prompt_tokens=5, completion_tokens=7))
    assert bare["total_tokens"] == 12
    assert bare["input_token_details"] == {"cache_read": 0}


def test_unparseable_tool_arguments_become_invalid_tool_calls() -> None:
    message = ai_message(
        WireMessage.model_validate(
            {
                "content": None,
                "tool_calls": [
                    {"id": "c1", "function": {"name": "ok", "arguments": '{"a": 1}'}},
                    {"id": "c2", "function": {"name": "broken", "arguments": '{"a": '}},
                ],
                "reasoning_content": "hmm",
            }
        )
    )
    assert [c["name"] for c in message.tool_calls] == ["ok"]
    assert message.tool_calls[0]["args"] == {"a": 1}
    assert [c["name"] for c in message.invalid_tool_calls] == ["broken"]
    assert message.invalid_tool_calls[0]["args"] == '{"a": '
    assert message.additional_kwargs == {"reasoning_content": "hmm"}
    assert message.content_blocks[0] == {"type": "reasoning", "reasoning": "hmm"}


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        (None, None),
        (False, None),
        (True, "required"),
        ("any", "required"),
        ("required", "required"),
        ("auto", "auto"),
        ("none", "none"),
        ("get_weather", {"type": "function", "function": {"name": "get_weather"}}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ],
)
def test_tool_choice_spellings(choice: object, wire: object) -> None:
    assert tool_choice_to_wire(choice, ["get_weather", "get_time"]) == wire  # type: ignore[arg-type]


def test_a_tool_named_like_a_keyword_wins() -> None:
    assert tool_choice_to_wire("auto", ["auto"]) == {
        "type": "function",
        "function": {"name": "auto"},
    }


@pytest.mark.parametrize("choice", ["get_wether", 3])
def test_unknown_tool_choice_is_refused(choice: object) -> None:
    with pytest.raises(ValueError, match="tool_choice"):
        tool_choice_to_wire(choice, ["get_weather"])  # type: ignore[arg-type]
