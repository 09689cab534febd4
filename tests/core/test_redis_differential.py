"""The Lua scripts of ``RedisStore`` against the Python reference (``operations.apply``).

Random operations (budget holds and settlements, breaker passes and verdicts with probes and
stale passes, limiter turns, corrections, server counts and 429 back-offs) are applied to a
real Redis, driven by an injected clock, and to the reference; every result and, every few
steps, every stored value must be identical, floats to the last bit.
"""

from __future__ import annotations

import asyncio
import collections
import random
import uuid

import pytest

from holysheep_core import BreakerPolicy
from holysheep_core.policy.breaker import Admission, Circuit, Outcome
from holysheep_core.policy.operations import (
    AfterAttempt,
    BeforeAttempt,
    BucketBack,
    BudgetHold,
    BudgetSettle,
    ServerCount,
    Spending,
    apply,
)
from holysheep_core.policy.ratelimit import BucketSpec, LimiterTuning
from holysheep_core.policy.redis_store import RedisStore

STEPS = 50_000

BREAKERS = (
    BreakerPolicy(failure_threshold=3, cool_down=2.0, half_open_probes=2, success_threshold=2,
                  probe_timeout=5.0),
    BreakerPolicy(failure_threshold=1, cool_down=0.5, half_open_probes=1, success_threshold=1,
                  probe_timeout=1.0),
)  # fmt: skip
TUNINGS = (LimiterTuning(), LimiterTuning(backoff=0.3, min_rate_factor=0.2, recovery=4.0))
SPECS = (
    BucketSpec("limit:*:requests", "requests", 50.0, 5.0),
    BucketSpec("limit:*:tokens", "tokens", 100_000 / 60.0, 5000.0),
    BucketSpec("limit:model:m:requests", "requests", 3.0, 1.0),
    BucketSpec("limit:model:m:tokens", "tokens", 600 / 60.0, 600.0),
)
BUDGETS = (("budget:a", 2_000_000), ("budget:b", 50_000_000))
CIRCUIT = "breaker:m@http://x"


