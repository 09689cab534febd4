"""TokenUsage adds up; the Ledger counts exactly, from many threads and tasks at once."""

from __future__ import annotations

import asyncio
import math
import random
import threading
from decimal import Decimal

import pytest

from holysheep_core import APITimeoutError, Ledger, RateLimitError, StreamError, TokenUsage
from holysheep_core.accounting import quantile
from holysheep_core.types import Usage


def tokens(inp: int, out: int, cost: str | None, cached: int = 0, reasoning: int = 0) -> TokenUsage:
    return TokenUsage(
        requests=1,
        input_tokens=inp,
        output_tokens=out,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        cost_usd=None if cost is None else Decimal(cost),
        unpriced_requests=int(cost is None),
    )


# --- TokenUsage ---------------------------------------------------------------------------


def test_usage_adds_field_by_field() -> None:
    total = tokens(10, 5, "0.1", cached=4) + tokens(3, 2, "0.02", reasoning=1)
    assert total == TokenUsage(
        requests=2,
        input_tokens=13,
        output_tokens=7,
        cached_tokens=4,
        reasoning_tokens=1,
        cost_usd=Decimal("0.12"),
    )
    assert total.total_tokens == 20


def test_unknown_cost_is_none_only_when_nothing_is_known() -> None:
    assert (tokens(1, 1, None) + tokens(1, 1, None)).cost_usd is None
    mixed = tokens(1, 1, None) + tokens(1, 1, "0.5")
    assert mixed.cost_usd == Decimal("0.5")
    assert mixed.unpriced_requests == 1  # says the cost leaves one call out


def test_free_is_zero_not_unknown() -> None:
    assert (tokens(1, 1, "0") + tokens(1, 1, None)).cost_usd == Decimal(0)


def test_empty_usage_is_the_identity() -> None:
    one = tokens(3, 4, "0.7", cached=1, reasoning=2)
    assert TokenUsage() + one == one == one + TokenUsage()


def test_from_wire_usage() -> None:
    wire = Usage.model_validate(
        {
            "prompt_tokens": 20,
            "completion_tokens": 9,
            "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 8},
            "completion_tokens_details": {"reasoning_tokens": 5},
        }
    )
    assert TokenUsage.from_usage(wire, Decimal("0.3")) == tokens(20, 9, "0.3", 8, 5)
    assert TokenUsage.from_usage(None, None) == TokenUsage(requests=1, unpriced_requests=1)


def test_usage_is_frozen_and_not_addable_to_other_things() -> None:
    one = tokens(1, 1, "0")
    with pytest.raises(ValueError):
        one.requests = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        one + 1  # type: ignore[operator]


# --- quantiles ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 10, 11, 19, 20, 31, 60, 99, 100, 101, 1000])
@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_quantile_is_the_nearest_rank(n: int, q: float) -> None:
    samples = list(range(1, n + 1))
    random.Random(n).shuffle(samples)
    # Nearest rank: the smallest value with at least q of the samples at or below it.
    expected = next(v for v in range(1, n + 1) if v / n >= q - 1e-12)
    assert quantile(samples, q) == expected
    assert expected == math.ceil(round(q * n, 9))


def test_quantile_of_nothing_is_none() -> None:
    assert quantile([], 0.5) is None


# --- the ledger -----------------------------------------------------------------------------


def test_ledger_counts_successes_failures_retries_and_abandoned_streams() -> None:
    ledger = Ledger()
    ledger.record_success("a", tokens(10, 5, "0.1"), 0.2, retries=1)
    ledger.record_success("a", tokens(1, 1, "0.01"), 0.4, ttft=0.05)
    ledger.record_success("b", tokens(2, 2, None), 0.6, retries=2)
    ledger.record_failure(RateLimitError("slow", status_code=429), retries=2)
    ledger.record_failure(APITimeoutError("slow"))
    ledger.record_failure(APITimeoutError("slow"), retries=1)
    ledger.record_abandoned("a", None, ttft=0.15)
    stats = ledger.snapshot()
    assert stats.requests == 7
    assert stats.successes == 3
    assert stats.errors == {"RateLimitError": 1, "APITimeoutError": 2}
    assert stats.retries == 1 + 2 + 2 + 1
    assert stats.streams_abandoned == 1
    assert stats.latency_p50 == 0.4
    assert stats.latency_p99 == 0.6
    assert stats.ttft_p50 == 0.05
    assert stats.ttft_p95 == 0.15
    assert stats.by_model["a"].usage == tokens(10, 5, "0.1") + tokens(1, 1, "0.01")
    assert stats.by_model["a"].latency_p95 == 0.4
    assert stats.by_model["b"].usage.cost_usd is None
    assert stats.by_model["b"].usage.unpriced_requests == 1
    assert stats.usage.cost_usd == Decimal("0.11")
    assert stats.cost_usd == Decimal("0.11")
    assert stats.usage.requests == 3


