"""with_structured_output's default method follows the model's profile, and strict schemas
are ones OpenAI's strict mode accepts."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_helpers import chat_bodies
from pydantic import BaseModel, Field
from strict_helpers import assert_strict_schema

from holysheep_core import PriceTable


class Pen(BaseModel):
    """Where the sheep sleep."""

    name: str
    gates: int = 1


class Farm(BaseModel):
    """A farm with a flock."""

    field: str = Field(description="name of the field")
    sheep: int = Field(description="how many sheep")
    dog: str | None = None
    note: str = "none"
    pen: Pen | None = None
    pens: list[Pen] = Field(default_factory=list)


PROMPT = 'The field "Long Meadow" holds 42 sheep.'


@pytest.mark.parametrize(
    ("model", "method"),
    [
        ("deepseek-v3.2", "function_calling"),  # JSON mode and tools, no json_schema
        ("claude-sonnet-4.5", "function_calling"),  # response_format ignored upstream
        ("gpt-4.1", "json_schema"),
        ("gemini-2.5-flash", "json_schema"),
        ("DeepSeek-V3.2", "function_calling"),  # names match whatever their case
        ("my-finetune", "function_calling"),  # no profile: tools are the safer bet
    ],
)
def test_default_method_follows_the_profile(make_chat: Any, model: str, method: str) -> None:
    structured = make_chat(model=model).with_structured_output(Farm)
    bound = structured.first.kwargs  # type: ignore[attr-defined]
    if method == "json_schema":
        assert bound["response_format"]["type"] == "json_schema"
        assert "tools" not in bound
    else:
        assert bound["tools"][0]["function"]["name"] == "Farm"
        assert bound["tool_choice"] == {"type": "function", "function": {"name": "Farm"}}
        assert "response_format" not in bound


def test_profile_says_what_create_agent_reads(make_chat: Any) -> None:
    table = PriceTable()
    for model in ("deepseek-v3.2", "gpt-4.1", "claude-sonnet-4.5", "gemini-2.5-flash"):
        profile = make_chat(model=model).profile
        assert profile["structured_output"] is table.profile(model).supports_json_schema
        assert profile["tool_calling"] is True
    assert make_chat(model="deepseek-v3.2").profile["structured_output"] is False


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_default_method_answers_on_the_emulator(make_chat: Any, emulator: Any, method: str) -> None:
    model = "gpt-4.1" if method == "json_schema" else "deepseek-v3.2"
    farm = make_chat(model=model).with_structured_output(Farm).invoke(PROMPT)
    assert (farm.field, farm.sheep) == ("Long Meadow", 42)
    (body,) = chat_bodies(emulator)
    assert ("response_format" in body) is (method == "json_schema")
    assert ("tools" in body) is (method == "function_calling")


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
@pytest.mark.parametrize("kind", ["pydantic", "json_schema"])
def test_strict_schemas_are_valid_strict_schemas(
    make_chat: Any, emulator: Any, method: str, kind: str
) -> None:
    schema = Farm if kind == "pydantic" else Farm.model_json_schema()
    model = make_chat(model="gpt-4.1").with_structured_output(schema, method=method, strict=True)
    result = model.invoke(PROMPT)
    (body,) = chat_bodies(emulator)
    if method == "json_schema":
        spec = body["response_format"]["json_schema"]
        assert spec["strict"] is True
        sent = spec["schema"]
    else:
        function = body["tools"][0]["function"]
        assert function["strict"] is True
        sent = function["parameters"]
    assert_strict_schema(sent)
    # Optional fields stay optional by being nullable; required ones are not.
    props = sent["properties"]
    assert {"type": "null"} in props["note"]["anyOf"]
    assert props["sheep"].get("type") == "integer"
    farm = Farm.model_validate(result) if kind == "json_schema" else result
    assert isinstance(farm, Farm)
    assert (farm.field, farm.sheep) == ("Long Meadow", 42)
    assert isinstance(farm.note, str)  # a null answer was dropped: the default is back


def test_strict_tools_require_every_argument_with_its_own_type(make_chat: Any) -> None:
    bound = make_chat().bind_tools([Farm], strict=True)
    function = bound.kwargs["tools"][0]["function"]  # type: ignore[attr-defined]
    assert function["strict"] is True
    assert_strict_schema(function["parameters"])
    # A tool gets its arguments as they are: no nulls for fields that do not take null.
    assert function["parameters"]["properties"]["note"] == {"type": "string"}


def test_a_known_name_in_another_case_is_that_model(make_chat: Any, emulator: Any) -> None:
    model = make_chat(model="GPT-4.1")
    assert model.model == "gpt-4.1"
    assert model.profile["structured_output"] is True
    model.invoke("Hi")
    model.invoke("Hi", model="DeepSeek-V3.2")
    assert [b["model"] for b in chat_bodies(emulator)] == ["gpt-4.1", "deepseek-v3.2"]
