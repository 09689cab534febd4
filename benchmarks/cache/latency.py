"""Response cache: what a hit costs against a miss, and how far the semantic search goes.

``python -m benchmarks.cache.latency`` starts the emulator and a ``redis-server`` each in a
process of their own (loopback), then times, with the async client (aiohttp):

* a miss: the call sent to the emulator, with no cache;
* a hit, in memory and on Redis: one at a time (latency) and 50 at a time (throughput);
* the semantic search: ``nearest()`` over one scope's vectors, by scope size and dimension,
  and reading a scope's vectors from Redis, the first time and when they are unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from holysheep_core import AsyncHolySheepClient, ResponseCache
from holysheep_core.cache.semantic import nearest, pack

from ..load import drive_async, quantile

KEY = "hs-bench-cache"
MODEL = "deepseek-v3.2"
PROMPTS = [
    [{"role": "user", "content": f"What is the capital of country {i}?"}] for i in range(1000)
]
"""Distinct prompts in turn, so concurrent hits do not share one in-flight lookup (which
would make them cheaper than a hit really is)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@contextmanager
def emulator_process() -> Iterator[str]:
    port = _free_port()
    code = f"from holysheep_core.emulator import serve; serve(port={port}, on_ready=None)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        _wait_port(port)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def redis_process() -> Iterator[str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            _wait_port(port)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


def _row(label: str, sequential: list[float], rps: float) -> str:
    s = sorted(sequential)
    return (
        f"| {label} | {quantile(s, 0.5) * 1e3:.3f} | {quantile(s, 0.99) * 1e3:.3f} | {rps:,.0f} |"
    )


async def _measure(call: Callable[[], Awaitable[str]], n: int, c: int) -> tuple[list[float], float]:
    expect = await call()
    one = await drive_async(call, n, 1, expect)
    many = await drive_async(call, n * 3, c, expect)
    assert not (one.errors or one.wrong or many.errors or many.wrong), (one, many)
    return one.latencies, len(many.latencies) / many.wall


async def calls(url: str, redis_url: str, n: int, c: int) -> None:
    print("| call | p50 ms (one at a time) | p99 ms | calls/s (50 at a time) |")
    print("|---|---|---|---|")
    caches = {
        "miss: sent to the emulator (no cache)": None,
        "hit, in memory": ResponseCache(),
        "hit, on Redis": ResponseCache(redis=redis_url, namespace="bench"),
    }
    for label, cache in caches.items():
        async with AsyncHolySheepClient(api_key=KEY, base_url=url, cache=cache) as client:
            for prompt in PROMPTS:  # warm: every prompt cached before timing
                await client.chat_completion(model=MODEL, messages=prompt)
            turn = itertools.cycle(PROMPTS)

            async def call(client: AsyncHolySheepClient = client, turn: Any = turn) -> str:
                reply = await client.chat_completion(model=MODEL, messages=next(turn))
                return "hit" if reply.cache_hit else "sent"

            lat, rps = await _measure(call, n, c)
            print(_row(label, lat, rps))
            if cache is not None:
                assert client.stats().requests == len(PROMPTS), client.stats()
                cache.close()


def search_scale(redis_url: str) -> None:
    import random

    import redis

    from holysheep_core.cache.redis import RedisBackend

    rng = random.Random(14)
    print(
        "\n| vectors in the scope | dimensions | nearest() ms | first read from Redis ms "
        "| read when unchanged ms |"
    )
    print("|---|---|---|---|---|")
    r = redis.Redis.from_url(redis_url)
    scope = "0" * 64
    for dim in (256, 1536):
        for n in (1_000, 10_000, 100_000):
            if n * dim > 16_000_000:  # 100,000 x 256 float32 is 100 MB per read
                continue
            vectors = {f"{i:064x}": pack([rng.gauss(0, 1) for _ in range(dim)]) for i in range(n)}
            query = pack([rng.gauss(0, 1) for _ in range(dim)])
            t0 = time.perf_counter()
            for _ in range(5):
                nearest(query, vectors)
            per_search = (time.perf_counter() - t0) / 5
            r.delete(f"bench:cache:v:{scope}")
            items = list(vectors.items())
            for i in range(0, n, 5000):
                r.hset(f"bench:cache:v:{scope}", mapping=dict(items[i : i + 5000]))
            r.set(f"bench:cache:sv:{scope}", 1)
            backend = RedisBackend(redis_url, namespace="bench", max_entries=200_000)
            t0 = time.perf_counter()
            assert len(backend.vectors(scope)) == n
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            for _ in range(20):
                backend.vectors(scope)
            again = (time.perf_counter() - t0) / 20
            backend.close()
            print(
                f"| {n:,} | {dim} | {per_search * 1e3:.1f} | {first * 1e3:.1f} "
                f"| {again * 1e3:.2f} |"
            )
    r.delete(f"bench:cache:v:{scope}", f"bench:cache:sv:{scope}")
    r.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1000, help="calls one at a time (x3 at 50)")
    ap.add_argument("-c", type=int, default=50)
    args = ap.parse_args()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores; emulator and redis-server "
        "in processes of their own"
    )
    with emulator_process() as url, redis_process() as redis_url:
        asyncio.run(calls(url, redis_url, args.n, args.c))
        search_scale(redis_url)


if __name__ == "__main__":
    main()