def test_failure_with_partial_usage_is_billed_to_its_model() -> None:
    ledger = Ledger()
    ledger.record_failure(StreamError("cut"), model="a", usage=tokens(5, 2, "0.01"))
    stats = ledger.snapshot()
    assert stats.by_model["a"].usage.cost_usd == Decimal("0.01")
    assert stats.successes == 0


def test_empty_ledger_snapshot() -> None:
    stats = Ledger().snapshot()
    assert (stats.requests, stats.successes, stats.errors, stats.retries) == (0, 0, {}, 0)
    assert stats.latency_p50 is None and stats.ttft_p50 is None
    assert stats.usage == TokenUsage()
    assert stats.cost_usd is None


def test_reset_clears_everything() -> None:
    ledger = Ledger()
    ledger.record_success("a", tokens(1, 1, "1"), 0.1)
    ledger.record_failure(APITimeoutError("x"))
    ledger.reset()
    assert ledger.snapshot() == Ledger().snapshot()


def test_latency_window_is_bounded() -> None:
    ledger = Ledger(window=10)
    for i in range(100):
        ledger.record_success("a", None, float(i))
    assert ledger.snapshot().latency_p50 >= 90  # only the last ten are kept
    assert ledger.snapshot().requests == 100


def test_snapshot_is_a_copy() -> None:
    ledger = Ledger()
    ledger.record_failure(APITimeoutError("x"))
    stats = ledger.snapshot()
    ledger.record_failure(APITimeoutError("x"))
    assert stats.errors == {"APITimeoutError": 1}


# --- concurrency: totals stay exact -----------------------------------------------------------

THREADS, PER_THREAD = 8, 400
COST = Decimal("0.000123")


def _hammer(ledger: Ledger, worker: int) -> None:
    model = f"m{worker % 3}"
    for i in range(PER_THREAD):
        if i % 4 == 3:
            ledger.record_failure(APITimeoutError("x"), retries=1)
        else:
            ledger.record_success(model, tokens(3, 2, str(COST)), 0.01, retries=i % 2, ttft=0.001)
        if i % 50 == 0:
            ledger.snapshot()  # readers interleaved with writers


def _check_totals(ledger: Ledger, workers: int) -> None:
    stats = ledger.snapshot()
    successes = workers * (PER_THREAD - PER_THREAD // 4)
    failures = workers * (PER_THREAD // 4)
    assert stats.requests == workers * PER_THREAD
    assert stats.successes == successes
    assert stats.errors == {"APITimeoutError": failures}
    # Successes retry on odd i (never i % 4 == 3, which fail and retry once each).
    odd_successes = workers * sum(1 for i in range(PER_THREAD) if i % 2 and i % 4 != 3)
    assert stats.retries == odd_successes + failures
    assert stats.usage.requests == successes
    assert stats.usage.input_tokens == 3 * successes
    assert stats.usage.output_tokens == 2 * successes
    assert stats.usage.cost_usd == COST * successes
    assert sum(m.usage.requests for m in stats.by_model.values()) == successes


def test_ledger_is_exact_under_threads() -> None:
    ledger = Ledger()
    barrier = threading.Barrier(THREADS)

    def work(worker: int) -> None:
        barrier.wait()
        _hammer(ledger, worker)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _check_totals(ledger, THREADS)


async def test_ledger_is_exact_under_tasks_and_threads_together() -> None:
    ledger = Ledger()

    async def task(worker: int) -> None:
        model = f"m{worker % 3}"
        for i in range(PER_THREAD):
            if i % 4 == 3:
                ledger.record_failure(APITimeoutError("x"), retries=1)
            else:
                ledger.record_success(
                    model, tokens(3, 2, str(COST)), 0.01, retries=i % 2, ttft=0.001
                )
            if i % 7 == 0:
                await asyncio.sleep(0)  # let the other tasks interleave

    tasks = [task(w) for w in range(THREADS)]
    threads = [asyncio.to_thread(_hammer, ledger, THREADS + w) for w in range(THREADS)]
    await asyncio.gather(*tasks, *threads)
    _check_totals(ledger, 2 * THREADS)
