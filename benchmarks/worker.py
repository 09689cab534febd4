"""One measurement in a fresh process: ``python -m benchmarks.worker '<json spec>'``.

A process per target keeps one library's imports, garbage and pools from slowing the
next; inside it the target gets its own event loop, a warm-up, then the timed calls.
Prints one JSON object: the run's figures, or ``{"skipped": reason}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import sys
import time
from typing import Any

from .load import Run, drive_async, drive_threads, quantile
from .payloads import ANSWER
from .server import process_cpu_seconds
from .targets import by_name

# A fast target repeats its batch of N calls until it has run ``min_seconds``, so a short
# burst of other work on the machine cannot decide its figure alone; at most this many.
MAX_BATCHES = 10


def _summary(run: Run, cpu: float, server_cpu: float) -> dict[str, Any]:
    lat = sorted(run.latencies)
    done = len(lat)
    return {
        "n": done + run.errors,
        "ok": done,
        "errors": run.errors,
        "wrong": run.wrong,
        "first_error": run.first_error,
        "wall": run.wall,
        "rps": done / run.wall if run.wall else 0.0,
        "p50": quantile(lat, 0.50),
        "p90": quantile(lat, 0.90),
        "p99": quantile(lat, 0.99),
        "cpu_per_call": cpu / max(done, 1),
        "server_busy": server_cpu / run.wall if run.wall else 0.0,
    }


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    target = by_name(spec["target"])
    mode, url, n, c = spec["mode"], spec["url"], spec["n"], spec["c"]
    warmup, server_pid = spec["warmup"], spec.get("server_pid")
    min_seconds = spec.get("min_seconds", 0.0)

    def server_cpu() -> float:
        return process_cpu_seconds(server_pid) if server_pid else 0.0

    if target.sync:
        threads = spec["threads"]
        call, close = target.open(url, mode, threads, **target.settings)
        try:
            drive_threads(call, warmup, threads, ANSWER)
            gc.collect()
            cpu0, srv0 = time.process_time(), server_cpu()
            run = drive_threads(call, n, threads, ANSWER)
            while run.wall < min_seconds and len(run.latencies) < n * MAX_BATCHES:
                run.add(drive_threads(call, n, threads, ANSWER))
            cpu, srv = time.process_time() - cpu0, server_cpu() - srv0
        finally:
            close()
        return _summary(run, cpu, srv)

    async def main() -> dict[str, Any]:
        call, close = await target.open(url, mode, c, **target.settings)
        try:
            await drive_async(call, warmup, c, ANSWER)
            gc.collect()
            cpu0, srv0 = time.process_time(), server_cpu()
            run = await drive_async(call, n, c, ANSWER)
            while run.wall < min_seconds and len(run.latencies) < n * MAX_BATCHES:
                run.add(await drive_async(call, n, c, ANSWER))
            cpu, srv = time.process_time() - cpu0, server_cpu() - srv0
        finally:
            await close()
        return _summary(run, cpu, srv)

    return asyncio.run(main())


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _sockets() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed since listdir
            n += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return n


def measure_memory(spec: dict[str, Any]) -> dict[str, Any]:
    """One client holding ``connections`` open connections: what it added to the process.

    A first client makes a call and is closed, so lazy imports and one-time caches are
    paid before the baseline; then the measured client opens its connections together.
    """
    import importlib
    import tracemalloc

    from .startup import MEMORY_TARGETS

    name, url, k, traced = spec["memory"], spec["url"], spec["connections"], spec["traced"]
    for module in MEMORY_TARGETS[name]:
        importlib.import_module(module)
    target = by_name(name)

    async def main() -> dict[str, Any]:
        call, close = await target.open(url, "json", k)
        await call()
        await close()
        gc.collect()
        socks0, rss0 = _sockets(), _rss()
        if traced:
            tracemalloc.start()
        call, close = await target.open(url, "json", k)
        texts = await asyncio.gather(*(call() for _ in range(k)))
        assert all(t == ANSWER for t in texts)
        gc.collect()
        figures: dict[str, Any] = {"connections": _sockets() - socks0}
        if traced:
            figures["traced_bytes"] = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
        else:
            figures["rss_bytes"] = _rss() - rss0
        await close()
        return figures

    return asyncio.run(main())


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        result = measure_memory(spec) if "memory" in spec else measure(spec)
    except ImportError as exc:
        result = {"skipped": f"not importable yet: {exc}"}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: some peers' pools warn on exit


if __name__ == "__main__":
    main()
