"""``with_structured_output``: a schema becomes a ``response_format`` or a forced tool call,
and a parser turns the answer back into a dict or a pydantic object."""

from __future__ import annotations

import json
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import ModelProfile
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import (
    JsonOutputKeyToolsParser,
    PydanticToolsParser,
)
from langchain_core.runnables import Runnable, RunnableLambda, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import (
    convert_to_openai_function,
    convert_to_openai_tool,
)
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ValidationError

from holysheep_core.strict_schema import drop_added_nulls, strict_json_schema

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

__all__ = ["METHODS", "Method", "default_method", "json_schema_format", "structured_output"]

Method = Literal["json_schema", "function_calling", "json_mode"]
METHODS: tuple[str, ...] = ("json_schema", "function_calling", "json_mode")


def json_schema_format(schema: dict[str, Any] | type, *, strict: bool | None) -> dict[str, Any]:
    """``{"type": "json_schema", "json_schema": {name, description, schema, strict}}``; with
    ``strict=True`` the schema is in the form strict mode accepts (optional fields nullable,
    see :mod:`holysheep_core.strict_schema`)."""
    if isinstance(schema, dict) and schema.get("type") == "json_schema":
        return schema  # already the wire form
    function = convert_to_openai_function(schema)
    parameters = function["parameters"]
    if strict:
        parameters = strict_json_schema(parameters, nullable_optionals=True)
    spec: dict[str, Any] = {"name": function["name"], "schema": parameters}
    if function.get("description"):
        spec["description"] = function["description"]
    if strict is not None:
        spec["strict"] = strict
    return {"type": "json_schema", "json_schema": spec}


def _strict_tool(schema: dict[str, Any] | type) -> dict[str, Any]:
    """The forced tool of ``function_calling`` with ``strict=True``: optional fields
    nullable, their nulls dropped again by the parser."""
    tool = convert_to_openai_tool(schema)
    function = tool["function"]
    function["parameters"] = strict_json_schema(
        function.get("parameters") or {"type": "object", "properties": {}},
        nullable_optionals=True,
    )
    function["strict"] = True
    return tool


def _without_added_nulls(schema: dict[str, Any] | type, as_model: bool) -> Runnable[Any, Any]:
    """Parsed JSON -> the same without the nulls strict mode allowed where ``schema`` does
    not, then (for a pydantic schema) the model instance, defaults filled in."""
    original = convert_to_openai_function(schema)["parameters"]

    def finish(value: Any) -> Any:
        value = drop_added_nulls(value, original)
        if not as_model:
            return value
        try:
            return schema.model_validate(value)  # type: ignore[union-attr]
        except ValidationError as exc:
            raise OutputParserException(str(exc), llm_output=json.dumps(value)) from exc

    return RunnableLambda(finish)


def default_method(profile: ModelProfile | None) -> Method:
    """What ``with_structured_output`` uses when no ``method`` is given: the server's
    ``json_schema`` where the model's profile says it is honoured, else a forced tool call
    (also for a model with no profile: tools are the more widely supported), else JSON mode."""
    if profile is not None and profile.get("structured_output"):
        return "json_schema"
    if profile is None or profile.get("tool_calling", True):
        return "function_calling"
    return "json_mode"


def structured_output(
    model: BaseChatModel,
    schema: dict[str, Any] | type | None,
    *,
    method: str,
    include_raw: bool,
    strict: bool | None,
    **kwargs: Any,
) -> Runnable[Any, Any]:
    """The runnable behind ``ChatHolySheep.with_structured_output``.

    Raises:
        ValueError: an unknown method, a missing schema, ``strict`` with ``json_mode``, or
            unexpected keyword arguments; all before any request.
    """
    if kwargs:
        raise ValueError(f"with_structured_output got unexpected arguments: {sorted(kwargs)}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if schema is None and method != "json_mode":
        raise ValueError(f"method={method!r} needs a schema (only 'json_mode' works without)")
    if strict is not None and method == "json_mode":
        raise ValueError("strict= does not apply to method='json_mode'")
    is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
    traced = {"kwargs": {"method": method, "strict": strict}, "schema": schema}

    parser: Runnable[Any, Any]
    # A strict schema lets the model answer null for an optional field: read answers back
    # against the original schema (wire dicts are taken as they are).
    reshaped = bool(strict) and not (
        isinstance(schema, dict) and schema.get("type") == "json_schema"
    )
    if method == "function_calling":
        assert schema is not None
        name = convert_to_openai_tool(schema)["function"]["name"]
        llm = model.bind_tools(  # type: ignore[call-arg]
            [_strict_tool(schema) if strict else schema],
            tool_choice=name,
            strict=None if strict else strict,
            parallel_tool_calls=False,
            ls_structured_output_format=traced,
        )
        if strict:
            parser = JsonOutputKeyToolsParser(
                key_name=name, first_tool_only=True
            ) | _without_added_nulls(schema, is_pydantic)
        elif is_pydantic:
            parser = PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
        else:
            parser = JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
    else:
        response_format = (
            {"type": "json_object"}
            if method == "json_mode"
            else json_schema_format(schema, strict=strict)  # type: ignore[arg-type]
        )
        llm = model.bind(response_format=response_format, ls_structured_output_format=traced)
        if reshaped:
            parser = JsonOutputParser() | _without_added_nulls(schema, is_pydantic)  # type: ignore[arg-type]
        elif is_pydantic:
            parser = PydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
        else:
            parser = JsonOutputParser()

    if not include_raw:
        return llm | parser
    parse = RunnablePassthrough.assign(
        parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
    )
    no_parse = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=llm) | parse.with_fallbacks([no_parse], exception_key="parsing_error")
