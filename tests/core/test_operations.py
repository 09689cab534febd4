"""The policy operations and their reference functions: pure, so tested on plain values
and a fake clock (clients applying them on real servers: test_policies_live.py,
test_ratelimit.py, test_budget.py, test_breaker.py)."""

from __future__ import annotations

import pickle
import threading
from collections import deque
from decimal import Decimal

import pytest

from holysheep_core import BreakerPolicy, InMemoryStore, RateLimits
from holysheep_core.policy.breaker import Admission, Circuit, CircuitState, Outcome
from holysheep_core.policy.operations import (
    NANO_USD,
    AfterAttempt,
    BeforeAttempt,
    BucketBack,
    BudgetHold,
    BudgetRefusal,
    BudgetSettle,
    Entered,
    Spending,
    apply,
    nano_usd,
    usd,
)
from holysheep_core.policy.ratelimit import Bucket, RateLimiter

KEY = "budget:b"
CAP = nano_usd(Decimal("1.00"))


def hold(amount: str, cap: int = CAP) -> BeforeAttempt:
    return BeforeAttempt("c", holds=(BudgetHold(KEY, cap, nano_usd(Decimal(amount))),))


def settle(held: str, spent: str) -> AfterAttempt:
    h, s = nano_usd(Decimal(held)), nano_usd(Decimal(spent))
    return AfterAttempt("c", settles=(BudgetSettle(KEY, h, s),))


def spending(store: InMemoryStore) -> tuple[Decimal, Decimal]:
    s = store.items(KEY).get(KEY) or Spending()
    return usd(s.spent), usd(s.held)


# --- shape ----------------------------------------------------------------------------------


def test_operations_and_their_results_are_frozen_picklable_values() -> None:
    limiter = RateLimiter(RateLimits(requests_per_second=5, tokens_per_minute=600))
    before = BeforeAttempt(
        "call-1",
        holds=(BudgetHold(KEY, CAP, 5),),
        breaker_key="breaker:m@u",
        breaker=BreakerPolicy(),
        buckets=limiter.buckets("m").specs,
        tokens=30.0,
        tuning=limiter.tuning,
        max_wait=2.0,
    )
    after = AfterAttempt(
        "call-1",
        "breaker:m@u",
        BreakerPolicy(),
        Admission(0, False),
        Outcome.FAILURE,
        (BucketBack(limiter.buckets("m").specs[1], 12.5),),
        settles=(BudgetSettle(KEY, 5, 3),),
    )
    for op in (before, after):
        assert pickle.loads(pickle.dumps(op)) == op
        with pytest.raises(AttributeError):
            op.call_id = "other"  # type: ignore[misc]
        state = dict.fromkeys(op.store_keys())
        changes, result = apply(op, state, 10.0)
        assert state == dict.fromkeys(op.store_keys())  # pure: the input is not touched
        assert apply(op, state, 10.0) == (changes, result)  # and the same every time
        assert pickle.loads(pickle.dumps((changes, result))) == (changes, result)


def test_money_is_integer_nano_usd_rounded_up_for_holds() -> None:
    assert NANO_USD == 10**9
    assert nano_usd(Decimal("0.42")) == 420_000_000
    assert nano_usd(Decimal("0.0000000001")) == 1  # a tenth of a nano-USD still holds one
    assert usd(nano_usd(Decimal("1.5"))) == Decimal("1.5")


# --- budgets --------------------------------------------------------------------------------


def test_holds_count_against_the_cap_until_settled_or_released() -> None:
    store = InMemoryStore()
    assert store.apply(hold("0.40")) == Entered()
    assert store.apply(hold("0.50")) == Entered()
    refused = store.apply(hold("0.20"))
    assert refused.budget_refusal == BudgetRefusal(KEY, 0, nano_usd(Decimal("0.90")))
    assert spending(store) == (0, Decimal("0.90"))  # the refused hold took nothing
    store.apply(settle("0.40", "0.10"))  # the real cost replaces the estimate
    store.apply(settle("0.50", "0"))  # a failed call spent nothing
    assert spending(store) == (Decimal("0.10"), 0)
    store.apply(hold("0.30"))
    store.apply(settle("0.30", "0.55"))  # usage above the hold: the real cost counts
    assert spending(store) == (Decimal("0.65"), 0)
    assert store.apply(hold("0.40")).budget_refusal is not None  # seen by the next caller


