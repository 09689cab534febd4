"""``with_structured_output``: a schema becomes a ``response_format`` or a forced tool call,
and a parser turns the answer back into a dict or a pydantic object."""

from __future__ import annotations

from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import (
    JsonOutputKeyToolsParser,
    PydanticToolsParser,
)
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import (
    convert_to_openai_function,
    convert_to_openai_tool,
)
from langchain_core.utils.pydantic import is_basemodel_subclass

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

__all__ = ["METHODS", "Method", "json_schema_format", "structured_output"]

Method = Literal["json_schema", "function_calling", "json_mode"]
METHODS: tuple[str, ...] = ("json_schema", "function_calling", "json_mode")


def json_schema_format(schema: dict[str, Any] | type, *, strict: bool | None) -> dict[str, Any]:
    """``{"type": "json_schema", "json_schema": {name, description, schema, strict}}``."""
    if isinstance(schema, dict) and schema.get("type") == "json_schema":
        return schema  # already the wire form
    function = convert_to_openai_function(schema, strict=strict)
    spec: dict[str, Any] = {"name": function["name"], "schema": function["parameters"]}
    if function.get("description"):
        spec["description"] = function["description"]
    if strict is not None:
        spec["strict"] = strict
    return {"type": "json_schema", "json_schema": spec}


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
    if method == "function_calling":
        assert schema is not None
        name = convert_to_openai_tool(schema)["function"]["name"]
        llm = model.bind_tools(  # type: ignore[call-arg]
            [schema],
            tool_choice=name,
            strict=strict,
            parallel_tool_calls=False,
            ls_structured_output_format=traced,
        )
        parser = (
            PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
            if is_pydantic
            else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
        )
    else:
        response_format = (
            {"type": "json_object"}
            if method == "json_mode"
            else json_schema_format(schema, strict=strict)  # type: ignore[arg-type]
        )
        llm = model.bind(response_format=response_format, ls_structured_output_format=traced)
        parser = (
            PydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
            if is_pydantic
            else JsonOutputParser()
        )

    if not include_raw:
        return llm | parser
    parse = RunnablePassthrough.assign(
        parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
    )
    no_parse = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=llm) | parse.with_fallbacks([no_parse], exception_key="parsing_error")
