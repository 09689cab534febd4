"""All the policies at once on the emulator: nothing leaks (connections, tasks, threads),
state shared through a store, and a client without policies pays nothing for them."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from holysheep_core import (
    APITimeoutError,
    BreakerPolicy,
    Budget,
    BudgetExceededError,
    CircuitOpenError,
    ClientConfig,
    InMemoryStore,
    InternalServerError,
    Limit,
    RateLimits,
    RetryPolicy,
    StateStore,
)
from holysheep_core.emulator import Fault

MODEL, BACKUP, SLOW = "gpt-4.1", "deepseek-v3.2", "gemini-2.5-flash"
HI = [{"role": "user", "content": "hi there"}]


def busy_connections(client: Any) -> int:
    """Connections a response still holds, in the pool the client uses here (for an async
    client: the running loop's)."""
    t = client._transport
    per_loop = getattr(t, "_sessions", None) or getattr(t, "_clients", None)
    pool = per_loop.current() if per_loop is not None else t._client
    if pool is None:
        return 0
    if hasattr(pool, "connector"):  # an aiohttp session
        return len(pool.connector._acquired)
    return sum(1 for c in pool._transport._pool.connections if not (c.is_idle() or c.is_closed()))


def other_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]


def every_policy(clock: Any, **extra: Any) -> dict[str, Any]:
    return {
        "retry": RetryPolicy.no_wait(max_retries=1),
        "policy_store": InMemoryStore(clock=clock.monotonic),
        "breaker": BreakerPolicy(failure_threshold=2, cool_down=10, half_open_probes=1),
        # The slow model admits one call a second: a second caller waits in the limiter.
        "rate_limits": RateLimits(
            requests_per_second=500,
            tokens_per_minute=1_000_000,
            per_model={SLOW: Limit(requests_per_second=1, request_burst=1)},
        ),
        "fallback_models": (BACKUP,),
        "budget_usd": Budget(5),
        **extra,
    }


async def test_nothing_leaks_after_every_policy_has_acted(
    emulator: Any,
    make_async_client: Any,
    store_clock: Any,
) -> None:
    threads = threading.active_count()
    clock = store_clock
    client = make_async_client(**every_policy(clock))
    # The breaker opens on the first model and its calls fall back; a shed one sends nothing.
    emulator.inject(Fault.status(503), times=2)
    assert (await client.chat_completion(model=MODEL, messages=HI)).model == BACKUP
    assert (await client.chat_completion(model=MODEL, messages=HI)).model == BACKUP
    # Fifty concurrent calls, some waiting in the limiter, some on the wire, all cancelled.
    emulator.inject(Fault.slow_first_byte(5), times=50)
    calls = [
        asyncio.create_task(client.chat_completion(model=SLOW if i % 2 else BACKUP, messages=HI))
        for i in range(50)
    ]
    await asyncio.sleep(0.2)
    for call in calls:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)
    # A probe after the cool-down, refused and answered calls, a stream left early.
    clock.now += 10
    emulator.reset()
    assert (await client.chat_completion(model=MODEL, messages=HI)).model == MODEL
    with pytest.raises(BudgetExceededError):
        await client.chat_completion(
            model=MODEL, messages=HI, fallback_models=[], max_tokens=30_000, n=30
        )
    emulator.inject(Fault.stall_mid_stream(after=1, seconds=5))
    stream = await client.stream_chat_completion(model=MODEL, messages=HI)
    await stream.__anext__()
    assert busy_connections(client) == 1  # the stalled stream holds one: the count is real
    await stream.aclose()

    assert other_tasks() == []
    assert busy_connections(client) == 0
    stats = client.stats()
    assert stats.errors == {"BudgetExceededError": 1}  # cancelled calls are not failures
    assert set(stats.breakers.values()) == {"closed"}
    assert client.config.budget_usd.held_usd == 0  # every hold settled or released
    await client.aclose()
    assert threading.active_count() == threads


def test_nothing_leaks_from_many_threads(emulator: Any, make_client: Any, store_clock: Any) -> None:
    clock = store_clock
    client = make_client(max_connections=8, **every_policy(clock))
    threads = threading.active_count()
    emulator.inject(Fault.status(500), times=6)
    outcomes: list[Any] = []

    def work(n: int) -> None:
        for _ in range(5):
            try:
                outcomes.append(client.chat_completion(model=MODEL, messages=HI).model)
            except (CircuitOpenError, InternalServerError, APITimeoutError) as exc:
                outcomes.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(outcomes) == 40
    assert busy_connections(client) == 0
    assert threading.active_count() == threads
    assert client.config.budget_usd.held_usd == 0
    stats = client.stats()
    assert stats.requests == 40
    assert stats.successes + sum(stats.errors.values()) == 40


def test_clients_sharing_a_store_share_their_breakers(emulator: Any, make_client: Any) -> None:
    store: StateStore = InMemoryStore()
    policy = BreakerPolicy(failure_threshold=1, cool_down=60)
    a = make_client(policy_store=store, breaker=policy, retry=RetryPolicy.no_wait(0))
    b = make_client(policy_store=store, breaker=policy)
    emulator.inject(Fault.status(503))
    with pytest.raises(InternalServerError):
        a.chat_completion(model=MODEL, messages=HI)
    with pytest.raises(CircuitOpenError):
        b.chat_completion(model=MODEL, messages=HI)
    assert len(emulator.requests) == 1
    assert b.stats().breakers == a.stats().breakers == {f"{MODEL}@{emulator.url}": "open"}


