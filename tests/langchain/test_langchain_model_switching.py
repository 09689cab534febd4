"""What works where ``init_chat_model`` cannot reach HolySheep (its provider list is
fixed): configurable alternatives and fields, and a per-call model."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import ConfigurableField
from langchain_helpers import chat_bodies


def test_configurable_alternatives_pick_the_model_per_call(make_chat: Any, emulator: Any) -> None:
    model = make_chat(model="deepseek-v3.2").configurable_alternatives(
        ConfigurableField(id="llm"), default_key="deepseek", gpt=make_chat(model="gpt-4.1")
    )
    model.invoke("Hi")
    model.with_config(configurable={"llm": "gpt"}).invoke("Hi")
    assert [b["model"] for b in chat_bodies(emulator)] == ["deepseek-v3.2", "gpt-4.1"]


def test_configurable_fields_and_a_per_call_model(make_chat: Any, emulator: Any) -> None:
    model = make_chat().configurable_fields(
        model=ConfigurableField(id="model"), temperature=ConfigurableField(id="temperature")
    )
    model.with_config(configurable={"model": "gemini-2.5-flash", "temperature": 0.1}).invoke("Hi")
    make_chat().invoke("Hi", model="claude-sonnet-4.5")
    first, second = chat_bodies(emulator)
    assert (first["model"], first["temperature"]) == ("gemini-2.5-flash", 0.1)
    assert second["model"] == "claude-sonnet-4.5"
