"""Which tools a completion calls, and with what arguments."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .validation import ChatRequest, ToolSpec
from .values import ValueSource, instance_for
from .words import content_words

__all__ = ["call_arguments", "choose_tools", "match_score"]


def match_score(tool: ToolSpec, message: str) -> int:
    """How many distinct content words the tool's name and description share with message."""
    return len(set(content_words(f"{tool.name} {tool.description}")) & set(content_words(message)))


def choose_tools(request: ChatRequest, last_user_text: str) -> list[ToolSpec]:
    """The tools a completion calls, in call order (empty: answer in text).

    ``none`` → none; a named function → it; ``required`` → the best-matching tool among
    those not yet called since the last user message (ties and no match: the first declared;
    once every tool has been called, among all of them again), so that an agent forced to
    call tools reaches each one, its structured-response tool included, within as many turns
    as it has tools; ``auto`` → nothing when the last message is a tool result, else the
    tools with a match score above zero: all of them in declaration order when
    ``parallel_tool_calls`` is not false, else the best one.
    """
    tools, choice = request.tools, request.tool_choice
    if not tools or choice == "none":
        return []
    if isinstance(choice, tuple):
        return [tool for tool in tools if tool.name == choice[1]][:1]
    if choice == "required":
        called = _called_since_last_user(request.messages)
        fresh = [tool for tool in tools if tool.name not in called] or list(tools)
        return [_best(fresh, [match_score(tool, last_user_text) for tool in fresh])]
    scores = [match_score(tool, last_user_text) for tool in tools]
    best = _best(tools, scores)
    if request.messages[-1]["role"] in ("tool", "function"):
        return []
    matching = [tool for tool, score in zip(tools, scores, strict=True) if score > 0]
    if not matching:
        return []
    return matching if request.parallel_tool_calls else [best]


def _called_since_last_user(messages: Sequence[Mapping[str, Any]]) -> set[str]:
    called: set[str] = set()
    for message in reversed(messages):
        if message["role"] == "user":
            break
        for call in message.get("tool_calls") or ():
            called.add(call["function"]["name"])
    return called


def _best(tools: Sequence[ToolSpec], scores: Sequence[int]) -> ToolSpec:
    # max() keeps the first of equal scores: declaration order breaks ties.
    return tools[max(range(len(tools)), key=scores.__getitem__)]


def call_arguments(tool: ToolSpec, last_user_text: str) -> str:
    """The JSON arguments of a call: ``instance_for`` the parameters, from the user message."""
    schema = tool.parameters or {"type": "object", "properties": {}}
    return json.dumps(instance_for(schema, ValueSource(last_user_text)))
