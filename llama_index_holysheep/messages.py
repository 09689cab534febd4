"""LlamaIndex ``ChatMessage`` <-> the wire's message dicts, tool calls and thinking included.

Thinking (``ThinkingBlock``) travels as ``reasoning_content`` on assistant turns, both ways:
reasoning models in thinking mode need it back on the assistant turn of a tool loop, and
dropping it breaks the loop (langchain #34166, #34706).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    CachePoint,
    ChatMessage,
    ContentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.llms.utils import parse_partial_json

from holysheep_core import InvalidRequestError
from holysheep_core.types import ChatMessage as WireMessage

from .trusted import assistant_chat_message, text_block, thinking_block, tool_call_block

__all__ = [
    "assistant_message",
    "message_from_wire",
    "to_wire_message",
    "to_wire_messages",
    "tool_selections",
]

# Roles some LlamaIndex integrations use for the model's own turns.
_ASSISTANT_ROLES = frozenset({MessageRole.ASSISTANT, MessageRole.CHATBOT, MessageRole.MODEL})


def to_wire_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """The ``messages`` list of a chat request. Raises ``InvalidRequestError`` for content
    the API cannot carry (audio, video, documents), before any network call."""
    return [to_wire_message(m, i) for i, m in enumerate(messages)]


def to_wire_message(message: ChatMessage, index: int = 0) -> dict[str, Any]:
    role = MessageRole.ASSISTANT if message.role in _ASSISTANT_ROLES else message.role
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ImageBlock):
            images.append(_image_part(block))
        elif isinstance(block, ThinkingBlock):
            if block.content:
                thinking.append(block.content)
        elif isinstance(block, ToolCallBlock):
            calls.append(_wire_call(block, len(calls)))
        elif isinstance(block, CachePoint):
            continue  # a provider hint with no meaning on this wire
        else:
            raise InvalidRequestError(
                f"messages[{index}] holds a {type(block).__name__}, which the HolySheep chat "
                "API cannot carry (text, images, tool calls and thinking only)",
                param=f"messages[{index}]",
            )
    text = "\n".join(texts)
    wire: dict[str, Any] = {"role": role.value}
    # The API takes images on user turns only; on any other turn only the text goes.
    if images and role == MessageRole.USER:
        parts: list[dict[str, Any]] = [{"type": "text", "text": t} for t in texts]
        wire["content"] = parts + images
    else:
        wire["content"] = text
    extra = message.additional_kwargs
    if role == MessageRole.ASSISTANT:
        if not calls and extra.get("tool_calls"):
            # Memories written by the OpenAI integration keep calls here instead of in blocks.
            calls = [_legacy_call(c) for c in extra["tool_calls"]]
        if calls:
            wire["tool_calls"] = calls
            if not text:
                wire["content"] = None
        if thinking:
            wire["reasoning_content"] = "\n".join(thinking)
    elif role in (MessageRole.TOOL, MessageRole.FUNCTION) and "tool_call_id" in extra:
        wire["role"] = "tool"
        wire["tool_call_id"] = str(extra["tool_call_id"])
    if isinstance(extra.get("name"), str):
        wire["name"] = extra["name"]
    return wire


def _image_part(block: ImageBlock) -> dict[str, Any]:
    if block.url is not None and block.image is None:
        url = str(block.url)
    else:
        data = block.resolve_image(as_base64=True).read().decode()
        url = f"data:{block.image_mimetype or 'image/png'};base64,{data}"
    image_url: dict[str, Any] = {"url": url}
    if block.detail:
        image_url["detail"] = block.detail
    return {"type": "image_url", "image_url": image_url}


def _wire_call(block: ToolCallBlock, position: int) -> dict[str, Any]:
    args = block.tool_kwargs
    return {
        # A call without an id cannot be answered; a stable stand-in keeps requests replayable.
        "id": block.tool_call_id or f"call_{position}",
        "type": "function",
        "function": {
            "name": block.tool_name,
            "arguments": args if isinstance(args, str) else json.dumps(args),
        },
    }


def _legacy_call(call: Any) -> dict[str, Any]:
    if hasattr(call, "model_dump"):
        call = call.model_dump(exclude_none=True)
    return dict(call)


def assistant_message(
    content: str | None, reasoning: str | None, calls: Sequence[tuple[str, str, str]]
) -> ChatMessage:
    """An assistant message: thinking first, then text, then ``(id, name, arguments)`` tool
    calls with their arguments kept as the exact JSON text the model wrote.

    The calls are also listed in ``additional_kwargs["tool_calls"]`` (wire dicts), where
    parts of LlamaIndex still look for them (streamed structured output, for one).
    """
    # Built without validation (see .trusted): a stream builds one of these per chunk.
    blocks: list[ContentBlock] = []
    if reasoning:
        blocks.append(thinking_block(reasoning))
    if content is not None:
        blocks.append(text_block(content))
    extra: dict[str, Any] = {}
    if calls:
        blocks.extend(tool_call_block(call_id, name, args) for call_id, name, args in calls)
        extra["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
            for call_id, name, args in calls
        ]
    return assistant_chat_message(blocks, extra)


def message_from_wire(message: WireMessage) -> ChatMessage:
    """The assistant ``ChatMessage`` of a completion's choice."""
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ()]
    return assistant_message(message.content, message.reasoning_content, calls)


def tool_selections(message: ChatMessage) -> list[ToolSelection]:
    """The tool calls of an assistant message, arguments parsed (malformed ones become ``{}``
    so the tool reports what is missing, as the OpenAI integration does)."""
    return [
        ToolSelection(
            tool_id=block.tool_call_id or "",
            tool_name=block.tool_name,
            tool_kwargs=_arguments(block.tool_kwargs),
        )
        for block in message.blocks
        if isinstance(block, ToolCallBlock)
    ]


def _arguments(args: Mapping[str, Any] | str) -> dict[str, Any]:
    if not isinstance(args, str):
        return dict(args)
    if not args.strip():
        return {}
    try:
        parsed = json.loads(args)
    except ValueError:
        try:
            parsed = parse_partial_json(args)
        except ValueError:
            return {}
    return parsed if isinstance(parsed, dict) else {}
