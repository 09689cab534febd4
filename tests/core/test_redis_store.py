"""``RedisStore`` against a real redis-server: scripts, keys, money, processes and faults.

Decisions go through the store interface every client uses (``apply`` / ``apply_async``
of policy operations); the client-level behaviour across processes is in
``test_redis_processes.py``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
import time
import uuid
from dataclasses import replace
from decimal import Decimal

import pytest
import redis

from holysheep_core import BreakerPolicy, Budget, BudgetUnavailableError, RedisStore
from holysheep_core.policy.breaker import Outcome
from holysheep_core.policy.operations import (
    AfterAttempt,
    BeforeAttempt,
    BudgetSettle,
    LedgerEntry,
)
from holysheep_core.policy.ratelimit import BucketSpec
from holysheep_core.policy.redis_store import StoreUnavailable

REQUESTS = BucketSpec("limit:*:requests", "requests", 10.0, 4.0)
BREAKER = BreakerPolicy(failure_threshold=2, cool_down=30.0)
CIRCUIT = "breaker:m@http://x"
# Refills by a thousandth a second: its level counts the turns taken.
COUNTER = BucketSpec("limit:counter:requests", "requests", 0.001, 10.0)


def asleep(server, seconds: float) -> None:
    """``DEBUG SLEEP`` and wait until Redis really sleeps (a PING goes unanswered)."""
    server.slow(seconds)
    while server.ping():  # answered: the sleep has not begun yet
        time.sleep(0.01)


def turn(**fields: object) -> BeforeAttempt:
    return BeforeAttempt(call_id=uuid.uuid4().hex, **fields)  # type: ignore[arg-type]


def hold_op(budget: Budget, usd: str, call_id: str | None = None) -> BeforeAttempt:
    return BeforeAttempt(call_id=call_id or uuid.uuid4().hex, holds=(budget.hold(Decimal(usd)),))


def settle_op(budget: Budget, held: BeforeAttempt, spent_usd: str) -> AfterAttempt:
    hold = held.holds[0]
    spent = int(Decimal(spent_usd) * 10**9)
    return AfterAttempt(call_id=held.call_id, settles=(BudgetSettle(hold.key, hold.amount, spent),))


def store_for(url: str, **options: object) -> RedisStore:
    # A generous policy timeout unless the test is about timeouts: a busy machine must not
    # make a store degrade where the test does not expect it.
    options = {"policy_timeout": 5.0, **options}
    return RedisStore(url, namespace=uuid.uuid4().hex[:8], **options)  # type: ignore[arg-type]


def test_scripts_are_loaded_again_after_the_server_forgets_them(redis_url, redis_server) -> None:
    store = store_for(redis_url)
    assert store.apply(turn(buckets=(REQUESTS,), tokens=1.0)).granted
    redis_server.command("SCRIPT", "FLUSH")
    assert store.apply(turn(buckets=(REQUESTS,), tokens=1.0)).granted
    # Both turns were charged in Redis: 4 - 2 left of the burst (a little refilled since).
    level = store.items("limit:")["limit:*:requests"].level
    assert 2.0 <= level < 2.5


async def test_async_scripts_are_loaded_again_too(redis_url, redis_server) -> None:
    store = store_for(redis_url)
    redis_server.command("SCRIPT", "FLUSH")
    results = await asyncio.gather(
        *(store.apply_async(turn(buckets=(REQUESTS,), max_wait=0.0)) for _ in range(6))
    )
    # One pipeline, one tick: the burst of 4 goes, the other two would wait and are refused.
    assert [r.granted for r in results] == [True] * 4 + [False] * 2


def test_keys_share_one_hash_slot_and_all_expire(redis_url) -> None:
    store = RedisStore(redis_url, namespace="shop", policy_timeout=5.0)
    budget = Budget(1, name="team", store=store)
    held = hold_op(budget, "0.01")
    store.apply(turn(breaker_key=CIRCUIT, breaker=BREAKER, buckets=(REQUESTS,)))
    store.apply(held)
    store.apply(settle_op(budget, held, "0.002"))
    raw = redis.Redis.from_url(redis_url)
    keys = raw.keys("*")
    assert len(keys) >= 4
    for key in keys:
        assert key.startswith(b"{hs:shop}:"), key
        assert raw.pttl(key) > 0, key  # every key expires when left idle


def test_keys_live_while_in_use_and_expire_once_idle(redis_url) -> None:
    """A key's TTL is set again only when a write needs it to run further (with a tenth
    to spare): in use for longer than its TTL it stays, left idle it goes within 1.1 TTL."""
    ttl = 2.0
    store = store_for(redis_url, idle_ttl=ttl, budget_ttl=ttl)
    budget = Budget(1, name="team", store=store)
    raw = redis.Redis.from_url(redis_url)
    started = time.monotonic()
    calls = 0
    while time.monotonic() - started < 1.5 * ttl:  # past the first TTL, in use
        held = hold_op(budget, "0.01")
        assert store.apply(held).budget_refusal is None
        done = settle_op(budget, held, "0.001")
        store.apply(replace(done, ledger=LedgerEntry("m", requests=1, cost_nano=10**6)))
        calls += 1
        time.sleep(0.1)
    assert budget.spent_usd == Decimal("0.001") * calls  # nothing forgotten while in use
    assert store.shared_usage().requests == calls
    keys = [
        store.prefix + name
        for name in ("budget:team", "budget:team:expiry", "ledger:model:m", "ledger:models")
    ]
    for key in keys:
        assert 0 < raw.pttl(key) <= 1.1 * ttl * 1000 + 1, key
    deadline = time.monotonic() + 1.1 * ttl + 5.0  # Redis's expiry cycle runs 10 times a second
    while raw.exists(*keys) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert raw.exists(*keys) == 0  # idle: all gone


def test_a_hold_sent_twice_holds_once_and_settles_once(redis_url) -> None:
    store = store_for(redis_url)
    budget = Budget("0.10", name="b", store=store)
    held = hold_op(budget, "0.03")
    for _ in range(2):  # a resend of the same call's operation
        assert store.apply(held).budget_refusal is None
    assert budget.held_usd == Decimal("0.03")
    for _ in range(2):
        store.apply(settle_op(budget, held, "0.01"))
    assert (budget.spent_usd, budget.held_usd) == (Decimal("0.01"), Decimal(0))


def test_money_is_exact_to_the_nano_dollar(redis_url) -> None:
    store = store_for(redis_url)
    budget = Budget("0.000000003", name="tiny", store=store)
    ops = [hold_op(budget, "0.000000001") for _ in range(4)]
    refused = [store.apply(op).budget_refusal is not None for op in ops]
    assert refused == [False, False, False, True]
    for op in ops[:3]:
        store.apply(settle_op(budget, op, "0.000000001"))
    assert budget.spent_usd == Decimal("0.000000003")
    assert budget.remaining_usd == 0


def test_a_hold_left_by_a_crashed_process_expires_as_spent(redis_url) -> None:
    store = store_for(redis_url, hold_ttl=0.3)
    budget = Budget("1", name="b", store=store)
    store.apply(hold_op(budget, "0.4"))  # never settled: its process "crashed"
    assert budget.held_usd == Decimal("0.4")
    time.sleep(0.5)
    store.apply(hold_op(budget, "0.1"))
    # The server may have billed the lost call: its hold is now spent, no longer held.
    assert (budget.spent_usd, budget.held_usd) == (Decimal("0.4"), Decimal("0.1"))


def test_holds_expire_at_their_own_time_when_an_earlier_one_was_settled(redis_url) -> None:
    # A budget looks for expired holds only once its earliest hold's time has come. A
    # settled hold leaves that time early: the look then finds nothing, and the holds still
    # there must expire at their own times, not be forgotten.
    now = [1000.0]
    store = store_for(redis_url, hold_ttl=10.0, clock=lambda: now[0])
    budget = Budget("1", name="b", store=store)
    first = hold_op(budget, "0.2")
    store.apply(first)
    store.apply(settle_op(budget, first, "0.2"))
    now[0] = 1005.0
    store.apply(hold_op(budget, "0.3"))  # never settled: expires at 1015
    now[0] = 1011.0  # past the first hold's time, not the second's
    store.apply(hold_op(budget, "0.1"))  # expires at 1021
    assert (budget.spent_usd, budget.held_usd) == (Decimal("0.2"), Decimal("0.4"))
    now[0] = 1016.0
    store.apply(hold_op(budget, "0.05"))  # expires at 1026
    assert (budget.spent_usd, budget.held_usd) == (Decimal("0.5"), Decimal("0.15"))
    now[0] = 1026.0
    store.apply(hold_op(budget, "0.05"))
    assert (budget.spent_usd, budget.held_usd) == (Decimal("0.65"), Decimal("0.05"))


def test_two_stores_share_one_circuit(redis_url) -> None:
    a = RedisStore(redis_url, namespace="shared-circuit", policy_timeout=5.0)
    b = RedisStore(redis_url, namespace="shared-circuit", policy_timeout=5.0)
    for _ in range(2):
        entered = a.apply(turn(breaker_key=CIRCUIT, breaker=BREAKER))
        a.apply(
            AfterAttempt(
                call_id="x",
                breaker_key=CIRCUIT,
                breaker=BREAKER,
                admission=entered.admission,
                outcome=Outcome.FAILURE,
            )
        )
    refused = b.apply(turn(breaker_key=CIRCUIT, breaker=BREAKER)).refusal
    assert refused is not None and refused.state == "open"


def test_redis_down_budget_refuses_limiter_shares_and_back_within_a_second(redis_server):
    redis_server.command("FLUSHALL")
    url = redis_server.url
    mine = RedisStore(url, namespace="outage", policy_timeout=0.2, retry_interval=0.25)
    # Another process, as far as heartbeats go.
    other = RedisStore(url, namespace="outage", policy_timeout=5.0)
    other.apply(turn(buckets=(REQUESTS,)))
    mine.apply(turn(buckets=(REQUESTS,)))
    assert mine.processes == 2
    budget = Budget("1", name="b", store=mine)
    redis_server.kill()
    try:
        started = time.monotonic()
        with pytest.raises(BudgetUnavailableError, match="cannot be asked"):
            mine.apply(hold_op(budget, "0.01"))
        assert time.monotonic() - started < 1.5
        # The limiter degrades to this process's share: 2 of the burst of 4, then waits.
        granted = [mine.apply(turn(buckets=(REQUESTS,), max_wait=0.0)).granted for _ in range(4)]
        assert granted == [True, True, False, False]
        # A breaker still works, on a circuit of this process.
        assert mine.apply(turn(breaker_key=CIRCUIT, breaker=BREAKER)).admission is not None
        # No local figure stands for the shared budget's.
        with pytest.raises(StoreUnavailable):
            _ = budget.spent_usd
    finally:
        redis_server.start()
    back = time.monotonic()
    deadline = back + 5
    while True:
        try:
            mine.apply(hold_op(budget, "0.01"))
            break
        except BudgetUnavailableError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert time.monotonic() - back < 1.0 + 0.5  # probe interval + one reconnect
    assert budget.held_usd == Decimal("0.01")
    # What the limiter let through meanwhile was charged to the shared bucket.
    assert mine.flush()
    level = mine.items("limit:")["limit:*:requests"].level
    assert level < 4.0 - 2.0 + 0.5


def test_a_slow_redis_degrades_within_the_policy_timeout_and_replays_once(
    redis_url, redis_server
) -> None:
    store = store_for(redis_url, policy_timeout=0.2, error_threshold=1, retry_interval=0.2)
    budget = Budget("1", name="b", store=store)
    held = hold_op(budget, "0.05")
    store.apply(held)
    asleep(redis_server, 1.5)
    started = time.monotonic()
    store.apply(settle_op(budget, held, "0.02"))  # times out; Redis applies it after its sleep
    assert time.monotonic() - started < 1.0
    time.sleep(1.6)
    store.flush()  # sent again: applied once all the same
    assert (budget.spent_usd, budget.held_usd) == (Decimal("0.02"), Decimal(0))


async def test_the_event_loop_never_waits_for_redis(redis_url, redis_server) -> None:
    store = store_for(redis_url, policy_timeout=0.2, retry_interval=0.2)
    await store.apply_async(turn(buckets=(REQUESTS,)))
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        for _ in range(40):
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    asleep(redis_server, 1.5)
    tick = asyncio.create_task(ticker())
    results = await asyncio.gather(
        *(store.apply_async(turn(buckets=(REQUESTS,), max_wait=5.0)) for _ in range(20))
    )
    await tick
    assert all(r.granted for r in results)  # degraded to this process's limit, not failed
    assert max(gaps) < 0.5  # Redis slept 1.5 s; the loop never did


def test_a_lease_spends_while_redis_is_away_and_is_settled_when_it_is_back(
    redis_url, redis_server
) -> None:
    store = store_for(
        redis_url,
        policy_timeout=0.2,
        error_threshold=1,
        retry_interval=0.2,
        budget_fallback="lease",
        budget_lease_usd="0.05",
    )
    budget = Budget("1", name="b", store=store)
    a = hold_op(budget, "0.01")
    store.apply(a)  # and this process leases $0.05 of the budget
    assert budget.held_usd == Decimal("0.06")
    asleep(redis_server, 1.5)
    b, c, d = (hold_op(budget, "0.02") for _ in range(3))
    assert store.apply(b).granted  # times out: from the lease
    assert store.apply(c).granted
    with pytest.raises(BudgetUnavailableError, match="lease is spent"):
        store.apply(d)
    store.apply(settle_op(budget, b, "0.015"))
    time.sleep(1.6)
    store.apply(settle_op(budget, c, "0.02"))
    store.apply(settle_op(budget, a, "0.01"))
    assert store.flush()
    # b's own hold reached Redis after its sleep and was released; the lease's spending
    # (b and c) was settled in Redis with the lease, which is given back.
    assert (budget.spent_usd, budget.held_usd) == (Decimal("0.045"), Decimal(0))


def _child_apply(store: RedisStore, out: multiprocessing.Queue) -> None:
    try:
        out.put(store.apply(turn(breaker_key=CIRCUIT, breaker=BREAKER, buckets=(COUNTER,))))
        out.put(store.processes)
    except Exception as exc:  # the parent asserts on it
        out.put(exc)


def test_a_store_made_before_fork_works_in_the_children(redis_url) -> None:
    store = store_for(redis_url, error_threshold=1)
    assert store.apply(turn(buckets=(COUNTER,))).granted  # parent's connection exists
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    children = [ctx.Process(target=_child_apply, args=(store, out)) for _ in range(2)]
    for child in children:
        child.start()
    results = [out.get(timeout=20) for _ in range(4)]
    for child in children:
        child.join(20)
        assert child.exitcode == 0
    assert not [r for r in results if isinstance(r, Exception)], results
    # Each child decided in Redis (a heartbeat of its own: 2 or 3 processes seen) ...
    assert max(r for r in results if isinstance(r, int)) >= 2
    # ... and the parent's connection still works.
    assert store.apply(turn(buckets=(COUNTER,))).granted
    assert 5.99 < store.items("limit:")["limit:counter:requests"].level < 6.01  # 4 turns taken


def test_a_pickled_store_reconnects_and_shares_state(redis_url) -> None:
    store = store_for(redis_url)
    budget = Budget("1", name="b", store=store)
    store.apply(hold_op(budget, "0.25"))
    copy = pickle.loads(pickle.dumps(store))
    assert repr(copy) == repr(store)
    assert Budget("1", name="b", store=copy).held_usd == Decimal("0.25")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="namespace"):
        RedisStore("redis://127.0.0.1:1", namespace="a{b}")
    with pytest.raises(ValueError, match="policy_timeout"):
        RedisStore("redis://127.0.0.1:1", policy_timeout=0)
    with pytest.raises(ValueError, match="budget_fallback"):
        RedisStore("redis://127.0.0.1:1", budget_fallback="spend")  # type: ignore[arg-type]


async def test_what_makes_the_next_decision_stricter_reaches_redis_ahead_of_it(redis_url):
    """A settlement that only gives back may go after the next decision; a failure, or a
    call that spent more than it held, is applied before the process decides again."""
    store = store_for(redis_url)
    budget = Budget(Decimal("0.01"), name="strict", store=store)
    strict = BreakerPolicy(failure_threshold=1, cool_down=30.0)
    entered = await store.apply_async(turn(breaker_key=CIRCUIT, breaker=strict))
    failed = AfterAttempt(
        call_id="f",
        breaker_key=CIRCUIT,
        breaker=strict,
        admission=entered.admission,
        outcome=Outcome.FAILURE,
    )
    store.defer(failed)
    refused = (await store.apply_async(turn(breaker_key=CIRCUIT, breaker=strict))).refusal
    assert refused is not None and refused.state == "open"

    held = hold_op(budget, "0.004")
    assert (await store.apply_async(held)).budget_refusal is None
    store.defer(settle_op(budget, held, "0.008"))  # billed twice what it held
    after = await store.apply_async(hold_op(budget, "0.004"))
    assert after.budget_refusal is not None  # 0.008 + 0.004 > 0.01: it saw the overrun
    await store.aclose()
    assert budget.spent_usd == Decimal("0.008")


async def test_decisions_redis_runs_after_their_callers_gave_up_take_nothing(
    redis_url, redis_server
) -> None:
    # Decisions written as Redis stalls wait in its socket; their callers give up after
    # the policy timeout and go on without Redis. Run when Redis wakes, they must not book
    # turns (or hold budget) for calls that are gone: every process would wait behind them.
    store = store_for(redis_url, policy_timeout=0.2, retry_interval=0.2)
    budget = Budget("1", name="b", store=store)
    for _ in range(2):  # connected; the first one's heartbeat has read Redis's clock
        assert (await store.apply_async(turn(buckets=(COUNTER,)))).granted
    # Asleep for 2 s: the decisions below are sent within about 0.5 s of its start (the
    # check that it sleeps waits that long) and are stale 0.4 s later; Redis runs them
    # when it wakes, a second after that.
    asleep(redis_server, 2.0)
    ops = [turn(buckets=(COUNTER,), holds=(budget.hold(Decimal("0.01")),)) for _ in range(5)]
    ops += [turn(buckets=(COUNTER,)) for _ in range(5)]
    outcomes = await asyncio.gather(*(store.apply_async(op) for op in ops), return_exceptions=True)
    assert all(isinstance(o, BudgetUnavailableError) for o in outcomes[:5])
    assert all(o.granted for o in outcomes[5:])  # on this process's own limiter
    while not redis_server.ping():
        await asyncio.sleep(0.05)
    assert await store.apply_async(turn(buckets=(COUNTER,)))  # back on Redis
    await store.aclose()
    level = store.items("limit:")[COUNTER.key].level
    # The three turns Redis gave in time, and the five this process gave on its own
    # (charged when Redis was back); the ten decisions Redis ran late took nothing.
    assert COUNTER.capacity - level == pytest.approx(3 + 5, abs=0.01)
    assert (budget.spent_usd, budget.held_usd) == (0, 0)


async def test_decisions_made_stale_by_a_clock_jump_read_the_clock_again(redis_url) -> None:
    # Redis's clock jumps ahead (a step of its host's time): the offset this process
    # read is wrong and its decisions look stale to Redis. It reads the clock again on
    # the next heartbeat, at once, and is back on Redis a round trip later.
    store = store_for(redis_url)
    for _ in range(2):
        assert (await store.apply_async(turn(buckets=(COUNTER,)))).granted
    store._offsets.clear()
    store._offsets.append(-1e6)  # as if Redis's clock had jumped 11 days on
    for _ in range(4):  # the first one or two on its own, until the clock is read again
        assert (await store.apply_async(turn(buckets=(COUNTER,)))).granted
    assert not store._degraded
    await store.aclose()
    level = store.items("limit:")[COUNTER.key].level
    # Every turn is counted once: four given by Redis, two let through here while the
    # offset was wrong (charged to Redis when it was back).
    assert COUNTER.capacity - level == pytest.approx(6, abs=0.01)
