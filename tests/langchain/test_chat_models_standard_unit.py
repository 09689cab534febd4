"""langchain-tests' standard unit suite for ``ChatHolySheep`` (no network)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_holysheep import ChatHolySheep

UNIT_KEY = "hs-unit-test-key"
UNIT_URL = "https://holysheep.example/v1"


class TestChatHolySheepUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatHolySheep]:
        return ChatHolySheep

    @property
    def chat_model_params(self) -> dict:
        return {"model": "deepseek-v3.2", "api_key": UNIT_KEY}

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        return (
            {"HOLYSHEEP_API_KEY": UNIT_KEY, "HOLYSHEEP_BASE_URL": UNIT_URL},
            {"model": "gpt-4.1"},
            {"api_key": UNIT_KEY, "base_url": UNIT_URL, "model": "gpt-4.1"},
        )

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "gpt-4.1"

    @pytest.mark.xfail(
        reason="langchain-core 1.7's load(allowed_objects='all') admits only the classes in "
        "langchain-core's own serialisation mapping, which no third-party package is in; "
        "dumpd matches the snapshot, and test_langchain_secrets loads it back with "
        "allowed_objects=[ChatHolySheep]",
        raises=ValueError,
        strict=True,
    )
    def test_serdes(self, model: Any, snapshot: Any) -> None:
        super().test_serdes(model, snapshot)
