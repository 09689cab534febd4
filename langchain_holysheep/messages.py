"""LangChain messages to wire dicts and back: completions to ``AIMessage``, stream chunks to
``AIMessageChunk``, server usage to ``UsageMetadata``.

Reasoning text travels both ways: the server's ``reasoning_content`` lands in
``additional_kwargs["reasoning_content"]`` (which langchain-core turns into a
``{"type": "reasoning"}`` content block), and an assistant turn sent back carries it again,
as DeepSeek's thinking mode requires inside a tool loop.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    is_data_content_block,
)
from langchain_core.messages import ChatMessage as LCChatMessage
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.messages.block_translators.openai import convert_to_openai_data_block
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers.openai_tools import make_invalid_tool_call, parse_tool_call

from holysheep_core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    ChoiceDeltaToolCall,
    ChunkChoice,
    Usage,
)

__all__ = [
    "MODEL_PROVIDER",
    "ai_message",
    "call_metadata",
    "chunk_message",
    "cost_metadata",
    "to_wire_messages",
    "usage_metadata",
]

MODEL_PROVIDER = "holysheep"

# Blocks with no content-part form: reasoning travels in ``reasoning_content`` and tool
# calls in ``tool_calls``, or nowhere (another provider's blocks replayed in a history).
_NOT_PARTS = frozenset(
    {"reasoning", "thinking", "reasoning_content", "tool_call", "tool_use", "tool_call_chunk"}
)


# --- LangChain -> wire ------------------------------------------------------------------


def to_wire_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """The ``messages`` list of a chat completion request."""
    return [_to_wire(message) for message in messages]


def _to_wire(message: BaseMessage) -> dict[str, Any]:
    if isinstance(message, AIMessage):
        return _assistant_to_wire(message)
    if isinstance(message, ToolMessage):
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id,
            "content": _flatten_text(message.content),
        }
    if isinstance(message, HumanMessage):
        out: dict[str, Any] = {"role": "user", "content": _parts(message.content)}
    elif isinstance(message, SystemMessage):
        role = message.additional_kwargs.get("__openai_role__", "system")
        out = {"role": role, "content": _flatten_text(message.content)}
    elif isinstance(message, FunctionMessage):
        out = {"role": "function", "content": _flatten_text(message.content)}
    elif isinstance(message, LCChatMessage):
        out = {"role": message.role, "content": _parts(message.content)}
    else:
        raise TypeError(f"cannot send a {type(message).__name__} to a chat model")
    if message.name:
        out["name"] = message.name
    return out


def _assistant_to_wire(message: AIMessage) -> dict[str, Any]:
    text, reasoning = _assistant_text(message.content)
    out: dict[str, Any] = {"role": "assistant", "content": text}
    calls = [_tool_call_to_wire(c["id"], c["name"], c["args"]) for c in message.tool_calls]
    calls += [_tool_call_to_wire(c["id"], c["name"], c["args"]) for c in message.invalid_tool_calls]
    if calls:
        out["tool_calls"] = calls
        out["content"] = text or None
    # Thinking mode needs the reasoning of tool-call turns back; on other turns servers
    # ignore it, so leaving it out saves prompt tokens. additional_kwargs wins over content
    # blocks: it holds exactly what the server sent, blocks may be a v1 rendering of it.
    reasoning = message.additional_kwargs.get("reasoning_content", reasoning)
    if calls and isinstance(reasoning, str):
        out["reasoning_content"] = reasoning
    if message.name:
        out["name"] = message.name
    return out


def _tool_call_to_wire(call_id: str | None, name: str | None, args: Any) -> dict[str, Any]:
    arguments = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
    return {
        "id": call_id or "",
        "type": "function",
        "function": {"name": name or "", "arguments": arguments},
    }


def _assistant_text(content: str | list[Any]) -> tuple[str, str | None]:
    if isinstance(content, str):
        return content, None
    texts: list[str] = []
    reasoning: list[str] = []
    for block in content:
        if isinstance(block, str):
            texts.append(block)
        elif isinstance(block, Mapping):
            kind = block.get("type")
            if kind == "text":
                texts.append(str(block.get("text", "")))
            elif kind in ("reasoning", "thinking"):
                reasoning.append(str(block.get(kind) or block.get("reasoning") or ""))
            # tool calls travel in ``tool_calls``; other blocks have no wire form here
    return "".join(texts), ("".join(reasoning) if reasoning else None)


def _flatten_text(content: str | list[Any]) -> str | list[dict[str, Any]]:
    """Text-only content as one string (what every server accepts); otherwise parts."""
    if isinstance(content, str):
        return content
    parts = _parts(content)
    if isinstance(parts, list) and all(p.get("type") == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _parts(content: str | list[Any]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, str):
            parts.append({"type": "text", "text": block})
        elif not isinstance(block, Mapping):
            raise TypeError(f"content blocks must be strings or dicts, got {type(block).__name__}")
        elif block.get("type") == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif is_data_content_block(dict(block)):
            parts.append(convert_to_openai_data_block(dict(block)))
        elif block.get("type") == "image" and isinstance(block.get("source"), Mapping):
            parts.append(_anthropic_image(block["source"]))
        elif block.get("type") in _NOT_PARTS:
            continue
        else:
            parts.append(dict(block))  # already in wire form (image_url, ...)
    return parts


def _anthropic_image(source: Mapping[str, Any]) -> dict[str, Any]:
    # Anthropic's {"type": "image", "source": {...}}, which messages written for Claude carry.
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif source.get("type") == "url":
        url = str(source.get("url"))
    else:
        raise ValueError(f"unsupported image source type {source.get('type')!r}")
    return {"type": "image_url", "image_url": {"url": url}}


# --- wire -> LangChain ------------------------------------------------------------------


def usage_metadata(usage: Usage) -> UsageMetadata:
    """Server usage as LangChain's ``UsageMetadata``; cache reads and reasoning tokens
    always present (0 when the server reported none)."""
    total = usage.total_tokens or usage.prompt_tokens + usage.completion_tokens
    return UsageMetadata(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=total,
        input_token_details=InputTokenDetails(cache_read=usage.cached_tokens),
        output_token_details=OutputTokenDetails(reasoning=usage.reasoning_tokens),
    )


def call_metadata(
    completion: ChatCompletion | ChatCompletionChunk, request_id: str | None
) -> dict[str, Any]:
    """``response_metadata`` naming the call: served model, ids, fingerprint."""
    meta: dict[str, Any] = {"model_name": completion.model, "model_provider": MODEL_PROVIDER}
    if completion.id:
        meta["id"] = completion.id
    if completion.system_fingerprint:
        meta["system_fingerprint"] = completion.system_fingerprint
    if request_id:
        meta["request_id"] = request_id
    return meta


def cost_metadata(cost: Any) -> dict[str, Any]:
    """``cost_usd`` as a float (LangChain's convention), or None when the price is unknown."""
    return {"cost_usd": None if cost is None else float(cost)}


def ai_message(message: ChatMessage) -> AIMessage:
    """One choice of a completion as an ``AIMessage`` (no usage or metadata yet)."""
    additional: dict[str, Any] = {}
    if message.reasoning_content is not None:
        additional["reasoning_content"] = message.reasoning_content
    if message.refusal:
        additional["refusal"] = message.refusal
    tool_calls, invalid = [], []
    for call in message.tool_calls or ():
        raw = call.model_dump()
        try:
            tool_calls.append(parse_tool_call(raw, return_id=True))
        except Exception as exc:  # arguments that are not JSON: keep them, flagged
            invalid.append(make_invalid_tool_call(raw, str(exc)))
    return AIMessage(
        content=message.content or "",
        additional_kwargs=additional,
        tool_calls=tool_calls,
        invalid_tool_calls=invalid,
    )


def chunk_message(choice: ChunkChoice) -> tuple[AIMessageChunk, str | None]:
    """One streamed choice's delta as an ``AIMessageChunk``, and its finish reason."""
    delta = choice.delta
    additional: dict[str, Any] = {}
    if delta.reasoning_content:
        additional["reasoning_content"] = delta.reasoning_content
    if delta.refusal:
        additional["refusal"] = delta.refusal
    return (
        AIMessageChunk(
            content=delta.content or "",
            additional_kwargs=additional,
            tool_call_chunks=[_tool_call_chunk(c) for c in delta.tool_calls or ()],
        ),
        choice.finish_reason,
    )


def _tool_call_chunk(call: ChoiceDeltaToolCall) -> Any:
    fn = call.function
    # ``index`` is always set: the core fills it in when a server leaves it out, which is
    # what keeps the pieces of one call together when LangChain merges chunks.
    return tool_call_chunk(
        name=fn.name if fn else None,
        args=fn.arguments if fn else None,
        id=call.id,
        index=call.index,
    )