class _CountingStore(InMemoryStore):
    """Notes the operations applied: a store shared over the network pays each as a round
    trip. ``inline=False`` makes it look networked, so the flow hands its operations to
    the driver (the async one awaits ``apply_async``)."""

    def __init__(self, *, inline: bool = True) -> None:
        super().__init__()
        self.inline = inline
        self.ops: list[str] = []
        self.awaited = 0

    def apply(self, op: Any) -> Any:
        self.ops.append(type(op).__name__)
        return super().apply(op)

    async def apply_async(self, op: Any) -> Any:
        self.awaited += 1
        await asyncio.sleep(0)  # a real round trip would suspend here
        return self.apply(op)


ALL_POLICIES = {
    "breaker": BreakerPolicy(),
    "rate_limits": RateLimits(requests_per_second=100, tokens_per_minute=1_000_000),
    "budget_usd": 10,
}


def test_an_answered_call_costs_one_operation_before_and_one_after(
    emulator: Any, make_client: Any
) -> None:
    # Before the attempt: the budget's hold, the breaker's pass and the limiter's turn.
    # When the usage is known: the breaker's verdict, the token correction and the budget
    # settled. The emulator's headers say plenty is left, so following them changes nothing.
    store = _CountingStore()
    client = make_client(policy_store=store, **ALL_POLICIES)
    client.chat_completion(model=MODEL, messages=HI)
    assert store.ops == ["BeforeAttempt", "AfterAttempt"]
    with client.stream_chat_completion(model=MODEL, messages=HI) as stream:
        list(stream)
    assert store.ops == ["BeforeAttempt", "AfterAttempt"] * 2
    assert client.budget.spent_usd == client.stats().cost_usd


async def test_a_networked_store_is_consulted_through_the_async_driver(
    emulator: Any, make_async_client: Any
) -> None:
    store = _CountingStore(inline=False)
    client = make_async_client(policy_store=store, **ALL_POLICIES)
    await asyncio.gather(*(client.chat_completion(model=MODEL, messages=HI) for _ in range(5)))
    # Each call's operation before the attempt is awaited; the one after it is queued
    # (it settles after the flow, where nothing may block).
    assert store.awaited == 5
    assert store.ops.count("BeforeAttempt") == store.ops.count("AfterAttempt") == 5
    assert client.stats().successes == 5
    assert client.budget.held_usd == 0


def test_a_networked_store_is_consulted_inline_by_the_sync_driver(
    emulator: Any, make_client: Any
) -> None:
    store = _CountingStore(inline=False)
    client = make_client(policy_store=store, **ALL_POLICIES)
    client.chat_completion(model=MODEL, messages=HI)
    assert (store.awaited, store.ops) == (0, ["BeforeAttempt", "AfterAttempt"])


def test_a_call_the_limiter_refuses_leaves_no_circuit_behind(
    emulator: Any, make_client: Any
) -> None:
    client = make_client(
        breaker=BreakerPolicy(),
        rate_limits=RateLimits(tokens_per_minute=60, token_burst=5, max_wait=0),
    )
    with pytest.raises(APITimeoutError):
        client.chat_completion(model=MODEL, messages=HI)  # more than 5 tokens: never goes
    assert client.stats().breakers == {}  # the breaker never saw an attempt
    assert len(emulator.requests) == 0


def test_a_client_without_policies_takes_no_guard(emulator: Any, make_client: Any) -> None:
    client = make_client()
    policies = client._pipeline.policies
    assert (policies.breaker, policies.limiter, policies.budget) == (None, None, None)
    assert policies.open(MODEL, 10, None) is None  # so the attempt loop skips every check
    client.chat_completion(model=MODEL, messages=HI)
    assert client.stats().breakers == {}


def test_a_raising_hook_never_fails_a_call(emulator: Any, make_client: Any) -> None:
    def broken(event: Any) -> None:
        raise RuntimeError("a buggy metrics hook")

    client = make_client(
        retry=RetryPolicy.no_wait(0),
        breaker=BreakerPolicy(failure_threshold=1),
        fallback_models=(BACKUP,),
        on_breaker_change=(broken,),
        on_fallback=(broken,),
    )
    emulator.inject(Fault.status(503))
    assert client.chat_completion(model=MODEL, messages=HI).model == BACKUP


def test_a_config_with_policies_dumps_without_its_key(canary_key: str) -> None:
    config = ClientConfig(
        api_key=canary_key,
        breaker=BreakerPolicy(),
        rate_limits=RateLimits(requests_per_second=3, per_model={MODEL: Limit()}),
        fallback_models=[BACKUP],
        budget_usd=Budget(2, name="team"),
        on_breaker_change=(print,),
    )
    dumped = config.model_dump_json()
    assert canary_key not in dumped and canary_key not in repr(config)
    data = json.loads(dumped)
    assert data["breaker"]["failure_threshold"] == 5
    assert data["fallback_models"] == [BACKUP]
    assert "team" in data["budget_usd"]
    assert data["on_breaker_change"] == ["print"]
