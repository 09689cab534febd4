"""ChatMessage <-> wire dicts, and the responses built from completions and chunks (no I/O)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from llama_index.core.base.llms.types import (
    AudioBlock,
    ChatMessage,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)

from holysheep_core import ChatCompletion, ChatCompletionChunk, InvalidRequestError
from holysheep_core.params import build_chat_body
from llama_index_holysheep.messages import (
    message_from_wire,
    to_wire_messages,
    tool_selections,
)
from llama_index_holysheep.responses import StreamAssembler, chat_response
from llama_index_holysheep.usage import usage_of


def test_plain_turns_become_strings() -> None:
    wire = to_wire_messages(
        [
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(role="user", content="Hi"),
            ChatMessage(role=MessageRole.CHATBOT, content="Hello"),
        ]
    )
    assert wire == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
    ]


def test_assistant_tool_calls_thinking_and_tool_results_round_trip() -> None:
    assistant = ChatMessage(
        role="assistant",
        blocks=[
            ThinkingBlock(content="Need the weather."),
            ToolCallBlock(tool_call_id="call_1", tool_name="weather", tool_kwargs={"city": "Oslo"}),
            ToolCallBlock(tool_call_id="call_2", tool_name="time", tool_kwargs='{"tz": "CET"}'),
        ],
    )
    result = ChatMessage(role="tool", content="12 C", additional_kwargs={"tool_call_id": "call_1"})
    wire = to_wire_messages([ChatMessage(role="user", content="Weather?"), assistant, result])
    assert wire[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": json.dumps({"city": "Oslo"})},
            },
            {
                "id": "call_2",
                "type": "function",
                # A string is sent exactly as the model wrote it.
                "function": {"name": "time", "arguments": '{"tz": "CET"}'},
            },
        ],
        "reasoning_content": "Need the weather.",
    }
    assert wire[2] == {"role": "tool", "content": "12 C", "tool_call_id": "call_1"}
    build_chat_body("deepseek-v3.2", wire, {})  # the core accepts what we build


def test_thinking_and_tool_call_id_stay_off_other_roles() -> None:
    # FunctionAgent's return_direct answer carries a tool_call_id on an assistant turn.
    wire = to_wire_messages(
        [
            ChatMessage(role="user", blocks=[ThinkingBlock(content="x"), TextBlock(text="Hi")]),
            ChatMessage(role="assistant", content="42", additional_kwargs={"tool_call_id": "c"}),
        ]
    )
    assert wire == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "42"}]


def test_openai_style_tool_calls_in_additional_kwargs_are_sent() -> None:
    call = {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    wire = to_wire_messages(
        [ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [call]})]
    )
    assert wire[0]["tool_calls"] == [call]
    assert wire[0]["content"] is None


def test_images_make_a_parts_list() -> None:
    message = ChatMessage(
        role="user",
        blocks=[
            TextBlock(text="What is this?"),
            ImageBlock(url="https://example.com/cat.png", detail="low"),
            ImageBlock(image=b"\x89PNG\r\n\x1a\n", image_mimetype="image/png"),
        ],
    )
    (wire,) = to_wire_messages([message])
    assert wire["content"][0] == {"type": "text", "text": "What is this?"}
    assert wire["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "https://example.com/cat.png", "detail": "low"},
    }
    assert wire["content"][2]["image_url"]["url"].startswith("data:image/png;base64,")


def test_content_the_api_cannot_carry_is_refused_before_any_request() -> None:
    message = ChatMessage(role="user", blocks=[AudioBlock(audio=b"RIFF", format="wav")])
    with pytest.raises(InvalidRequestError, match=r"messages\[1\] holds a AudioBlock"):
        to_wire_messages([ChatMessage(role="user", content="hi"), message])


def test_completion_message_keeps_thinking_text_and_raw_arguments() -> None:
    completion = ChatCompletion.model_validate(
        {
            "model": "m",
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "reasoning_content": "Think.",
                        "tool_calls": [
                            {
                                "id": "call_a",
                                "type": "function",
                                "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
        }
    )
    message = message_from_wire(completion.choices[0].message)
    assert [type(b) for b in message.blocks] == [ThinkingBlock, ToolCallBlock]
    assert message.blocks[1].tool_kwargs == '{"a": 1, "b": 2}'
    (selection,) = tool_selections(message)
    assert (selection.tool_id, selection.tool_name, selection.tool_kwargs) == (
        "call_a",
        "add",
        {"a": 1, "b": 2},
    )
    # Sent back, the assistant turn is what the model produced.
    (wire,) = to_wire_messages([message])
    assert wire["reasoning_content"] == "Think."
    assert wire["tool_calls"][0]["function"]["arguments"] == '{"a": 1, "b": 2}'


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [("", {}), ("not json", {}), ("[1, 2]", {}), ('{"a": 1', {"a": 1})],
)
def test_malformed_or_partial_arguments_parse_to_a_dict(arguments: str, expected: dict) -> None:
    message = ChatMessage(
        role="assistant",
        blocks=[ToolCallBlock(tool_call_id="c", tool_name="f", tool_kwargs=arguments)],
    )
    assert tool_selections(message)[0].tool_kwargs == expected


USAGE = {
    "prompt_tokens": 11,
    "completion_tokens": 7,
    "total_tokens": 18,
    "prompt_tokens_details": {"cached_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 3},
}


def test_whole_completion_carries_usage_in_raw_and_additional_kwargs() -> None:
    completion = ChatCompletion.model_validate(
        {"model": "m", "choices": [{"message": {"content": "ok"}}], "usage": USAGE}
    )
    completion._cost_usd = Decimal("0.00001234")
    response = chat_response(completion)
    assert response.raw["usage"] == USAGE
    assert response.additional_kwargs == {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
        "cached_tokens": 4,
        "reasoning_tokens": 3,
        "cost_usd": 0.00001234,
    }
    usage = usage_of(response)
    assert (usage.input_tokens, usage.output_tokens, usage.cost_usd) == (
        11,
        7,
        Decimal("0.00001234"),
    )


def chunk(delta: dict | None = None, finish: str | None = None, **extra: object) -> object:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return ChatCompletionChunk.model_validate(
        {"id": "c1", "model": "m", "choices": choices, **extra}
    )


def run(assembler: StreamAssembler, chunks: list) -> list:
    out = []
    for c in chunks:
        out.extend(assembler.add(c))
    return [*out, assembler.finish()]


def test_stream_usage_lands_on_the_finishing_response() -> None:
    usage_chunk = chunk(usage=USAGE)
    usage_chunk._cost_usd = Decimal("0.5")
    responses = run(
        StreamAssembler(),
        [
            chunk({"role": "assistant", "reasoning_content": "Hm. "}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}, finish="stop"),
            usage_chunk,
        ],
    )
    assert [r.delta for r in responses] == ["", "Hel", "lo"]
    assert responses[0].additional_kwargs == {"thinking_delta": "Hm. "}
    last = responses[-1]
    assert last.message.content == "Hello"
    assert last.message.blocks[0] == ThinkingBlock(content="Hm. ")
    assert last.raw["usage"] == USAGE
    assert last.raw["choices"][0]["finish_reason"] == "stop"
    assert last.additional_kwargs["cost_usd"] == 0.5
    assert [usage_of(r) is not None for r in responses] == [False, False, True]


def test_stream_without_finish_reason_or_usage_still_ends_with_one_final_response() -> None:
    responses = run(StreamAssembler(), [chunk({"content": "Hi"})])
    assert [r.delta for r in responses] == ["Hi", ""]
    assert responses[-1].message.content == "Hi"
    assert responses[-1].additional_kwargs == {"cost_usd": None}
    usage = usage_of(responses[-1])
    assert (usage.requests, usage.total_tokens, usage.cost_usd) == (1, 0, None)


def test_streamed_tool_calls_accumulate_by_index() -> None:
    def call(index: int, **fields: object) -> dict:
        return {"tool_calls": [{"index": index, **fields}]}

    responses = run(
        StreamAssembler(),
        [
            chunk(call(0, id="call_a", type="function", function={"name": "add", "arguments": ""})),
            chunk(call(0, function={"arguments": '{"a": '})),
            chunk(call(1, id="call_b", type="function", function={"name": "mul"})),
            chunk(call(0, function={"arguments": "1}"})),
            chunk(call(1, function={"arguments": '{"b": 2}'}), finish="tool_calls"),
        ],
    )
    selections = tool_selections(responses[-1].message)
    assert [(s.tool_id, s.tool_name, s.tool_kwargs) for s in selections] == [
        ("call_a", "add", {"a": 1}),
        ("call_b", "mul", {"b": 2}),
    ]
