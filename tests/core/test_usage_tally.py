"""UsageTally: usage by model that adds up exactly, with unknown prices kept unknown."""

from __future__ import annotations

import threading
from decimal import Decimal

from holysheep_core import TokenUsage, UsageTally
from holysheep_core.types import Usage


def call(prompt: int, completion: int, cost: str | None) -> TokenUsage:
    usage = Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )
    return TokenUsage.from_usage(usage, None if cost is None else Decimal(cost))


def test_an_empty_tally_knows_no_cost() -> None:
    tally = UsageTally()
    assert tally.by_model == {}
    assert tally.usage == TokenUsage()
    assert (tally.successful_requests, tally.total_tokens, tally.unpriced_requests) == (0, 0, 0)
    assert tally.total_cost_usd is None


def test_calls_add_up_by_model_and_in_total() -> None:
    tally = UsageTally()
    a1, a2, b = call(10, 5, "0.25"), call(7, 3, "0.5"), call(100, 1, "0.125")
    tally.add("a", a1)
    tally.add("b", b)
    tally.add("a", a2)
    assert tally.by_model == {"a": a1 + a2, "b": b}
    assert tally.usage == a1 + a2 + b
    assert tally.successful_requests == 3
    assert tally.prompt_tokens == 10 + 7 + 100
    assert tally.completion_tokens == 5 + 3 + 1
    assert tally.total_tokens == tally.prompt_tokens + tally.completion_tokens
    assert tally.total_cost_usd == 0.875
    assert tally.unpriced_requests == 0


def test_an_unknown_price_is_unknown_not_zero() -> None:
    tally = UsageTally()
    tally.add("mystery", call(10, 5, None))
    assert tally.total_cost_usd is None
    assert tally.unpriced_requests == 1
    assert tally.total_tokens == 15
    # Once some price is known, the total is the known part and says what it leaves out.
    tally.add("a", call(1, 1, "0.5"))
    assert tally.total_cost_usd == 0.5
    assert tally.unpriced_requests == 1
    assert tally.by_model["mystery"].cost_usd is None


def test_by_model_is_a_copy() -> None:
    tally = UsageTally()
    tally.add("a", call(1, 1, "1"))
    tally.by_model["b"] = call(1, 1, "1")
    assert set(tally.by_model) == {"a"}


def test_reset_forgets_everything() -> None:
    tally = UsageTally()
    tally.add("a", call(1, 1, "1"))
    tally.reset()
    assert tally.by_model == {}
    assert tally.total_cost_usd is None


def test_many_threads_count_exactly() -> None:
    tally = UsageTally()
    threads, per_thread = 8, 400
    start = threading.Barrier(threads)

    def work(i: int) -> None:
        start.wait()
        for _ in range(per_thread):
            tally.add(f"model-{i % 3}", call(3, 2, "0.001"))

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    calls = threads * per_thread
    assert tally.successful_requests == calls
    assert tally.total_tokens == 5 * calls
    assert tally.usage.cost_usd == Decimal("0.001") * calls
    assert sum(u.requests for u in tally.by_model.values()) == calls