class Scenario:
    """The reference's state, and what is outstanding: passes handed out, holds unsettled."""

    def __init__(self, rng: random.Random, store: RedisStore) -> None:
        self.rng = rng
        self.store = store
        self.state: dict[str, object] = {}
        self.passes: list[Admission] = []
        self.holds: list[tuple[str, str, int]] = []  # call id, budget key, amount
        self.breaker = rng.choice(BREAKERS)
        self.tuning = rng.choice(TUNINGS)

    def reference(self, op: object, now: float) -> object:
        view = {k: self.state.get(k) for k in op.store_keys()}  # type: ignore[attr-defined]
        changes, result = apply(op, view, now)  # type: ignore[arg-type]
        for key, value in changes.items():
            if value is None:
                self.state.pop(key, None)
            else:
                self.state[key] = value
        return result

    def follow(self, op: object, result: object, kinds: dict[str, int]) -> None:
        """Keep the passes and holds handed out, and count the kinds of decision."""
        if isinstance(op, BeforeAttempt):
            if result.admission is not None:
                self.passes.append(result.admission)
            if result.granted and result.refusal is None and result.budget_refusal is None:
                self.holds.extend((op.call_id, h.key, h.amount) for h in op.holds)
            kind = (
                "budget refused" if result.budget_refusal
                else "circuit refused" if result.refusal
                else "turn refused" if not result.granted
                else "probe" if result.admission and result.admission.probe
                else "waits" if result.wait > 0
                else "granted"
            )  # fmt: skip
        else:
            kind = "transition" if result.transition else "after"
        kinds[kind] = kinds.get(kind, 0) + 1

    def before(self) -> BeforeAttempt:
        rng = self.rng
        call = uuid.uuid4().hex
        holds = ()
        if rng.random() < 0.4:
            key, cap = rng.choice(BUDGETS)
            holds = (BudgetHold(key, cap, rng.randrange(1, cap // 3)),)
        buckets = ()
        if rng.random() < 0.8:
            buckets = tuple(s for s in SPECS if rng.random() < 0.6)
        use_breaker = rng.random() < 0.7
        return BeforeAttempt(
            call_id=call,
            holds=holds,
            breaker_key=CIRCUIT if use_breaker else "",
            breaker=self.breaker if use_breaker else None,
            buckets=buckets,
            tokens=float(rng.choice((0, 1, 40, 800, 4000, 7000, rng.uniform(0, 9000)))),
            tuning=self.tuning,
            max_wait=rng.choice((None, 0.0, 0.05, 0.5, 3.0, rng.uniform(0, 10))),
        )

    def after(self) -> AfterAttempt:
        rng = self.rng
        admission = None
        if self.passes and rng.random() < 0.7:
            admission = self.passes.pop(rng.randrange(len(self.passes)))
        elif rng.random() < 0.2:
            admission = Admission(rng.randrange(0, 6), rng.random() < 0.5)  # stale or forged
        settles: tuple[BudgetSettle, ...] = ()
        call = uuid.uuid4().hex
        if self.holds and rng.random() < 0.5:
            call, key, amount = self.holds.pop(rng.randrange(len(self.holds)))
            spent = rng.choice((0, amount, rng.randrange(0, amount + 1), amount * 2))
            settles = (BudgetSettle(key, amount, spent),)
        give_back = tuple(
            BucketBack(s, rng.choice((-1.0, 1.0, rng.uniform(-3000, 3000))))
            for s in SPECS
            if rng.random() < 0.25
        )
        counts = tuple(
            ServerCount(
                s, rng.choice((0.0, 1.0, rng.uniform(0, s.capacity))), rng.choice((None, 0.0, 0.7))
            )
            for s in SPECS
            if rng.random() < 0.1
        )
        backoff = tuple(s for s in SPECS if rng.random() < 0.08)
        return AfterAttempt(
            call_id=call,
            breaker_key=CIRCUIT,
            breaker=self.breaker if admission is not None else None,
            admission=admission,
            outcome=rng.choice(tuple(Outcome)),
            give_back=give_back,
            server_counts=counts,
            backoff=backoff,
            retry_after=rng.choice((None, 0.0, 1.5)) if backoff else None,
            tuning=self.tuning,
            settles=settles,
        )


def _same_state(scenario: Scenario) -> None:
    stored = scenario.store.items("")
    expected = dict(scenario.state)
    # A circuit never changed from new is stored by the reference, absent in Redis.
    if expected.get(CIRCUIT) == Circuit() and CIRCUIT not in stored:
        del expected[CIRCUIT]
    for key in [k for k, v in stored.items() if isinstance(v, Spending)]:
        expected.setdefault(key, Spending())
    assert stored == expected


CHUNK = 250


@pytest.mark.parametrize("seed", [1, 2])
async def test_lua_agrees_with_the_reference(redis_url: str, seed: int) -> None:
    rng = random.Random(seed)
    now = 1_750_000_000.0 + rng.uniform(0, 1000)
    # One time per operation, taken by the store as it encodes it.
    times: collections.deque[float] = collections.deque()
    # A generous timeout: a busy machine must not make this store degrade mid-test.
    store = RedisStore(redis_url, namespace=f"diff{seed}", clock=times.popleft, policy_timeout=30.0)
    scenario = Scenario(rng, store)
    kinds: dict[str, int] = {}
    for _ in range(STEPS // 2 // CHUNK):
        chunk = []
        for _ in range(CHUNK):
            # Mostly small steps (bursts at one instant included), sometimes long rests.
            now += rng.choice((0.0, 0.0, rng.expovariate(50), rng.expovariate(2), 3.0))
            op = scenario.before() if rng.random() < 0.55 else scenario.after()
            expected = scenario.reference(op, now)
            chunk.append((op, expected))
            times.append(now)
            scenario.follow(op, expected, kinds)
        # Made in one tick, the decisions go in one pipeline, applied in order.
        got = await asyncio.gather(*(store.apply_async(op) for op, _ in chunk))
        for (op, expected), result in zip(chunk, got, strict=True):
            assert result == expected, op
        _same_state(scenario)
    # The random walk reached every kind of decision, each many times.
    for kind in ("budget refused", "circuit refused", "turn refused", "probe", "waits",
                 "granted", "transition"):  # fmt: skip
        assert kinds.get(kind, 0) >= 50, kinds
