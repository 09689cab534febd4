"""The deterministic completion for a validated chat request."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .answers import answer_text, last_user_text
from .tokens import count_tokens, truncate_tokens
from .tools import call_arguments, choose_tools
from .validation import ChatRequest
from .values import ValueSource, instance_for

__all__ = [
    "Choice",
    "Completion",
    "ToolCall",
    "answer_text",
    "complete",
    "reasoning_text",
]

REASONING_ECHO_TOKENS = 16


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Choice:
    index: int
    content: str | None
    reasoning: str | None
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    completion_tokens: int
    reasoning_tokens: int


@dataclass(frozen=True, slots=True)
class Completion:
    id: str
    created: int
    model: str
    system_fingerprint: str
    choices: tuple[Choice, ...]
    prompt_tokens: int
    cached_tokens: int

    @property
    def completion_tokens(self) -> int:
        return sum(choice.completion_tokens for choice in self.choices)

    @property
    def reasoning_tokens(self) -> int:
        return sum(choice.reasoning_tokens for choice in self.choices)


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


def _excerpt(text: str, limit: int) -> str:
    return truncate_tokens(" ".join(text.split()), limit)


def reasoning_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """``reasoning_content``: names the first ``REASONING_ECHO_TOKENS`` tokens of the question."""
    question = _excerpt(last_user_text(messages), REASONING_ECHO_TOKENS) or "a greeting"
    return f"The user asks about: {question}. I will answer briefly."


class _Budget:
    """What is left of ``max_tokens`` for one choice (None: unlimited)."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit
        self.exhausted = False

    def take(self, text: str) -> tuple[str, int]:
        tokens = count_tokens(text)
        if self.left is not None and tokens > self.left:
            text, tokens = truncate_tokens(text, self.left), self.left
            self.exhausted = True
        if self.left is not None:
            self.left -= tokens
        return text, tokens


def _cut_at_stop(text: str, stops: Sequence[str]) -> str:
    cuts = [i for i in (text.find(stop) for stop in stops) if i >= 0]
    return text[: min(cuts)] if cuts else text


def _content(request: ChatRequest, index: int) -> str:
    text = answer_text(request.messages)
    if index:
        text = f"Alternative {index}: {text}"
    kind = request.response_format.type
    if kind == "json_object":
        return json.dumps({"answer": text})
    if kind == "json_schema":
        schema = request.response_format.schema
        if schema is None:
            return json.dumps({"answer": text})
        source = ValueSource(last_user_text(request.messages))
        return json.dumps(instance_for(schema, source))
    return text


def _choice(request: ChatRequest, index: int) -> Choice:
    budget = _Budget(request.max_tokens)
    reasoning, reasoning_tokens = None, 0
    if request.reasoning:
        reasoning, reasoning_tokens = budget.take(reasoning_text(request.messages))
    user_text = last_user_text(request.messages)
    tools = [] if budget.exhausted else choose_tools(request, user_text)
    content: str | None = None
    content_tokens = 0
    calls = []
    for tool in tools:
        arguments, tokens = budget.take(call_arguments(tool, user_text))
        if not arguments:
            break
        calls.append(ToolCall(new_id("call_"), tool.name, arguments))
        content_tokens += tokens
    if tools and not calls:
        content = ""
    elif not tools:
        text = "" if budget.exhausted else _cut_at_stop(_content(request, index), request.stop)
        content, content_tokens = budget.take(text)
    finish_reason = "length" if budget.exhausted else "tool_calls" if calls else "stop"
    return Choice(
        index=index,
        content=content,
        reasoning=reasoning,
        tool_calls=tuple(calls),
        finish_reason=finish_reason,
        completion_tokens=reasoning_tokens + content_tokens,
        reasoning_tokens=reasoning_tokens,
    )


def complete(request: ChatRequest, *, cached_tokens: int = 0) -> Completion:
    """The completion for request; ``cached_tokens`` is the server's prompt-cache hit."""
    fingerprint = "fp_emulator" if request.seed is None else f"fp_emulator_{request.seed}"
    return Completion(
        id=new_id("chatcmpl-"),
        created=int(time.time()),
        model=request.model_id,
        system_fingerprint=fingerprint,
        choices=tuple(_choice(request, i) for i in range(request.n)),
        prompt_tokens=request.prompt_tokens,
        cached_tokens=cached_tokens,
    )
