"""The core's resilience policies reached from ChatHolySheep and HolySheepEmbeddings:
fallback models per call, and breaker, budget and prices through ``client_settings``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.exceptions import ModelAPIError, ModelError, ModelInvalidRequestError
from langchain_core.messages import AIMessageChunk
from langchain_helpers import chat_bodies, expected_cost

from holysheep_core import (
    BreakerPolicy,
    Budget,
    BudgetExceededError,
    CircuitOpenError,
    ConfigurationError,
    InMemoryStore,
    ModelProfile,
    PriceTable,
)
from holysheep_core.emulator import Fault, reply_to
from langchain_holysheep import ChatHolySheep, HolySheepEmbeddings, get_holysheep_callback
from langchain_holysheep.errors import HolySheepBudgetExceededError, HolySheepServerError

Make = Callable[..., ChatHolySheep]

PRIMARY, BACKUP = "gpt-4.1", "deepseek-v3.2"
EMBEDDING_MODEL = "text-embedding-3-small"


def _sent_models(emulator: Any) -> list[str]:
    return [body["model"] for body in chat_bodies(emulator)]


async def _reply(model: ChatHolySheep, way: str, text: str, **kwargs: Any) -> Any:
    if way == "invoke":
        return model.invoke(text, **kwargs)
    if way == "ainvoke":
        return await model.ainvoke(text, **kwargs)
    chunks: list[AIMessageChunk] = (
        list(model.stream(text, **kwargs))
        if way == "stream"
        else [c async for c in model.astream(text, **kwargs)]
    )
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    return full


WAYS = ["invoke", "ainvoke", "stream", "astream"]


# --- fallback models ------------------------------------------------------------------------


@pytest.mark.parametrize("way", WAYS)
async def test_a_failing_model_falls_back_and_books_the_model_that_served(
    way: str, emulator: Any, make_chat: Make
) -> None:
    chat = make_chat(model=PRIMARY, fallback_models=[BACKUP], max_retries=0)
    emulator.inject(Fault.status(503))  # the primary's only attempt
    with get_holysheep_callback() as cb:
        reply = await _reply(chat, way, "who answers?")
    assert _sent_models(emulator) == [PRIMARY, BACKUP]
    assert reply.content == reply_to("who answers?")
    assert reply.response_metadata["model_name"] == BACKUP
    served = chat_bodies(emulator)[1:]
    assert reply.response_metadata["cost_usd"] == float(expected_cost(served))
    # The callback books the call to the fallback model, at its price, once.
    assert set(cb.by_model) == {BACKUP}
    assert cb.successful_requests == 1
    assert cb.usage.cost_usd == expected_cost(served)


def test_a_calls_fallback_models_win(emulator: Any, make_chat: Make) -> None:
    chat = make_chat(model=PRIMARY, fallback_models=[BACKUP], max_retries=0)
    emulator.inject(Fault.status(503))
    with pytest.raises(HolySheepServerError) as caught:
        chat.invoke("no fallback this time", fallback_models=[])
    assert isinstance(caught.value, ModelAPIError)
    emulator.inject(Fault.status(503))
    reply = chat.invoke("another one", fallback_models=["gemini-2.5-flash"])
    assert reply.response_metadata["model_name"] == "gemini-2.5-flash"
    assert _sent_models(emulator) == [PRIMARY, PRIMARY, "gemini-2.5-flash"]


def test_fallback_models_are_sent_with_bound_calls_too(emulator: Any, make_chat: Make) -> None:
    chat = make_chat(model=PRIMARY, max_retries=0).bind(fallback_models=[BACKUP])
    emulator.inject(Fault.status(500))
    assert chat.invoke("bound").response_metadata["model_name"] == BACKUP
    assert all("fallback_models" not in body for body in chat_bodies(emulator))


@pytest.mark.parametrize("bad", ["deepseek-v3.2", [""], [3]])
def test_bad_fallback_models_fail_at_construction(bad: Any, make_chat: Make) -> None:
    with pytest.raises(ValueError, match="fallback_models"):
        make_chat(fallback_models=bad)


# --- client_settings ------------------------------------------------------------------------


def test_a_budget_refuses_a_call_before_sending(emulator: Any, make_chat: Make) -> None:
    chat = make_chat(model=BACKUP, client_settings={"budget_usd": 0})  # any priced call is dearer
    with get_holysheep_callback() as cb, pytest.raises(HolySheepBudgetExceededError) as caught:
        chat.invoke("too dear")
    assert isinstance(caught.value, ModelError)
    assert isinstance(caught.value, BudgetExceededError)
    assert emulator.requests == []
    assert cb.successful_requests == 0


async def test_a_shared_budget_is_charged_what_calls_cost(emulator: Any, make_chat: Make) -> None:
    budget = Budget(1)
    chat = make_chat(model=BACKUP, max_tokens=50, client_settings={"budget_usd": budget})
    chat.invoke("first")
    await chat.ainvoke("second")
    assert budget.spent_usd == expected_cost(chat_bodies(emulator))
    assert budget.held_usd == 0


def test_an_open_breaker_is_a_model_api_error(emulator: Any, make_chat: Make) -> None:
    # Objects with equal settings share one client and so one breaker: a store of its own
    # keeps this test's circuit apart from any other test's.
    breaker = BreakerPolicy(failure_threshold=1, cool_down=60)
    settings = {"breaker": breaker, "policy_store": InMemoryStore()}
    chat = make_chat(model=PRIMARY, max_retries=0, client_settings=settings)
    emulator.inject(Fault.status(500))
    with pytest.raises(HolySheepServerError):
        chat.invoke("fails")
    with pytest.raises(CircuitOpenError) as caught:
        chat.invoke("shed")
    assert isinstance(caught.value, ModelAPIError)
    assert len(emulator.requests) == 1  # the open circuit sent nothing


def test_bad_client_settings_fail_at_construction(make_chat: Make, emulator: Any) -> None:
    with pytest.raises(ConfigurationError, match="budget_us"):
        make_chat(client_settings={"budget_us": 5})
    with pytest.raises(ConfigurationError, match="default_headers"):
        make_chat(client_settings={"default_headers": {"x": "y"}})
    assert emulator.requests == []


def test_client_settings_prices_price_the_calls_and_the_profile(
    emulator: Any, make_chat: Make
) -> None:
    prices = (
        PriceTable()
        .with_prices({BACKUP: {"input": "100", "output": "200"}})
        .with_profiles({BACKUP: ModelProfile(context_window=4_000, max_output_tokens=1_000)})
    )
    chat = make_chat(model=BACKUP, client_settings={"prices": prices})
    reply = chat.invoke("priced by my table")
    assert reply.response_metadata["cost_usd"] == float(
        expected_cost(chat_bodies(emulator), prices)
    )
    assert chat.profile is not None
    assert (chat.profile.get("max_input_tokens"), chat.profile.get("max_output_tokens")) == (
        4_000,
        1_000,
    )


def test_embeddings_take_client_settings(emulator: Any, base_url: str, api_key: str) -> None:
    prices = PriceTable().with_prices({EMBEDDING_MODEL: {"input": "0.02", "output": "0"}})
    embeddings = HolySheepEmbeddings(
        model=EMBEDDING_MODEL,
        api_key=api_key,
        base_url=base_url,
        client_settings={"prices": prices, "budget_usd": 0},
    )
    with pytest.raises(HolySheepBudgetExceededError):
        embeddings.embed_documents(["a text long enough to cost more than the cap"])
    assert emulator.requests == []
    with pytest.raises(ModelInvalidRequestError):  # an unpriced model cannot be budgeted
        HolySheepEmbeddings(
            model="unpriced-embedder",
            api_key=api_key,
            base_url=base_url,
            client_settings={"budget_usd": 1},
        ).embed_query("hi")
    assert emulator.requests == []
