"""Completions rendered as the API's JSON: the response body and the stream's chunks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .generation import Choice, Completion
from .tokens import split_tokens

__all__ = ["TOKENS_PER_CHUNK", "Quirk", "completion_body", "completion_chunks", "usage_body"]

TOKENS_PER_CHUNK = 3
"""Each content, reasoning or arguments delta carries this many tokens (the last, fewer)."""


class Quirk(StrEnum):
    """Stream habits of some OpenAI-compatible servers, chosen per request or server."""

    NO_TOOL_INDEX = "no-tool-index"
    """Tool call deltas carry no ``index``."""
    USAGE_EVERY_CHUNK = "usage-every-chunk"
    """Every chunk carries the usage so far (cumulative, not per chunk)."""


def usage_body(
    prompt_tokens: int, completion_tokens: int, *, cached_tokens: int = 0, reasoning_tokens: int = 0
) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }


def _usage(completion: Completion) -> dict[str, Any]:
    return usage_body(
        completion.prompt_tokens,
        completion.completion_tokens,
        cached_tokens=completion.cached_tokens,
        reasoning_tokens=completion.reasoning_tokens,
    )


def _message(choice: Choice) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": choice.content}
    if choice.reasoning is not None:
        message["reasoning_content"] = choice.reasoning
    if choice.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in choice.tool_calls
        ]
    return message


def completion_body(completion: Completion) -> dict[str, Any]:
    """The ``chat.completion`` object."""
    return {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "system_fingerprint": completion.system_fingerprint,
        "choices": [
            {
                "index": choice.index,
                "message": _message(choice),
                "finish_reason": choice.finish_reason,
                "logprobs": None,
            }
            for choice in completion.choices
        ],
        "usage": _usage(completion),
    }


def _pieces(text: str) -> list[tuple[str, int]]:
    tokens = split_tokens(text)
    return [
        ("".join(tokens[i : i + TOKENS_PER_CHUNK]), min(TOKENS_PER_CHUNK, len(tokens) - i))
        for i in range(0, len(tokens), TOKENS_PER_CHUNK)
    ]


@dataclass(frozen=True, slots=True)
class _Step:
    delta: dict[str, Any]
    tokens: int = 0
    reasoning_tokens: int = 0
    finish_reason: str | None = None


def _steps(choice: Choice, quirks: frozenset[Quirk]) -> list[_Step]:
    steps = [_Step({"role": "assistant", "content": ""})]
    for piece, tokens in _pieces(choice.reasoning or ""):
        steps.append(_Step({"reasoning_content": piece}, tokens, tokens))
    for piece, tokens in _pieces(choice.content or ""):
        steps.append(_Step({"content": piece}, tokens))
    for index, call in enumerate(choice.tool_calls):
        at = {} if Quirk.NO_TOOL_INDEX in quirks else {"index": index}
        opening = {**at, "id": call.id, "type": "function"}
        opening["function"] = {"name": call.name, "arguments": ""}
        steps.append(_Step({"tool_calls": [opening]}))
        for piece, tokens in _pieces(call.arguments):
            steps.append(_Step({"tool_calls": [{**at, "function": {"arguments": piece}}]}, tokens))
    steps.append(_Step({}, finish_reason=choice.finish_reason))
    return steps


def completion_chunks(
    completion: Completion, *, include_usage: bool, quirks: frozenset[Quirk] = frozenset()
) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a stream, in order (without ``[DONE]``).

    Each choice's deltas: ``role`` (with ``content: ""``), then ``reasoning_content`` pieces,
    then ``content`` pieces, then per tool call an opening delta (``index``, ``id``, ``type``,
    ``function.name``, ``arguments: ""``) and argument pieces (``index`` and
    ``function.arguments`` only), then an empty delta with ``finish_reason``. With n > 1 the
    choices' chunks interleave round-robin. ``include_usage`` puts ``usage: null`` on each
    chunk and adds a last chunk with ``choices: []`` and the usage.
    """
    base = {
        "id": completion.id,
        "object": "chat.completion.chunk",
        "created": completion.created,
        "model": completion.model,
        "system_fingerprint": completion.system_fingerprint,
    }
    per_choice = [(choice.index, _steps(choice, quirks)) for choice in completion.choices]
    chunks = []
    emitted = reasoning_emitted = 0
    for position in range(max(len(steps) for _, steps in per_choice)):
        for index, steps in per_choice:
            if position >= len(steps):
                continue
            step = steps[position]
            emitted += step.tokens
            reasoning_emitted += step.reasoning_tokens
            choice = {"index": index, "delta": step.delta, "logprobs": None}
            chunk = {**base, "choices": [{**choice, "finish_reason": step.finish_reason}]}
            if Quirk.USAGE_EVERY_CHUNK in quirks:
                chunk["usage"] = usage_body(
                    completion.prompt_tokens,
                    emitted,
                    cached_tokens=completion.cached_tokens,
                    reasoning_tokens=reasoning_emitted,
                )
            elif include_usage:
                chunk["usage"] = None
            chunks.append(chunk)
    if include_usage:
        chunks.append({**base, "choices": [], "usage": _usage(completion)})
    return chunks
