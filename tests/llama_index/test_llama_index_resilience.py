"""The core's resilience policies reached from HolySheep and HolySheepEmbedding: fallback
models per call, and budget, breaker and prices through ``client_settings``."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from llama_index.core.callbacks import CallbackManager
from llama_index_helpers import METHODS, call, usage_by_rule

from holysheep_core import (
    BreakerPolicy,
    Budget,
    BudgetExceededError,
    CircuitOpenError,
    ConfigurationError,
    HolySheepClient,
    InternalServerError,
    PriceTable,
    TokenUsage,
)
from holysheep_core.emulator import Fault
from llama_index_holysheep import HolySheep, HolySheepCostHandler, HolySheepUsageEventHandler

PRIMARY, BACKUP = "gpt-4.1", "deepseek-v3.2"
# Below the estimate of any call: its output bound alone, at the cheapest model's price.
TINY_CAP = Decimal("0.000001")


def chat_models_sent(emulator: Any) -> list[str]:
    return [r.body["model"] for r in emulator.requests if r.path.endswith("/chat/completions")]


@pytest.mark.parametrize("method", METHODS)
async def test_a_failing_model_falls_back_and_books_the_model_that_served(
    method: str, make_llm: Any, emulator: Any
) -> None:
    handler = HolySheepCostHandler()
    llm = make_llm(
        model=PRIMARY,
        fallback_models=[BACKUP],
        max_retries=0,
        callback_manager=CallbackManager([handler]),
    )
    emulator.inject(Fault.status(503))  # the primary's only attempt
    text = "who answers?"
    with HolySheepUsageEventHandler() as events:
        final, _ = await call(llm, method, text)
    assert chat_models_sent(emulator) == [PRIMARY, BACKUP]
    assert final.raw["model"] == BACKUP
    usage = usage_by_rule(emulator.requests[-1].body, f"You said: {text}")
    expected = TokenUsage.from_usage(usage, PriceTable().cost(BACKUP, usage))
    for report in (handler, events):
        assert report.by_model == {BACKUP: expected}


def test_a_calls_fallback_models_win(make_llm: Any, emulator: Any) -> None:
    llm = make_llm(model=PRIMARY, fallback_models=[BACKUP], max_retries=0)
    emulator.inject(Fault.status(503))
    with pytest.raises(InternalServerError):
        llm.complete("no fallback this time", fallback_models=[])
    assert chat_models_sent(emulator) == [PRIMARY]


@pytest.mark.parametrize("bad", ["deepseek-v3.2", [""]])
def test_bad_fallback_models_fail_at_construction(bad: Any, make_llm: Any) -> None:
    with pytest.raises(ValueError, match="fallback_models"):
        make_llm(fallback_models=bad)


def test_a_budget_refuses_a_call_before_sending(make_llm: Any, emulator: Any) -> None:
    prices = PriceTable()
    profile = prices.profile(BACKUP)
    assert profile is not None
    assert prices.estimate(BACKUP, 0, profile.max_output_tokens) > TINY_CAP
    handler = HolySheepCostHandler()
    llm = make_llm(
        model=BACKUP,
        client_settings={"budget_usd": TINY_CAP},
        callback_manager=CallbackManager([handler]),
    )
    with pytest.raises(BudgetExceededError):
        llm.complete("too dear")
    assert emulator.requests == []
    assert (handler.successful_requests, handler.total_cost_usd) == (0, None)


async def test_a_shared_budget_is_charged_what_calls_cost(make_llm: Any) -> None:
    budget = Budget(1)
    handler = HolySheepCostHandler()
    llm = make_llm(
        max_tokens=50,
        client_settings={"budget_usd": budget},
        callback_manager=CallbackManager([handler]),
    )
    llm.complete("first")
    await llm.acomplete("second")
    assert budget.spent_usd == handler.usage.cost_usd
    assert budget.held_usd == 0


def test_a_breaker_in_client_settings_sheds_calls(make_llm: Any, emulator: Any) -> None:
    breaker = BreakerPolicy(failure_threshold=1, cool_down=60)
    llm = make_llm(model=PRIMARY, max_retries=0, client_settings={"breaker": breaker})
    emulator.inject(Fault.status(500))
    with pytest.raises(InternalServerError):
        llm.complete("fails")
    with pytest.raises(CircuitOpenError):
        llm.complete("shed")
    assert len(emulator.requests) == 1  # the open circuit sent nothing


def test_client_settings_prices_reach_costs_and_metadata(make_llm: Any, emulator: Any) -> None:
    prices = PriceTable().with_prices({"house-model": {"input": "1", "output": "2"}})
    prices = prices.with_profiles({"house-model": prices.profile(BACKUP)})  # type: ignore[dict-item]
    llm = make_llm(model="house-model", client_settings={"prices": prices})  # no warning
    response = llm.complete("priced by my table")
    assert llm.metadata.context_window == 128_000
    usage = usage_by_rule(emulator.requests[-1].body, response.text)
    assert response.additional_kwargs["cost_usd"] == float(prices.cost("house-model", usage))


def test_equal_settings_share_a_client_and_others_do_not(make_llm: Any) -> None:
    def settings() -> dict[str, Any]:
        return {"breaker": BreakerPolicy(failure_threshold=3), "budget_usd": Decimal("2.5")}

    first = make_llm(client_settings=settings())._clients
    assert first.sync() is make_llm(client_settings=settings())._clients.sync()
    assert first.sync() is not make_llm()._clients.sync()
    assert first.sync().config.breaker == BreakerPolicy(failure_threshold=3)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"budget_us": 5}, r"unknown field\(s\) \['budget_us'\]"),
        ({"api_key": "hs-other-key-0000"}, r"\['api_key'\] have their own argument"),
        ({"base_url": "http://localhost:1/v1"}, r"\['base_url'\] have their own argument"),
    ],
)
def test_bad_client_settings_fail_at_construction(
    settings: dict[str, Any], message: str, make_llm: Any, make_embedding: Any, emulator: Any
) -> None:
    for make in (make_llm, make_embedding):
        with pytest.raises(ConfigurationError, match=message) as caught:
            make(client_settings=settings)
        assert "hs-other-key-0000" not in str(caught.value)
    assert emulator.requests == []


def test_client_settings_next_to_an_injected_client_are_refused(
    api_key: str, base_url: str
) -> None:
    with HolySheepClient(api_key=api_key, base_url=base_url) as client:
        with pytest.raises(ConfigurationError, match="injected client"):
            HolySheep(client=client, client_settings={"budget_usd": 1})


def test_client_settings_are_not_serialised(make_llm: Any) -> None:
    hooks: list[Any] = []
    llm = make_llm(
        fallback_models=[BACKUP],
        client_settings={"budget_usd": Budget(1), "on_usage": (hooks.append,)},
    )
    dumped = json.loads(llm.to_json())
    assert "client_settings" not in dumped
    assert dumped["fallback_models"] == [BACKUP]
    llm.complete("hooked")
    assert len(hooks) == 1


async def test_embeddings_take_client_settings(make_embedding: Any, emulator: Any) -> None:
    prices = PriceTable().with_prices({"text-embedding-3-small": {"input": "0.02", "output": "0"}})
    model = make_embedding(client_settings={"prices": prices, "budget_usd": TINY_CAP / 1000})
    with pytest.raises(BudgetExceededError):
        await model.aget_text_embedding("a text long enough to cost more than the cap")
    assert emulator.requests == []
