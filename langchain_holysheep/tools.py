"""Tools and ``tool_choice`` in the wire's function-calling form."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from holysheep_core.strict_schema import strict_json_schema

__all__ = ["ToolChoice", "format_tools", "tool_choice_to_wire"]

ToolChoice = str | bool | Mapping[str, Any] | None


def format_tools(
    tools: Sequence[Mapping[str, Any] | type | Callable[..., Any] | BaseTool],
    *,
    strict: bool | None = None,
) -> list[dict[str, Any]]:
    """``{"type": "function", "function": {name, description, parameters[, strict]}}`` for
    each tool: LangChain tools, pydantic models, TypedDicts, functions or schema dicts.

    A strict tool's parameters are put in the form strict mode accepts (every property
    required, ``additionalProperties: false``, no ``default``): the model then gives every
    argument a value of its declared type, which the tool takes as it is."""
    formatted = [convert_to_openai_tool(tool, strict=strict) for tool in tools]
    for tool in formatted:
        function = tool.get("function") or {}
        if function.get("strict") and isinstance(function.get("parameters"), Mapping):
            function["parameters"] = strict_json_schema(
                function["parameters"], nullable_optionals=False
            )
    return formatted


def tool_choice_to_wire(
    choice: ToolChoice, tool_names: Sequence[str]
) -> str | dict[str, Any] | None:
    """The wire ``tool_choice`` for LangChain's spellings, checked before any request.

    A tool's name forces that tool; ``"auto"`` and ``"none"`` pass through; ``"any"``,
    ``"required"`` and ``True`` force some tool; ``False`` and ``None`` leave the server's
    default; a dict is taken as the wire form.

    Raises:
        ValueError: an unknown name or an unsupported type.
    """
    if choice is None or choice is False:
        return None
    if choice is True:
        return "required"
    if isinstance(choice, str):
        if choice in tool_names:  # a tool may be called "auto": its name wins
            return {"type": "function", "function": {"name": choice}}
        if choice in ("auto", "none", "required"):
            return choice
        if choice == "any":
            return "required"
        raise ValueError(
            f"tool_choice={choice!r} is neither a bound tool ({', '.join(tool_names) or 'none'})"
            " nor one of 'auto', 'none', 'any', 'required'"
        )
    if isinstance(choice, Mapping):
        return dict(choice)
    raise ValueError(
        f"tool_choice must be a tool name, 'auto', 'none', 'any', 'required', a bool or a "
        f"dict, got {type(choice).__name__}"
    )
