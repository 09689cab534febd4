"""A cached answer, and how it turns into a stream and back.

One stored form serves both kinds of call: a streamed answer is assembled into the
completion it amounts to before it is stored, and a completion is replayed as the chunks
a stream of it would have carried, usage chunk included.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..types import ChatCompletion, ChatCompletionChunk, Usage

__all__ = ["Entry", "assemble", "replay_chunks"]


@dataclass(frozen=True, slots=True)
class Entry:
    """What the backends hold for one request: the answer and where it may be reused."""

    completion: dict[str, Any]
    """The wire form of the answer (a ``ChatCompletion`` dump)."""
    model: str
    """The model the request asked for (the answer came from it, never from a fallback)."""
    scope: str
    prompt: str | None = None
    """The prompt a semantic match is checked against (numbers, negations)."""

    def dumps(self) -> bytes:
        record = {
            "v": 1,
            "completion": self.completion,
            "model": self.model,
            "scope": self.scope,
            "prompt": self.prompt,
        }
        return json.dumps(record, separators=(",", ":")).encode()

    @classmethod
    def loads(cls, data: bytes | str) -> Entry | None:
        try:
            record = json.loads(data)
            if record.get("v") != 1:
                return None
            return cls(record["completion"], record["model"], record["scope"], record.get("prompt"))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # written by something else: a miss, never an error

    def answer(self) -> ChatCompletion:
        return ChatCompletion.model_validate(self.completion)


def assemble(chunks: Iterable[ChatCompletionChunk]) -> ChatCompletion | None:
    """The completion a whole stream amounts to; None if no choice finished."""
    head: ChatCompletionChunk | None = None
    usage: Usage | None = None
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        head = head or chunk
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            choice = choices.setdefault(
                c.index, {"content": [], "reasoning": [], "calls": {}, "finish": None}
            )
            d = c.delta
            if d.content:
                choice["content"].append(d.content)
            if d.reasoning_content:
                choice["reasoning"].append(d.reasoning_content)
            for tc in d.tool_calls or ():
                call = choice["calls"].setdefault(tc.index or 0, {"id": "", "name": "", "args": []})
                call["id"] = tc.id or call["id"]
                if tc.function is not None:
                    call["name"] = tc.function.name or call["name"]
                    if tc.function.arguments:
                        call["args"].append(tc.function.arguments)
            if c.finish_reason is not None:
                choice["finish"] = c.finish_reason
    if head is None or not choices or any(c["finish"] is None for c in choices.values()):
        return None
    out = []
    for index, c in sorted(choices.items()):
        message: dict[str, Any] = {"role": "assistant", "content": "".join(c["content"]) or None}
        if c["reasoning"]:
            message["reasoning_content"] = "".join(c["reasoning"])
        if c["calls"]:
            message["tool_calls"] = [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": "".join(call["args"])},
                }
                for _, call in sorted(c["calls"].items())
            ]
        out.append({"index": index, "message": message, "finish_reason": c["finish"]})
    return ChatCompletion.model_validate(
        {
            "id": head.id,
            "created": head.created,
            "model": head.model,
            "choices": out,
            "usage": None if usage is None else usage.model_dump(exclude_none=True),
            "system_fingerprint": head.system_fingerprint,
        }
    )


def replay_chunks(completion: ChatCompletion, *, include_usage: bool) -> list[ChatCompletionChunk]:
    """The chunks of a stream of ``completion``: per choice a role delta, its reasoning,
    content and tool calls, and its finish reason; then, when asked, the usage chunk."""
    base = {
        "id": completion.id,
        "object": "chat.completion.chunk",
        "created": completion.created,
        "model": completion.model,
        "system_fingerprint": completion.system_fingerprint,
    }
    deltas: list[dict[str, Any]] = []
    for choice in completion.choices:
        m = choice.message
        i = choice.index
        deltas.append({"index": i, "delta": {"role": "assistant"}})
        if m.reasoning_content:
            deltas.append({"index": i, "delta": {"reasoning_content": m.reasoning_content}})
        if m.content:
            deltas.append({"index": i, "delta": {"content": m.content}})
        for j, call in enumerate(m.tool_calls or ()):
            deltas.append(
                {
                    "index": i,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": j,
                                "id": call.id,
                                "type": "function",
                                "function": {
                                    "name": call.function.name,
                                    "arguments": call.function.arguments,
                                },
                            }
                        ]
                    },
                }
            )
        deltas.append({"index": i, "delta": {}, "finish_reason": choice.finish_reason})
    chunks = [ChatCompletionChunk.model_validate({**base, "choices": [d]}) for d in deltas]
    if include_usage and completion.usage is not None:
        chunks.append(
            ChatCompletionChunk.model_validate(
                {**base, "choices": [], "usage": completion.usage.model_dump(exclude_none=True)}
            )
        )
    return chunks
