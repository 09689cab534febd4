"""Which tools a completion calls, and with what arguments."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .validation import ChatRequest, ToolSpec
from .values import ValueSource, instance_for
from .words import content_words

__all__ = ["call_arguments", "choose_tools", "match_score"]


def match_score(tool: ToolSpec, message: str) -> int:
    """How many distinct content words the tool's name and description share with message."""
    return len(set(content_words(f"{tool.name} {tool.description}")) & set(content_words(message)))


def choose_tools(request: ChatRequest, last_user_text: str) -> list[ToolSpec]:
    """The tools a completion calls, in call order (empty: answer in text).

    ``none`` → none; a named function → it; ``required`` → the best-matching tool (ties and
    no match: the first declared); ``auto`` → nothing when the last message is a tool result,
    else the tools with a match score above zero: all of them in declaration order when
    ``parallel_tool_calls`` is not false, else the best one.
    """
    tools, choice = request.tools, request.tool_choice
    if not tools or choice == "none":
        return []
    if isinstance(choice, tuple):
        return [tool for tool in tools if tool.name == choice[1]][:1]
    scores = [match_score(tool, last_user_text) for tool in tools]
    best = _best(tools, scores)
    if choice == "required":
        return [best]
    if request.messages[-1]["role"] in ("tool", "function"):
        return []
    matching = [tool for tool, score in zip(tools, scores, strict=True) if score > 0]
    if not matching:
        return []
    return matching if request.parallel_tool_calls else [best]


def _best(tools: Sequence[ToolSpec], scores: Sequence[int]) -> ToolSpec:
    # max() keeps the first of equal scores: declaration order breaks ties.
    return tools[max(range(len(tools)), key=scores.__getitem__)]


def call_arguments(tool: ToolSpec, last_user_text: str) -> str:
    """The JSON arguments of a call: ``instance_for`` the parameters, from the user message."""
    schema = tool.parameters or {"type": "object", "properties": {}}
    return json.dumps(instance_for(schema, ValueSource(last_user_text)))
