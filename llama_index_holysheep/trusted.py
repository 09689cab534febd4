"""LlamaIndex messages and responses built from values already known to be valid.

A stream hands out one ``ChatResponse`` per chunk, each with a new ``ChatMessage`` that holds
the whole message so far, and validating those objects cost more than the rest of the
adapter's work per chunk. Measured on the benchmark's stream (role, 9 tokens, finish,
usage: 11 responses), assembling it takes about 120-190 µs with these builders and about
450-470 µs with ordinary construction (``cls(**fields)``), where the README's benchmark puts
a whole ``astream_chat`` call at about 350 µs (~2,900 streams/s). The benchmark's
``llama-holysheep`` stream target on a busy machine: 1,530-1,676 µs of client CPU per call
with the builders, 1,762 µs with ordinary construction (239/191 vs 190 req/s).

Their values come from the core's validated wire models, so the builders here skip
validation (``model_construct`` would not help: it is slower than validating these small
models) and set exactly what validation sets: every field in declaration order, the fields
given as ``model_fields_set``, no extra or private values. The tests compare each
builder's object with its validated twin.

Should a LlamaIndex release change one of these classes (a field, a validator), its objects
are validated again, found out on the first one built.
"""

from __future__ import annotations

from typing import Any, TypeVar

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ContentBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import BaseModel

__all__ = [
    "assistant_chat_message",
    "stream_chat_response",
    "text_block",
    "thinking_block",
    "tool_call_block",
]

M = TypeVar("M", bound=BaseModel)

# Validators known to leave the values built here as they are: ChatMessage's acts only on
# an "images" entry in additional_kwargs, which ours never have.
_HARMLESS_VALIDATORS = frozenset({"legacy_additional_kwargs_image"})

_trusted: dict[type[BaseModel], bool] = {}
_new = object.__new__
_set = object.__setattr__


def _fits(cls: type[BaseModel], fields: tuple[str, ...]) -> bool:
    """Whether building ``cls`` from these fields sets what validating them would."""
    found = cls.__pydantic_decorators__
    validators = {*found.model_validators, *found.field_validators}
    return (
        tuple(cls.model_fields) == fields
        and validators <= _HARMLESS_VALIDATORS
        and not found.validators
        and not found.root_validators
        and cls.__pydantic_post_init__ is None
        and not cls.__pydantic_root_model__
        and cls.model_config.get("extra") in (None, "ignore")
    )


def _built(cls: type[M], values: dict[str, Any], fields_set: set[str]) -> M:
    """``cls(**{the fields_set entries of values})``; ``values`` holds every field, in order."""
    trusted = _trusted.get(cls)
    if trusted is None:
        trusted = _trusted[cls] = _fits(cls, tuple(values))
    if not trusted:
        return cls(**{name: values[name] for name in fields_set})
    # What pydantic's model_construct does for a model with no extra or private values.
    obj = _new(cls)
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", fields_set)
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


def text_block(text: str) -> TextBlock:
    return _built(TextBlock, {"block_type": "text", "text": text}, {"text"})


def thinking_block(content: str) -> ThinkingBlock:
    values = {
        "block_type": "thinking",
        "content": content,
        "num_tokens": None,
        "additional_information": {},
    }
    return _built(ThinkingBlock, values, {"content"})


def tool_call_block(call_id: str, name: str, arguments: str) -> ToolCallBlock:
    """A call with its arguments as the JSON text the model wrote."""
    values = {
        "block_type": "tool_call",
        "tool_call_id": call_id,
        "tool_name": name,
        "tool_kwargs": arguments,
    }
    return _built(ToolCallBlock, values, {"tool_call_id", "tool_name", "tool_kwargs"})


def assistant_chat_message(
    blocks: list[ContentBlock], additional_kwargs: dict[str, Any]
) -> ChatMessage:
    """An assistant message of blocks from the builders above (the list is kept, not copied)."""
    values = {
        "role": MessageRole.ASSISTANT,
        "additional_kwargs": additional_kwargs,
        "blocks": blocks,
    }
    return _built(ChatMessage, values, {"role", "additional_kwargs", "blocks"})


def stream_chat_response(
    message: ChatMessage, raw: dict[str, Any], delta: str, additional_kwargs: dict[str, Any]
) -> ChatResponse:
    """The response of one streamed chunk."""
    values = {
        "message": message,
        "raw": raw,
        "delta": delta,
        "logprobs": None,
        "additional_kwargs": additional_kwargs,
    }
    return _built(ChatResponse, values, {"message", "raw", "delta", "additional_kwargs"})
