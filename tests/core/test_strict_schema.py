"""Strict-mode schemas and reading answers back against the original (pure functions)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel, Field
from strict_helpers import assert_strict_schema

from holysheep_core.strict_schema import drop_added_nulls, strict_json_schema


class Pen(BaseModel):
    name: str
    gates: int = 1


class Farm(BaseModel):
    field: str
    dog: str | None = None
    note: str = Field("none", description="free text")
    pen: Pen = Field(default_factory=lambda: Pen(name="main"), description="the pen")
    pens: list[Pen] = Field(default_factory=list)


ORIGINAL = Farm.model_json_schema()


@pytest.mark.parametrize("nullable", [True, False])
def test_the_result_is_a_strict_schema_and_the_input_is_untouched(nullable: bool) -> None:
    before = repr(ORIGINAL)
    strict = strict_json_schema(ORIGINAL, nullable_optionals=nullable)
    assert_strict_schema(strict)
    jsonschema.Draft202012Validator.check_schema(strict)
    assert repr(ORIGINAL) == before
    assert strict_json_schema(strict, nullable_optionals=nullable) == strict  # idempotent


def test_optional_fields_become_nullable_only_when_asked() -> None:
    nullable = strict_json_schema(ORIGINAL, nullable_optionals=True)["properties"]
    kept = strict_json_schema(ORIGINAL, nullable_optionals=False)["properties"]
    assert nullable["note"]["anyOf"][1] == {"type": "null"}
    assert kept["note"] == {"description": "free text", "title": "Note", "type": "string"}
    assert nullable["field"] == kept["field"] == {"title": "Field", "type": "string"}
    # Already nullable: left as it is.
    assert nullable["dog"] == kept["dog"]


def test_a_ref_with_siblings_is_inlined() -> None:
    pen = strict_json_schema(ORIGINAL, nullable_optionals=False)["properties"]["pen"]
    assert "$ref" not in pen and pen["description"] == "the pen"
    assert pen["required"] == ["name", "gates"] and pen["additionalProperties"] is False


def test_an_answer_with_nulls_for_optional_fields_reads_back_with_defaults() -> None:
    strict = strict_json_schema(ORIGINAL, nullable_optionals=True)
    answer: dict[str, Any] = {
        "field": "Long Meadow",
        "dog": None,
        "note": None,
        "pen": {"name": "north", "gates": None},
        "pens": [{"name": "a", "gates": None}, {"name": "b", "gates": 3}],
    }
    jsonschema.validate(answer, strict)  # what a strict server may send
    farm = Farm.model_validate(drop_added_nulls(answer, ORIGINAL))
    assert farm == Farm(
        field="Long Meadow",
        dog=None,  # null is one of its values: kept
        pen=Pen(name="north"),
        pens=[Pen(name="a"), Pen(name="b", gates=3)],
    )
