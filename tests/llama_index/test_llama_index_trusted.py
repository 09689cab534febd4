"""Objects built without validation (llama_index_holysheep.trusted) match their validated twins.

A builder must set exactly what validation sets: the same values, field order, fields-set,
extra and private values. If LlamaIndex changes one of these classes, the first test here
fails (and the builders fall back to validating until they are brought up to date).
"""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import BaseModel

from holysheep_core import ChatCompletionChunk
from llama_index_holysheep import trusted
from llama_index_holysheep.messages import assistant_message
from llama_index_holysheep.responses import StreamAssembler


def assert_twins(built: BaseModel, validated: BaseModel) -> None:
    assert type(built) is type(validated)
    assert built == validated
    assert list(built.__dict__) == list(validated.__dict__)
    assert built.model_fields_set == validated.model_fields_set
    assert built.__pydantic_extra__ == validated.__pydantic_extra__
    assert built.__pydantic_private__ == validated.__pydantic_private__
    assert built.model_dump() == validated.model_dump()
    assert built.model_dump_json() == validated.model_dump_json()
    for name in type(validated).model_fields:
        value = getattr(validated, name)
        if isinstance(value, BaseModel):
            assert_twins(getattr(built, name), value)
        elif isinstance(value, list):
            for b, v in zip(getattr(built, name), value, strict=True):
                if isinstance(v, BaseModel):
                    assert_twins(b, v)


def test_the_installed_llama_index_gets_the_unvalidated_builders() -> None:
    # If this fails, LlamaIndex changed a class: update its builder to match.
    blocks = [
        trusted.thinking_block("x"),
        trusted.text_block("x"),
        trusted.tool_call_block("c", "f", "{}"),
    ]
    trusted.stream_chat_response(trusted.assistant_chat_message(blocks, {}), {}, "", {})
    classes = [ThinkingBlock, TextBlock, ToolCallBlock, ChatMessage, ChatResponse]
    assert {cls: trusted._trusted.get(cls) for cls in classes} == dict.fromkeys(classes, True)


@pytest.mark.parametrize("text", ["", "Hello", "line\nbreak"])
def test_blocks_match_validated_ones(text: str) -> None:
    assert_twins(trusted.text_block(text), TextBlock(text=text))
    assert_twins(trusted.thinking_block(text), ThinkingBlock(content=text))
    assert_twins(
        trusted.tool_call_block("", "f", text),
        ToolCallBlock(tool_call_id="", tool_name="f", tool_kwargs=text),
    )
    assert_twins(
        trusted.tool_call_block("call_1", "add", '{"a": 1}'),
        ToolCallBlock(tool_call_id="call_1", tool_name="add", tool_kwargs='{"a": 1}'),
    )


CALLS = [("call_a", "add", '{"a": 1}'), ("", "mul", "")]


def validated_message(
    content: str | None, reasoning: str, calls: list[tuple[str, str, str]]
) -> ChatMessage:
    """What assistant_message built with validation, before the builders."""
    blocks: list[Any] = []
    if reasoning:
        blocks.append(ThinkingBlock(content=reasoning))
    if content is not None:
        blocks.append(TextBlock(text=content))
    blocks += [ToolCallBlock(tool_call_id=i, tool_name=n, tool_kwargs=a) for i, n, a in calls]
    extra = {}
    if calls:
        extra["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
            for i, n, a in calls
        ]
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=extra)


@pytest.mark.parametrize(
    ("content", "reasoning", "calls"),
    [("Hi", "", []), ("", "", []), (None, "Think.", CALLS), ("Done", "Hm", CALLS[:1])],
)
def test_assistant_messages_match_validated_ones(
    content: str | None, reasoning: str, calls: list[tuple[str, str, str]]
) -> None:
    assert_twins(
        assistant_message(content, reasoning, calls), validated_message(content, reasoning, calls)
    )


def chunk(delta: dict[str, Any], finish: str | None = None) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "system_fingerprint": "fp",
            "server_extra": {"kept": True},  # unknown fields stay in raw
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
    )


def test_streamed_responses_match_validated_ones_and_raw_is_the_chunk() -> None:
    def call(index: int, **fields: Any) -> dict[str, Any]:
        return {"tool_calls": [{"index": index, **fields}]}

    chunks = [
        chunk({"role": "assistant", "content": "", "reasoning_content": "Hm."}),
        chunk({"content": "Adding."}),
        chunk(call(0, id="call_a", type="function", function={"name": "add", "arguments": ""})),
        chunk(call(0, function={"arguments": '{"a": 1}'})),
        chunk({}, finish="tool_calls"),
    ]
    assembler = StreamAssembler()
    responses = [r for c in chunks for r in assembler.add(c)]
    responses.append(assembler.finish())
    # Each response holds the message so far: thinking, text, then the calls.
    so_far = [
        ("", "Hm.", []),
        ("Adding.", "Hm.", []),
        ("Adding.", "Hm.", [("call_a", "add", "")]),
        ("Adding.", "Hm.", [("call_a", "add", '{"a": 1}')]),
        ("Adding.", "Hm.", [("call_a", "add", '{"a": 1}')]),
    ]
    deltas = ["", "Adding.", "", "", ""]
    extras = [{"thinking_delta": "Hm."}, {}, {}, {}, {"cost_usd": None}]
    assert len(responses) == len(chunks)
    for i, (response, source) in enumerate(zip(responses, chunks, strict=True)):
        assert response.raw == source.model_dump(exclude_none=True)
        validated = ChatResponse(
            message=validated_message(*so_far[i]),
            raw=source.model_dump(exclude_none=True),
            delta=deltas[i],
            additional_kwargs=extras[i],
        )
        assert_twins(response, validated)


def test_a_changed_class_is_validated_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    # ChatMessage's own validator, as if LlamaIndex had added one we do not know.
    monkeypatch.setattr(trusted, "_HARMLESS_VALIDATORS", frozenset())
    monkeypatch.setattr(trusted, "_trusted", {})
    validations: list[dict[str, Any]] = []
    original = ChatMessage.__init__

    def spy(self: ChatMessage, /, content: Any = None, **data: Any) -> None:
        validations.append(data)
        original(self, content, **data)

    monkeypatch.setattr(ChatMessage, "__init__", spy)
    built = assistant_message("Hi", "", [])
    assert len(validations) == 1
    assert not trusted._fits(ChatMessage, tuple(built.__dict__))
    monkeypatch.undo()
    assert_twins(built, assistant_message("Hi", "", []))
