"""client_settings survive to_dict/from_dict (and to_json/from_json): policies, caps,
prices and budgets come back; what cannot be written down is named loudly on loading."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from holysheep_core import Budget, BudgetExceededError, PriceTable
from holysheep_core.policy.breaker import BreakerPolicy
from holysheep_core.policy.ratelimit import RateLimits
from llama_index_holysheep import HolySheep, HolySheepEmbedding


def _settings() -> dict[str, Any]:
    return {
        "breaker": BreakerPolicy(failure_threshold=2),
        "rate_limits": RateLimits(requests_per_second=10),
        "prices": PriceTable().with_prices({"house-embedding-1": {"input": "0.5", "output": "0"}}),
        "budget_usd": Budget("4", name="rag-team"),
        "max_connections": 5,
    }


@pytest.mark.parametrize("cls", [HolySheep, HolySheepEmbedding])
def test_settings_survive_to_json_and_from_json(
    cls: Any, api_key: str, base_url: str, opened: list[Any]
) -> None:
    settings = _settings()
    model = cls(api_key=api_key, api_base=base_url, client_settings=settings)
    text = model.to_json()
    assert api_key not in text
    again = cls.from_json(text, api_key=api_key)
    opened += [model, again]
    assert again.client_settings == settings
    assert again.client_settings["budget_usd"] is settings["budget_usd"]  # one cap, shared
    assert again._clients.config == model._clients.config
    assert again.to_dict() == model.to_dict()


def test_a_loaded_llm_keeps_its_budget(make_llm: Any, api_key: str, emulator: Any) -> None:
    llm = make_llm(client_settings={"budget_usd": Decimal("0.0000001")})
    again = HolySheep.from_dict(llm.to_dict(), api_key=api_key)
    with pytest.raises(BudgetExceededError):
        again.complete("Hello")
    assert emulator.requests == []


def test_hooks_cannot_be_written_and_loading_says_so(make_llm: Any, api_key: str) -> None:
    llm = make_llm(client_settings={"on_usage": (print,), "max_connections": 3})
    data = json.loads(llm.to_json())
    assert data["client_settings"]["dropped"] == {"on_usage": "a function"}
    with pytest.warns(UserWarning, match=r"HolySheep was serialised without client_settings"):
        again = HolySheep.from_dict(data, api_key=api_key)
    assert again.client_settings == {"max_connections": 3}


def test_callbacks_see_the_settings_written_down(make_llm: Any) -> None:
    # LlamaIndex serialises the model into every callback payload: JSON-able, no key.
    llm = make_llm(client_settings={"budget_usd": Decimal(5)})
    assert json.loads(json.dumps(llm.to_dict()))["client_settings"]["settings"] == {
        "budget_usd": {"$decimal": "5"}
    }
