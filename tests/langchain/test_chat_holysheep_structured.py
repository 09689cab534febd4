"""with_structured_output by each method: what goes on the wire and what comes back.

The emulator fills a schema from the last user message (quoted phrases for strings, the
message's numbers in order for numbers), so the expected values follow from the prompt.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_helpers import chat_bodies
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from holysheep_core.emulator import reply_to
from langchain_holysheep import ChatHolySheep

PROMPT = 'The field "Long Meadow" holds 42 sheep.'
EXPECTED = {"field": "Long Meadow", "sheep": 42}


class Flock(BaseModel):
    """A flock of sheep in a field."""

    field: str = Field(description="name of the field")
    sheep: int = Field(description="how many sheep")


class FlockDict(TypedDict):
    """A flock of sheep in a field."""

    field: str
    sheep: int


FLOCK_SCHEMA = Flock.model_json_schema()
SCHEMAS = {"pydantic": Flock, "typeddict": FlockDict, "json_schema": FLOCK_SCHEMA}


def _as_dict(result: Any) -> dict[str, Any]:
    return result.model_dump() if isinstance(result, BaseModel) else result


@pytest.mark.parametrize("kind", SCHEMAS)
def test_json_schema(emulator: Any, chat: ChatHolySheep, kind: str) -> None:
    result = chat.with_structured_output(SCHEMAS[kind], method="json_schema").invoke(PROMPT)
    assert isinstance(result, Flock) if kind == "pydantic" else isinstance(result, dict)
    assert _as_dict(result) == EXPECTED
    (body,) = chat_bodies(emulator)
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema"
    name = "FlockDict" if kind == "typeddict" else "Flock"
    assert fmt["json_schema"]["name"] == name
    assert fmt["json_schema"]["schema"]["properties"].keys() == {"field", "sheep"}
    assert "tools" not in body


@pytest.mark.parametrize("kind", SCHEMAS)
def test_function_calling(emulator: Any, chat: ChatHolySheep, kind: str) -> None:
    model = chat.with_structured_output(SCHEMAS[kind], method="function_calling")
    assert _as_dict(model.invoke(PROMPT)) == EXPECTED
    (body,) = chat_bodies(emulator)
    name = body["tools"][0]["function"]["name"]
    assert body["tool_choice"] == {"type": "function", "function": {"name": name}}
    assert body["parallel_tool_calls"] is False
    assert "response_format" not in body


def test_json_mode(emulator: Any, chat: ChatHolySheep) -> None:
    class Answer(BaseModel):
        answer: str

    result = chat.with_structured_output(Answer, method="json_mode").invoke("Reply in JSON: hi")
    assert result == Answer(answer=reply_to("Reply in JSON: hi"))
    as_dict = chat.with_structured_output(method="json_mode").invoke("Reply in JSON: hi")
    assert as_dict == {"answer": reply_to("Reply in JSON: hi")}
    assert [b["response_format"] for b in chat_bodies(emulator)] == [{"type": "json_object"}] * 2


def test_strict_reaches_the_wire(emulator: Any, chat: ChatHolySheep) -> None:
    chat.with_structured_output(Flock, method="json_schema", strict=True).invoke(PROMPT)
    chat.with_structured_output(Flock, method="function_calling", strict=True).invoke(PROMPT)
    by_schema, by_tool = chat_bodies(emulator)
    assert by_schema["response_format"]["json_schema"]["strict"] is True
    assert by_tool["tools"][0]["function"]["strict"] is True


@pytest.mark.parametrize("method", ["json_schema", "function_calling", "json_mode"])
def test_include_raw(chat: ChatHolySheep, method: str) -> None:
    schema: Any = Flock
    prompt = PROMPT if method != "json_mode" else f"{PROMPT} Answer in JSON."
    out = chat.with_structured_output(schema, method=method, include_raw=True).invoke(prompt)
    assert out["raw"].usage_metadata is not None
    if method == "json_mode":
        # JSON mode's answer is {"answer": ...}: it does not parse as a Flock.
        assert out["parsed"] is None and out["parsing_error"] is not None
    else:
        assert out["parsed"] == Flock(**EXPECTED) and out["parsing_error"] is None


async def test_async_and_streamed(chat: ChatHolySheep) -> None:
    model = chat.with_structured_output(Flock)
    assert await model.ainvoke(PROMPT) == Flock(**EXPECTED)
    streamed = [part async for part in model.astream(PROMPT)]
    assert streamed[-1] == Flock(**EXPECTED)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((Flock,), {"method": "xml"}, "method must be one of"),
        ((None,), {"method": "json_schema"}, "needs a schema"),
        ((Flock,), {"method": "json_mode", "strict": True}, "strict"),
        ((Flock,), {"tools": []}, "unexpected arguments"),
    ],
)
def test_bad_arguments(chat: ChatHolySheep, args: Any, kwargs: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        chat.with_structured_output(*args, **kwargs)
