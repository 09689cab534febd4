"""``python -m benchmarks.redis_shared``: policies shared on Redis by many processes.

1. Sharing: ``--procs`` processes x ``--callers`` concurrent callers share 50 req/s (burst
   5), 100k tokens/min (burst 5000) and a $1 budget through one ``RedisStore``, against a
   server in another process that counts every request (its own clock). Reported: the most
   starts in any 1 s window, the most tokens in any 60 s window (the run is shorter than 60 s
   unless ``--seconds`` says otherwise: then the whole run's tokens against tpm x run/60 +
   burst), what the server billed against the cap, and the shared ledger against the
   server's count.
2. Latency: what a call costs more with its policies on Redis than in memory, one call at a
   time against the fixed loopback server, p50/p99 (a call waits on one decision; its
   settlement is written after it returns, ahead of the next decision).
3. Throughput: one process, concurrency 100, calls/s with ``RedisStore`` against
   ``InMemoryStore``, same policies, on the fixed loopback server.
4. Outage: the sharing run with Redis killed for 3 s in the middle: the most starts in a
   second, the spend against the cap, and how soon after Redis is back the processes are.

Needs ``redis-server`` (Debian's package) and writes nothing; prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from .counting_server import CountingServer, max_in_window

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from redis_helpers import RedisServer

MODEL = "bench-model"
PRICE = Decimal(30)  # USD per million tokens, in and out: $1 lasts about 1000 calls
PROMPT, COMPLETION = 13, 20
RPS, BURST, TPM, TOKEN_BURST, CAP = 50.0, 5.0, 100_000.0, 5000.0, Decimal(1)
HI = [{"role": "user", "content": "hi"}]
KEY = "hs-benchmark-key"


SHARED_LIMITS = {
    "requests_per_second": RPS,
    "request_burst": BURST,
    "tokens_per_minute": TPM,
    "token_burst": TOKEN_BURST,
    "max_wait": 2.0,
}
# Policies on, never binding: what the store costs, not what the limits hold back.
OPEN_LIMITS = {"requests_per_second": 1e6, "tokens_per_minute": 1e9}


def _client(url: str, store: Any, budget: Any, limits: dict[str, float]) -> Any:
    from holysheep_core import (
        AsyncHolySheepClient,
        BreakerPolicy,
        ModelPrice,
        PriceTable,
        RateLimits,
        RetryPolicy,
    )

    prices = PriceTable().with_prices({MODEL: ModelPrice.of(PRICE, PRICE)})
    return AsyncHolySheepClient(
        api_key=KEY,
        base_url=url,
        policy_store=store,
        rate_limits=RateLimits(**limits),
        breaker=BreakerPolicy(),
        budget_usd=budget,
        prices=prices,
        retry=RetryPolicy(max_retries=0),
    )


async def _share(spec: dict[str, Any]) -> dict[str, Any]:
    from holysheep_core import APITimeoutError, Budget, BudgetExceededError, HolySheepError
    from holysheep_core.policy.redis_store import RedisStore

    store = RedisStore(spec["redis"], namespace=spec["namespace"])
    budget = Budget(CAP, name="bench", store=store)
    switches: list[tuple[str, float]] = []  # when this process left Redis, and came back

    class Switches(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "Redis" in record.getMessage():
                switches.append((record.getMessage(), time.time()))

    logging.getLogger("holysheep").addHandler(Switches())
    client = _client(spec["url"], store, budget, SHARED_LIMITS)
    counts = {"ok": 0, "late": 0, "over budget": 0, "other": 0}
    end = time.monotonic() + spec["seconds"]

    async def caller() -> None:
        while time.monotonic() < end:
            try:
                await client.chat_completion(model=MODEL, messages=HI, max_tokens=COMPLETION)
                counts["ok"] += 1
            except APITimeoutError:
                counts["late"] += 1  # its turn was more than max_wait away: try later
                await asyncio.sleep(0.2)
            except BudgetExceededError:
                counts["over budget"] += 1  # in-flight holds fill the cap: try later
                await asyncio.sleep(0.5)
            except HolySheepError:
                counts["other"] += 1
                await asyncio.sleep(0.05)

    await asyncio.gather(*(caller() for _ in range(spec["callers"])))
    await client.aclose()
    await store.aclose()
    return {**counts, "back_at": [t for message, t in switches if "again" in message]}


def _share_worker(spec: dict[str, Any], out: Any, ready: Any) -> None:
    # Imported ahead of the start, which every process waits for: eight interpreters
    # importing at once on a small machine starve each other's callers, which then send
    # late what was due (the "busy" case in the README), and that is not the workload.
    import aiohttp  # noqa: F401
    import redis.asyncio  # noqa: F401

    import holysheep_core.client  # noqa: F401

    ready.wait()
    out.put(asyncio.run(_share(spec)))


def sharing(args: argparse.Namespace, redis: RedisServer, *, outage: bool) -> dict[str, Any]:
    from holysheep_core import Budget
    from holysheep_core.policy.redis_store import RedisStore

    namespace = "outage" if outage else "share"
    with CountingServer(prompt=PROMPT, completion=COMPLETION) as server:
        spec = {
            "url": server.url,
            "redis": redis.url,
            "namespace": namespace,
            "seconds": args.seconds,
            "callers": args.callers,
        }
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        ready = ctx.Barrier(args.procs + 1)
        procs = [
            ctx.Process(target=_share_worker, args=(spec, out, ready)) for _ in range(args.procs)
        ]
        for p in procs:
            p.start()
        ready.wait(timeout=300)  # every process has imported what it needs: go
        answers_at = None
        if outage:
            # Redis stops answering for 3 s (DEBUG SLEEP: its data survive, as they would
            # with persistence; a Redis restarted empty forgets every budget).
            time.sleep(args.seconds / 2)
            redis.slow(3.0)
            answers_at = time.time() + 3.0
        results = [out.get(timeout=args.seconds + 120) for _ in procs]
        for p in procs:
            p.join(30)
        counted = server.counts()
    starts, tokens = counted["starts"], counted["tokens"]
    run = max(starts) - min(starts) if starts else 0.0
    billed = Decimal(sum(tokens)) * PRICE / 10**6
    store = RedisStore(redis.url, namespace=namespace)
    figures: dict[str, Any] = {
        "calls": len(starts),
        "run_s": round(run, 1),
        "max_starts_1s": max_in_window(starts, 1.0),
        "starts_bound": RPS + BURST,
        "max_tokens_60s": max_in_window(starts, 60.0, tokens),
        "tokens_bound": TPM * min(run, 60.0) / 60.0 + TOKEN_BURST,
        "billed_usd": str(billed),
        "overspend_usd": str(max(billed - CAP, Decimal(0))),
        "outcomes": {k: sum(r[k] for r in results) for k in ("ok", "late", "over budget")},
    }
    if not outage:
        shared = store.shared_usage()
        figures["ledger_requests"] = shared.requests
        figures["ledger_cost_usd"] = str(shared.cost_usd)
        figures["budget_spent_usd"] = str(Budget(CAP, name="bench", store=store).spent_usd)
    else:
        # Each process's first return to Redis after Redis answered again; the slowest.
        backs = [min((t for t in r["back_at"] if t >= answers_at - 0.01), default=None)
                 for r in results]  # fmt: skip
        came = [t - answers_at for t in backs if t is not None]
        figures["back_on_redis_s"] = round(max(came), 3) if came else None
        figures["processes_degraded_and_back"] = f"{len(came)}/{len(results)}"
    return figures


async def _added(url: str, redis_url: str, n: int, block: int = 50) -> dict[str, Any]:
    from holysheep_core import Budget, InMemoryStore
    from holysheep_core.policy.redis_store import RedisStore

    stores = {"memory": InMemoryStore(), "redis": RedisStore(redis_url, namespace="latency")}
    clients = {
        kind: _client(url, store, Budget(10**6, name="latency", store=store), OPEN_LIMITS)
        for kind, store in stores.items()
    }
    samples: dict[str, list[float]] = {kind: [] for kind in clients}
    warm = 4
    # Blocks of calls, alternated: the machine's pace drifts, both stores see the same.
    for round_ in range(n // block + warm):
        for kind, client in clients.items():
            for _ in range(block):
                started = time.perf_counter()
                await client.chat_completion(model="deepseek-v3.2", messages=HI, max_tokens=20)
                if round_ >= warm:
                    samples[kind].append(time.perf_counter() - started)
    for client in clients.values():
        await client.aclose()

    def q(kind: str, p: float) -> float:
        ordered = sorted(samples[kind])
        return ordered[int(len(ordered) * p)] * 1000

    return {
        "memory_p50_ms": round(q("memory", 0.5), 3),
        "redis_p50_ms": round(q("redis", 0.5), 3),
        "added_p50_ms": round(q("redis", 0.5) - q("memory", 0.5), 3),
        "added_p99_ms": round(q("redis", 0.99) - q("memory", 0.99), 3),
    }


def latency(redis: RedisServer, n: int = 3000) -> dict[str, Any]:
    """What a call costs more with its policies on Redis: one call at a time against the
    fixed server (another process), the same client settings with the in-memory store in
    alternate blocks; p50 and p99 of each, and their differences."""
    from .server import start_server

    with start_server() as server:
        return asyncio.run(_added(server.json_url, redis.url, n))


async def _throughput(url: str, redis_url: str | None, n: int, c: int) -> float:
    from holysheep_core import Budget, InMemoryStore
    from holysheep_core.policy.redis_store import RedisStore

    store = RedisStore(redis_url, namespace="throughput") if redis_url else InMemoryStore()
    budget = Budget(10**6, name="throughput", store=store)
    client = _client(url, store, budget, OPEN_LIMITS)
    sem = asyncio.Semaphore(c)

    async def one() -> None:
        async with sem:
            await client.chat_completion(model="deepseek-v3.2", messages=HI, max_tokens=20)

    await asyncio.gather(*(one() for _ in range(200)))  # warm-up
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    rate = n / (time.perf_counter() - started)
    await client.aclose()
    return rate


def _throughput_worker(url: str, redis_url: str | None, n: int, out: Any) -> None:
    out.put(asyncio.run(_throughput(url, redis_url, n, 100)))


def throughput(redis: RedisServer, n: int) -> dict[str, Any]:
    from .server import start_server

    ctx = multiprocessing.get_context("spawn")
    rates: dict[str, list[float]] = {"redis": [], "memory": []}
    with start_server() as server:
        for _ in range(3):  # alternated, medians: the machine is shared
            for kind in ("memory", "redis"):
                out = ctx.Queue()
                p = ctx.Process(
                    target=_throughput_worker,
                    args=(server.json_url, redis.url if kind == "redis" else None, n, out),
                )
                p.start()
                rates[kind].append(out.get(timeout=300))
                p.join(30)
    med = {k: sorted(v)[1] for k, v in rates.items()}
    return {
        "memory_calls_s": round(med["memory"]),
        "redis_calls_s": round(med["redis"]),
        "ratio": round(med["redis"] / med["memory"], 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.redis_shared", description=__doc__)
    p.add_argument("--procs", type=int, default=8)
    p.add_argument("--callers", type=int, default=200)
    p.add_argument("--seconds", type=float, default=20.0, help="length of each sharing run")
    p.add_argument("-n", "--requests", type=int, default=3000, help="calls per throughput run")
    p.add_argument("--only", choices=("sharing", "latency", "throughput", "outage"))
    args = p.parse_args(argv)
    figures: dict[str, Any] = {}
    with RedisServer() as redis:
        if args.only in (None, "latency"):
            figures["latency"] = latency(redis, args.requests)
        if args.only in (None, "throughput"):
            figures["throughput"] = throughput(redis, args.requests)
        if args.only in (None, "sharing"):
            figures["sharing"] = sharing(args, redis, outage=False)
        if args.only in (None, "outage"):
            figures["outage"] = sharing(args, redis, outage=True)
    print(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