def test_concurrent_holds_never_pass_the_cap() -> None:
    store = InMemoryStore()
    start = threading.Barrier(20)
    granted: list[bool] = []

    def take() -> None:
        start.wait()
        granted.append(store.apply(hold("1", cap=nano_usd(Decimal("5.5")))).budget_refusal is None)

    threads = [threading.Thread(target=take) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert granted.count(True) == 5
    assert spending(store) == (0, 5)


# --- all or nothing -------------------------------------------------------------------------


def test_a_refused_part_leaves_every_other_part_untouched() -> None:
    limiter = RateLimiter(RateLimits(requests_per_second=1, request_burst=1))
    policy = BreakerPolicy(failure_threshold=1, cool_down=60)
    everything = BeforeAttempt(
        "c",
        holds=(BudgetHold(KEY, CAP, nano_usd(Decimal("0.5"))),),
        breaker_key="breaker:k",
        breaker=policy,
        buckets=limiter.buckets("m").specs,
        tuning=limiter.tuning,
        max_wait=0.5,
    )
    spent = {KEY: Spending(spent=CAP)}
    assert apply(everything, spent, 0.0) == ({}, Entered(budget_refusal=BudgetRefusal(KEY, CAP, 0)))
    open_circuit = {"breaker:k": Circuit(CircuitState.OPEN, 1, 1, 0.0)}
    changes, entered = apply(everything, open_circuit, 1.0)
    assert changes == {} and entered.refusal is not None
    busy = {limiter.buckets("m").keys[0]: Bucket(0.0, 0.0)}  # next turn in 1 s > max_wait
    changes, entered = apply(everything, busy, 0.0)
    assert changes == {} and (entered.granted, entered.wait) == (False, 1.0)


def test_a_turn_that_comes_exactly_at_the_deadline_is_refused() -> None:
    limiter = RateLimiter(RateLimits(requests_per_second=1, request_burst=1))
    busy = {limiter.buckets("m").keys[0]: Bucket(0.0, 0.0)}

    def turn(max_wait: float) -> Entered:
        op = BeforeAttempt("c", buckets=limiter.buckets("m").specs, max_wait=max_wait)
        return apply(op, busy, 0.0)[1]

    assert not turn(1.0).granted  # it would start with no time left
    assert turn(1.0 + 1e-9).granted


def test_the_breakers_pass_waits_for_the_turn() -> None:
    limiter = RateLimiter(RateLimits(requests_per_second=1, request_burst=1))
    policy = BreakerPolicy(failure_threshold=1, cool_down=0)
    op = BeforeAttempt(
        "c", breaker_key="breaker:k", breaker=policy, buckets=limiter.buckets("m").specs
    )
    half_open = {"breaker:k": Circuit(CircuitState.OPEN, 1, 1, 0.0)}
    changes, entered = apply(op, half_open, 0.0)
    assert entered.admission is not None and changes["breaker:k"].probes == 1
    busy = {**half_open, limiter.buckets("m").keys[0]: Bucket(0.0, 0.0)}
    changes, entered = apply(op, busy, 0.0)
    # A turn later: no probe slot is held while waiting.
    assert (entered.wait, entered.admission) == (1.0, None) and "breaker:k" not in changes


# --- the limiter's turns --------------------------------------------------------------------


def _max_in_window(times: list[float], window: float) -> int:
    best, open_ = 0, deque[float]()
    for t in sorted(times):
        open_.append(t)
        while open_[0] <= t - window:
            open_.popleft()
        best = max(best, len(open_))
    return best


def test_every_bucket_is_charged_at_the_turn_so_no_window_holds_too_many() -> None:
    # The measured defect, in pure form: 50 requests/s (burst 5) and 100k tokens/min
    # (burst 5000); 1000 calls of ~40 estimated tokens at t=0, their usage (a quarter of the
    # estimate) given back as each goes, then 200 more at t=11 s. Charged when reserved,
    # the request bucket paid its debt at its own rate while the token bucket spaced the
    # sends, and the second wave started alongside the first's tail (91 in a second).
    policy = RateLimits(
        requests_per_second=50, request_burst=5, tokens_per_minute=100_000, token_burst=5000
    )
    limiter = RateLimiter(policy)
    specs = limiter.buckets("m").specs
    tokens_back = tuple(BucketBack(s, 30.0) for s in limiter.buckets("m").token_specs)
    now = 0.0
    store = InMemoryStore(clock=lambda: now)
    op = BeforeAttempt("c", buckets=specs, tokens=40.0, tuning=limiter.tuning)
    turns = [store.apply(op).wait for _ in range(1000)]
    for _ in turns:  # corrections as the first wave is answered (conservatively, all now)
        store.apply(AfterAttempt("c", give_back=tokens_back, tuning=limiter.tuning))
    now = 11.0
    turns += [11.0 + store.apply(op).wait for _ in range(200)]
    assert _max_in_window(turns, 1.0) <= 50 + 5
    assert max(turns) > 21  # the second wave queued behind the first


def test_no_value_is_written_for_an_operation_that_changes_nothing() -> None:
    store = InMemoryStore()
    store.apply(AfterAttempt("c"))
    assert store.items("") == {}
