"""``python -m benchmarks``: every target against the fixed loopback server, then ratios.

One target at a time, each in a fresh process with its own event loop and a warm-up; the
figures, the target verdicts, a markdown table and a chart go to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from . import report, startup
from .server import start_server
from .spawn import run_worker
from .targets import TARGETS, resilience_available

RESULTS = Path(__file__).resolve().parent / "results"
VERSIONS = (
    "aiohttp",
    "httpx",
    "pydantic",
    "openai",
    "langchain-core",
    "langchain-openai",
    "llama-index-core",
    "llama-index-llms-openai-like",
)


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("-n", "--requests", type=int, default=3000, help="timed calls per target")
    p.add_argument("-c", "--concurrency", type=int, default=100, help="calls in flight")
    p.add_argument("--threads", type=int, default=16, help="threads for the sync clients")
    p.add_argument(
        "--min-seconds",
        type=float,
        default=2.0,
        help="repeat a fast target's N calls until it ran this long (at most 10 times)",
    )
    p.add_argument("--quick", action="store_true", help="N=500, 3 import runs: a fast check")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat every target this many times, report the median round",
    )
    p.add_argument(
        "--only",
        default="",
        help="comma-separated target names (default: all): " + ", ".join(t.name for t in TARGETS),
    )
    p.add_argument("--modes", default="json,stream")
    p.add_argument("--server", choices=("auto", "nginx", "fallback"), default="auto")
    p.add_argument("--no-imports", action="store_true", help="skip import timing")
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    p.add_argument("--import-runs", type=int, default=7)
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def _versions() -> str:
    out = []
    for name in VERSIONS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out.append(f"{name} {metadata.version(name)}")
    return ", ".join(out)


def _line(label: str, mode: str, r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"  {label:38} {mode:6} skipped: {r['skipped']}"
    err = f"  {r['errors']} ERRORS: {r['first_error']}" if r["errors"] else ""
    wrong = f"  {r['wrong']} WRONG ANSWERS" if r["wrong"] else ""
    return (
        f"  {label:38} {mode:6} {r['rps']:8,.0f} req/s  p50 {r['p50'] * 1e3:7.1f} ms  "
        f"p99 {r['p99'] * 1e3:7.1f} ms  cpu {r['cpu_per_call'] * 1e6:6,.0f} µs/call"
        f"{err}{wrong}"
    )


def _median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in rounds if "skipped" not in r]
    if not good:
        return rounds[-1]
    good.sort(key=lambda r: r["rps"])
    chosen = dict(good[(len(good) - 1) // 2])
    if len(good) > 1:
        chosen["rounds_rps"] = [r["rps"] for r in good]
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    n = 500 if args.quick else args.requests
    c = args.concurrency
    import_runs = 3 if args.quick else args.import_runs
    min_seconds = 0.5 if args.quick else args.min_seconds
    warmup = min(max(2 * c, n // 10), 1000)
    modes = [m for m in args.modes.split(",") if m]
    wanted = {s for s in args.only.split(",") if s}
    unknown = wanted - {t.name for t in TARGETS}
    if unknown:
        sys.exit(f"unknown targets: {sorted(unknown)}")
    targets = [t for t in TARGETS if not wanted or t.name in wanted]

    notes: list[str] = []
    server = start_server(prefer_nginx=args.server != "fallback")
    if args.server == "nginx" and server.kind != "nginx":
        server.stop()
        sys.exit("nginx is not installed (apt-get install nginx-light), and --server nginx")
    if server.kind != "nginx":
        notes.append(
            "nginx was not used (not installed, or --server fallback): a minimal asyncio "
            "server answered instead; see server busy for whether it held the fastest back."
        )
    knobs = resilience_available()
    notes.append(
        "resilience on/off toggles "
        + (", ".join(knobs) if knobs else "nothing yet")
        + " (the limiter, when present, is set far above the offered rate)."
    )
    meta = {
        "when": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} cores {platform.machine()}, "
        f"load {os.getloadavg()[0]:.1f} at start",
        "python": platform.python_version(),
        "n": n,
        "c": c,
        "min_seconds": min_seconds,
        "threads": args.threads,
        "warmup": warmup,
        "rounds": args.rounds,
        "server": f"{server.kind} on loopback" + (", 1 worker" if server.kind == "nginx" else ""),
        "versions": _versions(),
        "notes": notes,
    }
    print(f"benchmarks: N={n} C={c} warm-up={warmup}, {meta['server']}, {meta['machine']}")

    raw: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with server:
        # The server alone, driven by the fastest client for long enough that its CPU time
        # (read in 10 ms ticks) is accurate: how many calls per second could it answer?
        check_n = 3000 if args.quick else 10_000
        for mode in modes:
            spec = {
                "target": "raw-aiohttp",
                "mode": mode,
                "url": server.url(mode),
                "n": check_n,
                "c": c,
                "warmup": warmup,
                "server_pid": server.pid,
            }
            r = run_worker(spec, timeout=900)
            if "skipped" not in r and r["server_busy"] > 0:
                cap = r["rps"] / r["server_busy"]
                notes.append(
                    f"the server is not the limit ({mode}): while raw aiohttp made "
                    f"{r['rps']:,.0f} req/s it was busy {r['server_busy']:.0%} of one core, "
                    f"so it could answer about {cap:,.0f} req/s ({check_n:,} calls)."
                )
                print(
                    f"  server check {mode}: {r['rps']:,.0f} req/s with the server "
                    f"{r['server_busy']:.0%} busy: capacity ≈ {cap:,.0f} req/s"
                )
        for rnd in range(args.rounds):
            if args.rounds > 1:
                print(f"round {rnd + 1}/{args.rounds}")
            for t in targets:
                for mode in modes:
                    spec = {
                        "target": t.name,
                        "mode": mode,
                        "url": server.url(mode),
                        "n": n,
                        "c": c,
                        "warmup": warmup,
                        "threads": args.threads,
                        "server_pid": server.pid,
                        "min_seconds": min_seconds,
                    }
                    r = run_worker(spec, timeout=900)
                    raw.setdefault((t.name, mode), []).append(r)
                    print(_line(t.label, mode, r), flush=True)
        memory = {} if args.no_memory else startup.memory(server.json_url)
    results = {k: _median_round(v) for k, v in raw.items()}

    imports = {} if args.no_imports else startup.import_times(import_runs)
    verdicts = report.checks(results, imports)
    text = report.markdown(meta, results, imports, memory, verdicts)

    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (args.out / "latest.md").write_text(text)
    (args.out / f"{stamp}.md").write_text(text)
    raw_json = json.dumps(
        {
            "meta": meta,
            "results": {f"{k[0]}/{k[1]}": v for k, v in raw.items()},
            "imports": imports,
            "memory": memory,
        },
        indent=1,
    )
    (args.out / "latest.json").write_text(raw_json)
    (args.out / f"{stamp}.json").write_text(raw_json)
    report.png(args.out / "latest.png", meta, results)
    report.png(args.out / f"{stamp}.png", meta, results)

    print()
    print(text)
    print(f"written: {args.out / 'latest.md'}, {args.out / 'latest.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
