"""The budget guard: holds and settlement on their own, then clients on the emulator,
refused before they spend and reconciled to the reported cost after."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from holysheep_core import (
    APITimeoutError,
    Budget,
    BudgetExceededError,
    ClientConfig,
    ConfigurationError,
    HolySheepClient,
    InternalServerError,
    InvalidRequestError,
    RateLimits,
    RetryPolicy,
    budget_scope,
)
from holysheep_core.emulator import Fault
from holysheep_core.params import build_chat_body, encode_json
from holysheep_core.policy.budget import active_budgets

MODEL = "gpt-4.1"
HI = [{"role": "user", "content": "hi there"}]
D = Decimal


def estimate(client: Any, model: str, max_tokens: int | None, **params: Any) -> Decimal:
    """The documented upper bound: the body's bytes as prompt tokens plus max_tokens (the
    model's output limit when unset), at the price table's rates."""
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    prompt = len(encode_json(build_chat_body(model, HI, params)))
    out = max_tokens if max_tokens is not None else client.prices.profile(model).max_output_tokens
    return client.prices.estimate(model, prompt, out)


# --- the budget on its own (its holds and settlements: tests/core/test_operations.py) ----


@pytest.mark.parametrize("cap", [-1, "nan", "inf", "lots", True])
def test_a_cap_that_cannot_be_right_is_refused(cap: Any) -> None:
    with pytest.raises(ValueError):
        Budget(cap)
    with pytest.raises(ConfigurationError):
        HolySheepClient(api_key="hs-abc", budget_usd=cap)


def test_a_float_cap_is_the_decimal_it_reads_as() -> None:
    assert Budget(0.1).cap_usd == D("0.1")
    assert ClientConfig(api_key="hs-abc", budget_usd=0.1).budget_usd == D("0.1")


async def test_scopes_nest_and_follow_tasks() -> None:
    with budget_scope(1) as outer:
        with budget_scope(Budget(2, name="inner")) as inner:
            assert active_budgets() == (outer, inner)

            async def seen() -> tuple[Budget, ...]:
                return active_budgets()

            assert await asyncio.create_task(seen()) == (outer, inner)
        assert active_budgets() == (outer,)
    assert active_budgets() == ()


# --- clients on the emulator --------------------------------------------------------------


def test_a_call_over_budget_is_refused_before_any_request(emulator: Any, make_client: Any) -> None:
    client = make_client(budget_usd="0.0001")
    expected = estimate(client, MODEL, 50)
    assert expected > D("0.0001")
    with pytest.raises(BudgetExceededError) as refused:
        client.chat_completion(model=MODEL, messages=HI, max_tokens=50)
    assert refused.value.estimate_usd == expected
    assert refused.value.budget_usd == D("0.0001")
    assert "nothing was sent" in str(refused.value)
    assert emulator.requests == []
    assert client.stats().errors == {"BudgetExceededError": 1}


def test_without_max_tokens_the_estimate_assumes_the_models_output_limit(
    emulator: Any, make_client: Any
) -> None:
    client = make_client(budget_usd=0)
    with pytest.raises(BudgetExceededError) as refused:
        client.chat_completion(model=MODEL, messages=HI)
    assert refused.value.estimate_usd == estimate(client, MODEL, None)
    assert emulator.requests == []


def test_the_estimate_is_reconciled_to_the_reported_cost(make_client: Any) -> None:
    budget = Budget(1)
    client = make_client(budget_usd=budget)
    first = client.chat_completion(model=MODEL, messages=HI, max_tokens=50)
    second = client.chat_completion(model="deepseek-v3.2", messages=HI, max_tokens=50)
    assert first.cost_usd < estimate(client, MODEL, 50)
    assert budget.spent_usd == first.cost_usd + second.cost_usd == client.stats().cost_usd
    assert budget.held_usd == 0


def test_spending_stops_at_the_cap(emulator: Any, make_client: Any) -> None:
    per_call = estimate(make_client(), MODEL, 20)
    cap = per_call * D("3.5")  # room for more than three calls: real costs are lower
    client = make_client(budget_usd=cap)
    answered = 0
    with pytest.raises(BudgetExceededError) as refused:
        for _ in range(100):
            client.chat_completion(model=MODEL, messages=HI, max_tokens=20)
            answered += 1
    assert answered >= 3
    assert len(emulator.requests) == answered  # the refused call sent nothing
    assert refused.value.spent_usd == client.stats().cost_usd
    assert refused.value.spent_usd + refused.value.estimate_usd > cap
    assert client.stats().cost_usd <= cap


def test_a_failed_call_releases_its_hold(emulator: Any, make_client: Any) -> None:
    budget = Budget(1)
    client = make_client(budget_usd=budget, retry=RetryPolicy.no_wait(max_retries=0))
    emulator.inject(Fault.status(503))
    with pytest.raises(InternalServerError):
        client.chat_completion(model=MODEL, messages=HI, max_tokens=50)
    assert (budget.spent_usd, budget.held_usd) == (0, 0)


def test_one_budget_shared_by_clients_and_a_scope_over_any_client(make_client: Any) -> None:
    shared = Budget(1)
    a, b = make_client(budget_usd=shared), make_client(budget_usd=shared)
    c = make_client()
    spent = a.chat_completion(model=MODEL, messages=HI, max_tokens=20).cost_usd
    spent += b.chat_completion(model=MODEL, messages=HI, max_tokens=20).cost_usd
    assert shared.spent_usd == spent
    with budget_scope(1) as scope:
        cost = c.chat_completion(model=MODEL, messages=HI, max_tokens=20).cost_usd
        cost += a.chat_completion(model=MODEL, messages=HI, max_tokens=20).cost_usd
    assert scope.spent_usd == cost
    with budget_scope(0), pytest.raises(BudgetExceededError):
        c.chat_completion(model=MODEL, messages=HI, max_tokens=20)


async def test_a_scope_caps_concurrent_tasks_together(
    emulator: Any, make_async_client: Any
) -> None:
    client = make_async_client()
    per_call = estimate(client, MODEL, 20)
    with budget_scope(per_call * 4 + per_call / 2) as scope:
        results = await asyncio.gather(
            *(client.chat_completion(model=MODEL, messages=HI, max_tokens=20) for _ in range(10)),
            return_exceptions=True,
        )
    refused = [r for r in results if isinstance(r, BudgetExceededError)]
    assert (len(refused), len(emulator.requests)) == (6, 4)  # held together, before any answer
    assert scope.spent_usd == client.stats().cost_usd and scope.held_usd == 0


def test_an_unpriced_model_cannot_be_budgeted(emulator: Any, make_client: Any) -> None:
    client = make_client(budget_usd=1)
    with pytest.raises(InvalidRequestError, match="no price"):
        client.chat_completion(model="mystery-model", messages=HI)
    assert emulator.requests == []


def test_a_fallback_is_budgeted_at_its_own_price(emulator: Any, make_client: Any) -> None:
    budget = Budget(1)
    client = make_client(
        budget_usd=budget,
        retry=RetryPolicy.no_wait(max_retries=0),
        fallback_models=("deepseek-v3.2",),
    )
    emulator.inject(Fault.status(503))
    answer = client.chat_completion(model=MODEL, messages=HI, max_tokens=20)
    assert answer.model == "deepseek-v3.2"
    assert (budget.spent_usd, budget.held_usd) == (answer.cost_usd, 0)


def test_streams_settle_at_their_end_and_an_early_exit_keeps_the_estimate(
    make_client: Any,
) -> None:
    budget = Budget(1)
    client = make_client(budget_usd=budget)
    chunks = list(client.stream_chat_completion(model=MODEL, messages=HI, max_tokens=20))
    assert budget.spent_usd == chunks[-1].cost_usd
    long = [{"role": "user", "content": "word " * 200}]
    before = budget.spent_usd
    with client.stream_chat_completion(model=MODEL, messages=long, max_tokens=100) as stream:
        next(stream)
    body = build_chat_body(MODEL, long, {"max_tokens": 100}, stream=True)
    prompt = len(encode_json(body))
    # The server may bill a stream it was not allowed to finish: its estimate counts.
    assert budget.spent_usd - before == client.prices.estimate(MODEL, prompt, 100)
    assert budget.held_usd == 0


def test_embeddings_are_budgeted_by_their_input(emulator: Any, make_client: Any) -> None:
    budget = Budget(1)
    prices = make_client().prices.with_prices({"embed-x": {"input": 1, "output": 0}})
    client = make_client(budget_usd=budget, prices=prices)
    answer = client.embeddings(model="embed-x", input=["one", "two", "three"], batch_size=2)
    assert len(emulator.requests) == 2
    assert budget.spent_usd == answer.cost_usd > 0


async def test_a_call_cancelled_on_the_wire_keeps_its_estimate_one_still_queued_does_not(
    emulator: Any, make_async_client: Any
) -> None:
    budget = Budget(1)
    client = make_async_client(
        budget_usd=budget, rate_limits=RateLimits(requests_per_second=1, request_burst=1)
    )
    est = estimate(client, MODEL, 20)
    emulator.inject(Fault.slow_first_byte(5))
    on_wire = asyncio.create_task(client.chat_completion(model=MODEL, messages=HI, max_tokens=20))
    while not emulator.requests:
        await asyncio.sleep(0.01)
    # The second waits a second for its turn in the limiter, so it has not left yet.
    queued = asyncio.create_task(client.chat_completion(model=MODEL, messages=HI, max_tokens=20))
    await asyncio.sleep(0.05)
    assert budget.held_usd == 2 * est
    on_wire.cancel()
    queued.cancel()
    await asyncio.gather(on_wire, queued, return_exceptions=True)
    # The server may finish and bill the first; the second never reached it.
    assert (budget.spent_usd, budget.held_usd) == (est, 0)
    assert len(emulator.requests) == 1


def test_a_timed_out_call_keeps_its_estimate(emulator: Any, make_client: Any) -> None:
    budget = Budget(1)
    client = make_client(budget_usd=budget, timeout=0.2, retry=RetryPolicy.no_wait(0))
    emulator.inject(Fault.slow_first_byte(1))
    with pytest.raises(APITimeoutError):
        client.chat_completion(model=MODEL, messages=HI, max_tokens=20)
    assert (budget.spent_usd, budget.held_usd) == (estimate(client, MODEL, 20), 0)


# --- a cap racing 100 concurrent calls, spend counted by the server ------------------------

IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
RACES = {
    # an image part: the server bills a tiled high-detail image (1,445 tokens)
    "image": (
        "gpt-4.1",
        [{"role": "user", "content": [{"type": "text", "text": "what?"}, IMAGE]}],
        {"max_tokens": 20},
        "0.20",
    ),
    # CJK text: two tokens per character, where a quarter of the bytes guessed 0.75
    "cjk": (
        "deepseek-v3.2",
        [{"role": "user", "content": "你好世界" * 500}],
        {"max_tokens": 100},
        "0.01",
    ),
    # max_tokens unset: the server writes 4,000 tokens (the model's limit is 8,192)
    "unset": ("deepseek-v3.2", HI, {}, "0.01"),
}


@pytest.mark.parametrize("race", sorted(RACES))
async def test_concurrent_calls_never_spend_past_the_cap(race: str, api_key: str) -> None:
    from billing_server import BillingServer

    from holysheep_core import AsyncHolySheepClient

    model, messages, params, cap = RACES[race]
    budget = Budget(cap)
    with BillingServer() as server:
        async with AsyncHolySheepClient(
            api_key=api_key, base_url=server.url, budget_usd=budget, max_retries=0
        ) as client:
            results = await asyncio.gather(
                *(
                    client.chat_completion(model=model, messages=messages, **params)
                    for _ in range(100)
                ),
                return_exceptions=True,
            )
            prices = client.prices
        billed = server.ledger()
    spent = sum(
        (prices.cost_of_tokens(prices.price(model), b["prompt"], b["completion"]) for b in billed),
        Decimal(0),
    )
    answered = [r for r in results if not isinstance(r, BaseException)]
    assert answered and all(
        isinstance(r, BudgetExceededError) for r in results if isinstance(r, BaseException)
    )
    assert len(billed) == len(answered)
    assert spent <= budget.cap_usd  # what the server billed, not what we think we spent
    assert (budget.spent_usd, budget.held_usd) == (spent, 0)  # and we booked exactly that
