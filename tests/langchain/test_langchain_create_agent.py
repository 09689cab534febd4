"""``create_agent(model=ChatHolySheep(...), response_format=Schema)``: LangChain picks the
provider's structured output or a tool by ``model.profile["structured_output"]``, which
says what each model really honours."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_helpers import chat_bodies
from pydantic import BaseModel, Field

agents = pytest.importorskip("langchain.agents", reason="the langchain package (test extra)")


class Flock(BaseModel):
    """A flock of sheep in a field."""

    field: str = Field(description="name of the field")
    sheep: int = Field(description="how many sheep")


PROMPT = 'The field "Long Meadow" holds 42 sheep.'


@pytest.mark.parametrize(
    ("model", "native"),
    [("gpt-4.1", True), ("gemini-2.5-flash", True), ("deepseek-v3.2", False)],
)
def test_create_agent_follows_the_profile(
    make_chat: Any, emulator: Any, model: str, native: bool
) -> None:
    agent = agents.create_agent(make_chat(model=model), tools=[], response_format=Flock)
    result = agent.invoke({"messages": [("user", PROMPT)]})
    assert result["structured_response"] == Flock(field="Long Meadow", sheep=42)
    first = chat_bodies(emulator)[0]
    if native:
        assert first["response_format"]["type"] == "json_schema"
        assert "tools" not in first
    else:  # deepseek-v3.2 honours no json_schema: a tool carries the answer
        assert "response_format" not in first
        assert [t["function"]["name"] for t in first["tools"]] == ["Flock"]
