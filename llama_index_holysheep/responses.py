"""Completions and streams of chunks as LlamaIndex ``ChatResponse`` objects.

``raw`` is the wire dict (OpenAI's shape); the usage and cost of a call go on its last
response (see :mod:`.usage`). In a stream, each response carries the whole message so far
(text, thinking, tool calls) and its ``delta``. The core delivers usage once, on a last
chunk with no choices, after the chunk that carries ``finish_reason``: the assembler holds
that finishing response back until the stream ends and merges the usage into it, so the
last response a caller (or LlamaIndex's ``TokenCountingHandler``, which reads only the
last one) sees has the server's numbers.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.llms.types import ChatResponse

from holysheep_core import ChatCompletion, ChatCompletionChunk
from holysheep_core.types import ChoiceDeltaToolCall

from .messages import assistant_message, message_from_wire
from .trusted import stream_chat_response
from .usage import CACHE_HIT_KEY, usage_fields

__all__ = ["StreamAssembler", "chat_response"]


def chat_response(completion: ChatCompletion) -> ChatResponse:
    """The response of a whole (not streamed) completion: its first choice."""
    extra = usage_fields(completion.usage, completion.cost_usd)
    if completion.cache_hit:
        extra[CACHE_HIT_KEY] = True
    return ChatResponse(
        message=message_from_wire(completion.choices[0].message),
        raw=completion.model_dump(exclude_none=True),
        additional_kwargs=extra,
    )


# chunk.model_dump(exclude_none=True) without model_dump's Python wrapper: once per chunk.
_dump_chunk = ChatCompletionChunk.__pydantic_serializer__.to_python


def _wire_dict(chunk: ChatCompletionChunk) -> dict[str, Any]:
    return _dump_chunk(chunk, exclude_none=True)


class _Call:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments = ""


class StreamAssembler:
    """Chunks in, responses out; one per stream. Only the first choice is followed."""

    def __init__(self) -> None:
        self._content = ""
        self._reasoning = ""
        self._calls: dict[int, _Call] = {}
        self._held: ChatResponse | None = None
        self._last_raw: dict[str, Any] | None = None
        self._usage_chunk: ChatCompletionChunk | None = None
        self._cache_hit = False

    def add(self, chunk: ChatCompletionChunk) -> list[ChatResponse]:
        """The responses to hand out now for this chunk (the finishing one waits)."""
        choices = chunk.choices
        if chunk.cache_hit:
            self._cache_hit = True
        if not choices:
            self._usage_chunk = chunk
            return []
        choice = choices[0]
        if choice.index != 0:
            choice = next((c for c in choices if c.index == 0), None)
            if choice is None:
                return []
        delta = choice.delta
        text = delta.content or ""
        thinking = delta.reasoning_content or ""
        if text:
            self._content += text
        if thinking:
            self._reasoning += thinking
        if delta.tool_calls:
            self._add_calls(delta.tool_calls)
        response = self._response(_wire_dict(chunk), text, thinking)
        held = self._held
        if choice.finish_reason is not None:
            self._held = response
            return [] if held is None else [held]
        if held is None:
            return [response]
        self._held = None
        return [held, response]

    def finish(self) -> ChatResponse:
        """The stream's last response, with the usage and cost of the whole call."""
        response = self._held
        if response is None:
            # No finishing chunk to attach to: one more response with an empty delta.
            base = _wire_dict(self._usage_chunk) if self._usage_chunk else {}
            response = self._response(base or dict(self._last_raw or {}), "", "")
        self._held = None
        usage = self._usage_chunk.usage if self._usage_chunk is not None else None
        cost = self._usage_chunk.cost_usd if self._usage_chunk is not None else None
        if usage is not None:
            response.raw["usage"] = usage.model_dump(exclude_none=True)
        response.additional_kwargs.update(usage_fields(usage, cost))
        if self._cache_hit:
            response.additional_kwargs[CACHE_HIT_KEY] = True
        return response

    def _add_calls(self, parts: list[ChoiceDeltaToolCall]) -> None:
        for part in parts:
            # The core gives every tool-call delta an index, even when the server omits it.
            call = self._calls.setdefault(part.index or 0, _Call())
            call.id = call.id or part.id or ""
            if part.function is not None:
                call.name += part.function.name or ""
                call.arguments += part.function.arguments or ""

    def _response(self, raw: dict[str, Any], text: str, thinking: str) -> ChatResponse:
        self._last_raw = raw
        calls = (
            [(c.id, c.name, c.arguments) for _, c in sorted(self._calls.items())]
            if self._calls
            else ()
        )
        message = assistant_message(self._content, self._reasoning, calls)
        extra = {"thinking_delta": thinking} if thinking else {}
        return stream_chat_response(message, raw, text, extra)
