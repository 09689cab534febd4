"""Many processes, one rate limit, one budget, one ledger: real worker processes share a
``RedisStore`` and call a server in yet another process, which bills what it got."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from decimal import Decimal
from typing import Any

from billing_server import BillingServer

from holysheep_core import (
    APITimeoutError,
    AsyncHolySheepClient,
    BreakerPolicy,
    Budget,
    BudgetExceededError,
    HolySheepClient,
    RateLimits,
    RetryPolicy,
)
from holysheep_core.policy.redis_store import RedisStore

MODEL = "deepseek-v3.2"  # $0.42 per million tokens, in and out
HI = [{"role": "user", "content": "hi"}]
KEY = "hs-processes-test-key"
PRICE = Decimal("0.42") / 10**6


def _billed(ledger: list[dict[str, Any]]) -> Decimal:
    return sum((n["prompt"] + n["completion"]) * PRICE for n in ledger)


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    lo = best = 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def _calls(spec: dict[str, Any]) -> dict[str, Any]:
    # Generous timeouts: on a busy machine the store must not degrade mid-test.
    store = RedisStore(spec["redis"], namespace=spec["namespace"], policy_timeout=10.0)
    budget = None
    if spec.get("cap") is not None:
        budget = Budget(spec["cap"], name="shared", store=store)
    client = AsyncHolySheepClient(
        api_key=KEY,
        base_url=spec["url"],
        policy_store=store,
        rate_limits=RateLimits(**spec["limits"]) if spec.get("limits") else None,
        budget_usd=budget,
        retry=RetryPolicy(max_retries=0),
    )
    done = {"ok": 0, "late": 0, "over budget": 0}
    end = time.monotonic() + spec["seconds"]

    async def caller() -> None:
        while time.monotonic() < end:
            try:
                await client.chat_completion(model=MODEL, messages=HI, max_tokens=20)
                done["ok"] += 1
            except APITimeoutError:
                done["late"] += 1  # its turn was further than max_wait: nothing sent
            except BudgetExceededError:
                done["over budget"] += 1
                return

    await asyncio.gather(*(caller() for _ in range(spec["callers"])))
    await client.aclose()
    await store.aclose()
    return done


def _worker(spec: dict[str, Any], out: Any) -> None:
    out.put(asyncio.run(_calls(spec)))


def _run(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(spec, out)) for spec in specs]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    return results


def test_four_processes_share_one_rate_limit_and_one_ledger(redis_url: str) -> None:
    limits = {"requests_per_second": 10.0, "request_burst": 3.0, "max_wait": 0.5}
    with BillingServer() as server:
        spec = {
            "url": server.url,
            "redis": redis_url,
            "namespace": "rate",
            "limits": limits,
            "seconds": 3.0,
            "callers": 10,
        }
        results = _run([spec] * 4)
        starts = [n["t"] for n in server.ledger()]
    ok = sum(r["ok"] for r in results)
    assert ok == len(starts)
    # Alone, each process would send 10/s: 40/s together. Shared, any second of the
    # server's clock sees at most rate + burst; 0.1 s of delivery jitter allowed for.
    assert _max_in_window(starts, 0.9) <= 10 + 3
    assert len(starts) <= 10 * (max(starts) - min(starts)) + 3 + 1
    # Every process sent some: the turns are shared, not taken by the first process.
    assert all(r["ok"] > 0 for r in results), results
    shared = RedisStore(redis_url, namespace="rate").shared_usage()
    assert shared.requests == len(starts)


def test_four_processes_never_pass_one_budget(redis_url: str) -> None:
    cap = Decimal("0.0002")
    with BillingServer() as server:
        spec = {
            "url": server.url,
            "redis": redis_url,
            "namespace": "money",
            "cap": str(cap),
            "seconds": 10.0,
            "callers": 8,
        }
        results = _run([spec] * 4)
        spent = _billed(server.ledger())
    assert 0 < spent <= cap  # what the server billed never passes the cap
    assert all(r["over budget"] > 0 for r in results)  # every process met the shared cap
    budget = Budget(cap, name="shared", store=RedisStore(redis_url, namespace="money"))
    assert budget.spent_usd == spent  # to the nano-dollar
    assert budget.held_usd == 0


def test_a_sync_client_shares_its_ledger_with_async_ones(redis_url: str) -> None:
    with BillingServer() as server:
        store = RedisStore(redis_url, namespace="ledger", policy_timeout=10.0)
        with HolySheepClient(api_key=KEY, base_url=server.url, policy_store=store) as client:
            for _ in range(3):
                client.chat_completion(model=MODEL, messages=HI)
            assert client.shared_stats().requests == 3
        results = _run(
            [
                {
                    "url": server.url,
                    "redis": redis_url,
                    "namespace": "ledger",
                    "seconds": 0.5,
                    "callers": 2,
                }
            ]
        )
        billed = server.ledger()
    assert len(billed) == 3 + results[0]["ok"]
    usage = store.shared_usage()
    assert usage.requests == len(billed)
    assert usage.by_model[MODEL].input_tokens == sum(n["prompt"] for n in billed)
    assert usage.by_model[MODEL].output_tokens == sum(n["completion"] for n in billed)
    assert usage.cost_usd == _billed(billed)


def test_the_adapters_take_the_store_through_client_settings(redis_url: str) -> None:
    from llama_index.core.llms import ChatMessage

    from langchain_holysheep import ChatHolySheep
    from llama_index_holysheep import HolySheep

    store = RedisStore(redis_url, namespace="adapters", policy_timeout=10.0)
    budget = Budget("1", name="adapters", store=store)
    settings = {"policy_store": store, "budget_usd": budget}
    with BillingServer() as server:
        lc = ChatHolySheep(model=MODEL, api_key=KEY, base_url=server.url, client_settings=settings)
        li = HolySheep(model=MODEL, api_key=KEY, api_base=server.url, client_settings=settings)
        lc.invoke("hi")
        li.chat([ChatMessage(role="user", content="hi")])
        billed = _billed(server.ledger())
    usage = store.shared_usage()
    assert usage.requests == 2
    assert budget.spent_usd == usage.cost_usd == billed


async def _paced_calls(url: str, store: RedisStore, stall: Any, *, more: int = 0) -> None:
    """20 calls at 10/s (burst 1), all given their turns at once; ``stall()`` runs once a
    few have gone, and ``more`` calls come half a second after it."""
    limits = RateLimits(requests_per_second=10, request_burst=1, max_wait=30.0)
    async with AsyncHolySheepClient(
        api_key=KEY,
        base_url=url,
        policy_store=store,
        rate_limits=limits,
        breaker=BreakerPolicy(),
        retry=RetryPolicy(max_retries=0),
    ) as client:

        def calls(n: int) -> list[asyncio.Task[Any]]:
            return [
                asyncio.create_task(client.chat_completion(model=MODEL, messages=HI))
                for _ in range(n)
            ]

        first = calls(20)
        await asyncio.sleep(0.35)  # a few have gone; the others wait their turns
        stall()
        await asyncio.sleep(0.5)
        await asyncio.gather(*first, *calls(more))
    await store.aclose()


async def test_calls_held_up_by_a_slow_redis_take_new_turns_not_go_together(
    redis_url: str, redis_server: Any
) -> None:
    # A call that waited its turn asks Redis for the breaker's pass. Redis stalls for
    # eight turns (within the policy timeout: nothing degrades); the calls whose turns
    # came meanwhile get their passes together when it answers, and would go together.
    store = RedisStore(redis_url, namespace="stall", policy_timeout=10.0)
    with BillingServer() as server:
        await _paced_calls(server.url, store, lambda: redis_server.slow(0.8))
        starts = [n["t"] for n in server.ledger()]
    assert len(starts) == 20
    # The turns' bound, and one more for a call the busy test machine sends a little late.
    assert _max_in_window(starts, 1.0) <= 10 + 1 + 1


async def test_calls_holding_redis_turns_as_it_stops_are_not_joined_by_the_local_share(
    redis_url: str, redis_server: Any
) -> None:
    # Redis stops answering while 20 calls hold turns up to 2 s ahead: they keep them.
    # This process's own share of the limit (all of it: it is alone) serves the calls
    # that come meanwhile, and the calls whose passes Redis never answered, after the
    # last of those turns, not alongside them.
    store = RedisStore(redis_url, namespace="gone", policy_timeout=0.2, retry_interval=0.25)
    with BillingServer() as server:
        await _paced_calls(server.url, store, lambda: redis_server.slow(2.5), more=10)
        starts = [n["t"] for n in server.ledger()]
    assert len(starts) == 30
    assert _max_in_window(starts, 1.0) <= 10 + 1 + 1
