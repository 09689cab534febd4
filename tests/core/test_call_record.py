"""Every call is booked once, with what the server reported, however it ends: a scripted
loopback server answers with the cases that used to be lost (a null usage count, a stream
broken after its usage chunk, a call cancelled on the wire)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from holysheep_core import Budget, StreamError
from holysheep_core.emulator import Fault

MODEL = "deepseek-v3.2"
HI = [{"role": "user", "content": "hi"}]


def test_a_null_completion_count_is_accepted_and_what_is_known_is_booked(
    scripted: Any, make_client: Any
) -> None:
    usage = {"prompt_tokens": 11, "completion_tokens": None, "total_tokens": None}
    scripted.queue(scripted.Answer(body=scripted.completion(usage=usage)))
    budget = Budget(1)
    client = make_client(base_url=scripted.url, budget_usd=budget)
    answer = client.chat_completion(model=MODEL, messages=HI, max_tokens=50)
    assert answer.choices[0].message.content == "".join(scripted.WORDS)
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (11, 0)
    assert answer.usage.unreported == ("completion_tokens", "total_tokens")
    assert "unreported" not in answer.usage.model_dump()  # not part of the wire format
    # The server billed it, but not all of what: the cost is unknown, not that of 11 tokens.
    assert answer.cost_usd is None
    stats = client.stats()
    assert (stats.successes, stats.errors) == (1, {})
    assert (stats.usage.input_tokens, stats.usage.unpriced_requests) == (11, 1)
    # The budget keeps the call's hold (its upper bound) as spent.
    assert budget.held_usd == 0 and budget.spent_usd > 0


async def test_a_stream_broken_after_its_usage_books_that_usage(
    scripted: Any, make_async_client: Any
) -> None:
    events = scripted.stream_events()[:-1]  # everything up to the usage chunk, no [DONE]
    scripted.queue(scripted.Answer(parts=[*events, scripted.DROP]))
    budget = Budget(1)
    client = make_async_client(base_url=scripted.url, budget_usd=budget)
    stream = await client.stream_chat_completion(model=MODEL, messages=HI, max_tokens=50)
    with pytest.raises(StreamError) as broke:
        async for _ in stream:
            pass
    usage = broke.value.partial_usage
    assert usage.total_tokens == scripted.USAGE["total_tokens"]
    stats = client.stats()
    assert stats.errors == {"StreamError": 1}
    assert stats.usage.input_tokens == scripted.USAGE["prompt_tokens"]
    assert stats.usage.output_tokens == scripted.USAGE["completion_tokens"]
    cost = client.prices.cost(MODEL, usage)
    assert stats.usage.cost_usd == cost > 0
    assert (budget.spent_usd, budget.held_usd) == (cost, 0)  # the real cost, not the hold


async def test_a_call_cancelled_on_the_wire_is_counted(
    emulator: Any, make_async_client: Any
) -> None:
    budget = Budget(1)
    client = make_async_client(budget_usd=budget)
    emulator.inject(Fault.slow_first_byte(5))
    call = asyncio.create_task(client.chat_completion(model=MODEL, messages=HI, max_tokens=20))
    while not emulator.requests:
        await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    stats = client.stats()
    # The budget keeps its estimate (the server may bill it): stats() shows the call too.
    assert budget.spent_usd > Decimal(0)
    assert (stats.requests, stats.calls_cancelled, stats.successes, stats.errors) == (1, 1, 0, {})
