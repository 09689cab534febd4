"""Offering load: ``n`` calls at concurrency ``c`` from tasks (async) or threads (sync),
each call timed on its own. Pure measurement, no knowledge of what is being called."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

__all__ = ["Run", "drive_async", "drive_threads", "quantile"]


@dataclass
class Run:
    """One timed batch of calls. Seconds throughout."""

    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    wrong: int = 0
    """Calls that returned, but not the expected text."""

    def add(self, other: Run) -> None:
        """Append another batch timed the same way."""
        self.wall += other.wall
        self.latencies += other.latencies
        self.errors += other.errors
        self.wrong += other.wrong
        self.first_error = self.first_error or other.first_error

    def fail(self, exc: BaseException) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = f"{type(exc).__name__}: {exc}"[:300]


def quantile(ordered: list[float], q: float) -> float:
    """Nearest-rank quantile of sorted samples."""
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered)) - 1))]


async def drive_async(call: Callable[[], Awaitable[str]], n: int, c: int, expect: str) -> Run:
    """``c`` tasks take calls from one counter until ``n`` were made."""
    run = Run()
    left = n
    lat = run.latencies
    clock = time.perf_counter

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            t0 = clock()
            try:
                text = await call()
            except Exception as exc:
                run.fail(exc)
                continue
            lat.append(clock() - t0)
            if text != expect:
                run.wrong += 1

    t0 = clock()
    await asyncio.gather(*(worker() for _ in range(min(c, n))))
    run.wall = clock() - t0
    return run


def drive_threads(call: Callable[[], str], n: int, threads: int, expect: str) -> Run:
    """``threads`` threads take calls from one counter until ``n`` were made."""
    run = Run()
    tickets = itertools.count()
    lock = threading.Lock()
    clock = time.perf_counter

    def worker() -> None:
        mine: list[float] = []
        while next(tickets) < n:
            t0 = clock()
            try:
                text = call()
            except Exception as exc:
                with lock:
                    run.fail(exc)
                continue
            mine.append(clock() - t0)
            if text != expect:
                with lock:
                    run.wrong += 1
        with lock:
            run.latencies.extend(mine)

    t0 = clock()
    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(worker) for _ in range(threads)]:
            f.result()
    run.wall = clock() - t0
    return run
