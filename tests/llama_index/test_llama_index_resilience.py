"""The core's resilience policies reached from HolySheep and HolySheepEmbedding: fallback
models per call, and a budget, prices and hooks through ``client_settings`` (which of its
fields are accepted, and how they pick a shared client, is tested once, in the core)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from llama_index.core.callbacks import CallbackManager
from llama_index_helpers import METHODS, call, usage_by_rule

from holysheep_core import (
    Budget,
    BudgetExceededError,
    ConfigurationError,
    InternalServerError,
    ModelProfile,
    PriceTable,
    TokenUsage,
)
from holysheep_core.emulator import Fault, reply_to
from llama_index_holysheep import HolySheepCostHandler, HolySheepUsageEventHandler

PRIMARY, BACKUP = "gpt-4.1", "deepseek-v3.2"


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
    usage = usage_by_rule(emulator.requests[-1].body, reply_to(text))
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
    handler = HolySheepCostHandler()
    llm = make_llm(
        model=BACKUP,
        client_settings={"budget_usd": 0},  # any priced call is dearer
        callback_manager=CallbackManager([handler]),
    )
    with pytest.raises(BudgetExceededError):
        llm.complete("too dear")
    assert emulator.requests == []
    assert (handler.successful_requests, handler.total_cost_usd) == (0, None)


def test_client_settings_prices_reach_costs_and_metadata(make_llm: Any, emulator: Any) -> None:
    window = ModelProfile(context_window=4_000, max_output_tokens=1_000)
    prices = PriceTable().with_prices({BACKUP: {"input": "3", "output": "9"}})
    llm = make_llm(model=BACKUP, client_settings={"prices": prices.with_profiles({BACKUP: window})})
    response = llm.complete("priced by my table")
    assert (llm.metadata.context_window, llm.metadata.num_output) == (4_000, 1_000)
    usage = usage_by_rule(emulator.requests[-1].body, response.text)
    assert response.additional_kwargs["cost_usd"] == float(prices.cost(BACKUP, usage))


def test_bad_client_settings_fail_at_construction(
    make_llm: Any, make_embedding: Any, emulator: Any
) -> None:
    for make in (make_llm, make_embedding):
        with pytest.raises(ConfigurationError, match="budget_us"):
            make(client_settings={"budget_us": 5})
    assert emulator.requests == []


def test_client_settings_are_serialised_as_data_hooks_left_out(make_llm: Any) -> None:
    hooks: list[Any] = []
    budget = Budget(1)
    llm = make_llm(
        fallback_models=[BACKUP],
        client_settings={"budget_usd": budget, "on_usage": (hooks.append,)},
    )
    dumped = json.loads(llm.to_json())
    written = dumped["client_settings"]
    assert written["settings"] == {"budget_usd": {"$budget": {"cap_usd": "1", "name": budget.name}}}
    assert written["dropped"] == {"on_usage": "a function"}
    assert dumped["fallback_models"] == [BACKUP]
    llm.complete("hooked")
    assert len(hooks) == 1


async def test_embeddings_take_client_settings(make_embedding: Any, emulator: Any) -> None:
    prices = PriceTable().with_prices({"text-embedding-3-small": {"input": "0.02", "output": "0"}})
    model = make_embedding(client_settings={"prices": prices, "budget_usd": 0})
    with pytest.raises(BudgetExceededError):
        await model.aget_text_embedding("a text long enough to cost more than the cap")
    assert emulator.requests == []
