"""client_settings survive dumps/loads: policies, caps, prices and budgets come back; what
cannot be written down (hooks) is named loudly when the model is loaded."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from langchain_core.load import dumps, loads

from holysheep_core import Budget, PriceTable
from holysheep_core.policy.breaker import BreakerPolicy
from holysheep_core.policy.ratelimit import Limit, RateLimits
from langchain_holysheep import ChatHolySheep
from langchain_holysheep.errors import HolySheepBudgetExceededError

pytestmark = pytest.mark.filterwarnings("ignore:The function `loads` is in beta")


def _load(text: str, api_key: str) -> ChatHolySheep:
    return loads(
        text,
        allowed_objects=[ChatHolySheep],
        valid_namespaces=["langchain_holysheep"],
        secrets_map={"HOLYSHEEP_API_KEY": api_key},
    )


def _settings() -> dict[str, Any]:
    return {
        "breaker": BreakerPolicy(failure_threshold=3, cool_down=12.5),
        "rate_limits": RateLimits(
            requests_per_second=20, per_model={"gpt-4.1": Limit(requests_per_second=2)}
        ),
        "prices": PriceTable().with_prices({"house-model": {"input": "1", "output": "2"}}),
        "max_connections": 7,
        "fallback_models": ("gpt-4.1",),
    }


@pytest.mark.parametrize("cap", [Decimal("2.5"), "budget"], ids=["usd", "Budget"])
def test_settings_survive_dumps_and_loads(make_chat: Any, api_key: str, cap: Any) -> None:
    budget = Budget("2.5", name="farm-team") if cap == "budget" else cap
    model = make_chat(client_settings={**_settings(), "budget_usd": budget})
    text = dumps(model)
    assert api_key not in text
    again = _load(text, api_key)
    assert again.client_settings == model.client_settings
    assert again._client_config() == model._client_config()
    # Equal settings share one client, and so one breaker, limiter and cap.
    assert again._sync_client() is model._sync_client()
    if cap == "budget":
        assert again.client_settings["budget_usd"] is budget


def test_a_loaded_budget_still_refuses_what_it_cannot_cover(
    make_chat: Any, api_key: str, emulator: Any
) -> None:
    model = make_chat(client_settings={"budget_usd": Budget("0.0000001", name="tiny")})
    again = _load(dumps(model), api_key)
    with pytest.raises(HolySheepBudgetExceededError):
        again.invoke("Hello")
    assert emulator.requests == []


def test_a_budget_from_another_process_comes_back_as_the_same_cap(
    make_chat: Any, api_key: str
) -> None:
    model = make_chat(client_settings={"budget_usd": Budget("3", name="elsewhere")})
    data = json.loads(dumps(model))
    data["kwargs"]["client_settings"]["settings"]["budget_usd"]["$budget"]["name"] = "gone"
    again = _load(json.dumps(data), api_key)
    budget = again.client_settings["budget_usd"]
    assert isinstance(budget, Budget)
    assert (budget.cap_usd, budget.name) == (Decimal(3), "gone")


def test_hooks_cannot_be_written_and_loading_says_so(make_chat: Any, api_key: str) -> None:
    seen: list[Any] = []
    model = make_chat(client_settings={"on_usage": (seen.append,), "max_connections": 9})
    text = dumps(model)  # serialising warns of nothing: LangChain does it on every call
    with pytest.warns(UserWarning, match=r"without client_settings 'on_usage' \(a function\)"):
        again = _load(text, api_key)
    assert again.client_settings == {"max_connections": 9}


def test_no_client_settings_no_entry(make_chat: Any) -> None:
    assert "client_settings" not in json.loads(dumps(make_chat()))["kwargs"]


def test_only_holysheep_classes_are_rebuilt(make_chat: Any, api_key: str) -> None:
    model = make_chat(client_settings={"breaker": BreakerPolicy()})
    data = json.loads(dumps(model))
    data["kwargs"]["client_settings"]["settings"]["breaker"]["$dataclass"] = "os:system"
    with pytest.raises(ValueError, match="outside holysheep_core"):
        _load(json.dumps(data), api_key)
