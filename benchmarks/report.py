"""Turning one run's figures into ratios, target verdicts, a markdown table and a chart."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .targets import TARGETS, by_name

__all__ = ["Check", "checks", "markdown", "png"]

Results = dict[tuple[str, str], dict[str, Any]]

PEER = {
    "core": "openai",
    "core-httpx": "raw-httpx",
    "chat-holysheep": "chat-openai",
    "llama-holysheep": "openai-like",
    "core-resilient": "core-bare",
    "core-sync": "openai-sync",
}
MODES = ("json", "stream")
MODE_WORDS = {
    "json": "json",
    "stream": "stream",
}


@dataclass(frozen=True)
class Check:
    goal: str
    value: float | None
    limit: float
    at_least: bool
    """True: value must be >= limit; False: value must be <= limit."""
    cpu: float | None = None
    """For a throughput goal, the same ratio from client CPU time per call: slower to move
    when other work shares the machine, so a cross-check of the req/s verdict."""

    @property
    def verdict(self) -> str:
        if self.value is None or math.isnan(self.value):
            return "not measured"
        ok = self.value >= self.limit if self.at_least else self.value <= self.limit
        return "met" if ok else "MISSED"


def _get(results: Results, name: str, mode: str, key: str) -> float | None:
    r = results.get((name, mode))
    if not r or "skipped" in r or r.get("errors") or r.get("wrong"):
        # A run with failed calls or wrong answers measured something else: no verdict.
        return None
    return r[key]


def ratio(results: Results, a: str, b: str, mode: str, key: str = "rps") -> float | None:
    x, y = _get(results, a, mode, key), _get(results, b, mode, key)
    if x is None or y is None or not y:
        return None
    return x / y


# (goal, ours, theirs, limit, kind): "rps" goals need ours/theirs >= limit, "p99" goals
# need ours/theirs <= limit.
GOALS = [
    ("core async {mode}: >= 10x openai SDK req/s", "core", "openai", 10, "rps"),
    ("core async {mode}: >= 0.5x raw aiohttp req/s", "core", "raw-aiohttp", 0.5, "rps"),
    ("core async {mode}: p99 <= 1/5 of openai SDK's", "core", "openai", 0.2, "p99"),
    ("ChatHolySheep.{lc}: >= 4x ChatOpenAI", "chat-holysheep", "chat-openai", 4, "rps"),
    ("HolySheep.{li}: >= 8x OpenAILike", "llama-holysheep", "openai-like", 8, "rps"),
    ("resilience on/off {mode}: costs <= 10% req/s", "core-resilient", "core-bare", 0.9, "rps"),
    ("OpenTelemetry on/off {mode}: costs <= 10% req/s", "core-otel", "core", 0.9, "rps"),
]
CALLS = {
    "json": {"lc": "ainvoke", "li": "achat"},
    "stream": {"lc": "astream", "li": "astream_chat"},
}


def checks(results: Results, imports: dict[str, dict[str, Any]]) -> list[Check]:
    out: list[Check] = []
    for goal, ours, theirs, limit, kind in GOALS:
        for mode in MODES:
            name = goal.format(mode=mode, **CALLS[mode])
            if kind == "p99":
                out.append(Check(name, ratio(results, ours, theirs, mode, "p99"), limit, False))
                continue
            cpu = ratio(results, theirs, ours, mode, "cpu_per_call")
            out.append(Check(name, ratio(results, ours, theirs, mode), limit, True, cpu))
    ours_s = imports.get("langchain_holysheep", {}).get("median")
    theirs_s = imports.get("langchain_openai", {}).get("median")
    out.append(
        Check(
            "import langchain_holysheep <= 0.5x import langchain_openai",
            ours_s / theirs_s if ours_s and theirs_s else None,
            0.5,
            False,
        )
    )
    return out


def _fmt(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}"


def markdown(
    meta: dict[str, Any],
    results: Results,
    imports: dict[str, dict[str, Any]],
    memory: dict[str, dict[str, Any]],
    verdicts: list[Check],
) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"{meta['when']} · {meta['machine']} · Python {meta['python']}",
        "",
        f"N = {meta['n']} calls per target and mode at concurrency C = {meta['c']} "
        f"(sync clients: {meta['threads']} threads), after {meta['warmup']} warm-up calls; a "
        f"fast target repeats its N calls until it ran {meta['min_seconds']:g} s. Each target "
        f"runs alone, in a fresh process and event loop; {meta['rounds']} round(s), the "
        f"median round shown. Server: {meta['server']}.",
        "",
        f"Libraries: {meta['versions']}",
        "",
        "## Throughput and latency",
        "",
        "| target | mode | calls | req/s | p50 ms | p99 ms | client CPU µs/call | server busy "
        "| x openai SDK | x raw aiohttp | x its peer |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for t in TARGETS:
        for mode in MODES:
            r = results.get((t.name, mode))
            if r is None:
                continue
            if "skipped" in r:
                lines.append(f"| {t.label} | {mode} | skipped: {r['skipped']} ||||||||| ")
                continue
            err = f" ({r['errors']} errors: {r['first_error']})" if r.get("errors") else ""
            if r.get("wrong"):
                err += f" ({r['wrong']} wrong answers)"
            peer = PEER.get(t.name)
            lines.append(
                f"| {t.label}{err} | {mode} | {r['n']:,} | {r['rps']:,.0f} | {r['p50'] * 1e3:.1f} "
                f"| {r['p99'] * 1e3:.1f} | {r['cpu_per_call'] * 1e6:,.0f} "
                f"| {r['server_busy']:.0%} "
                f"| {_fmt(ratio(results, t.name, 'openai', mode))} "
                f"| {_fmt(ratio(results, t.name, 'raw-aiohttp', mode))} "
                f"| {_fmt(ratio(results, t.name, peer, mode)) if peer else ''}"
                f"{' vs ' + by_name(peer).label if peer else ''} |"
            )
    lines += [
        "",
        "Server busy: the server's CPU time over the run's wall time (1 = one core saturated).",
        "",
        "Verdicts use req/s and p99 from the same run. The CPU-time ratio (the peer's client "
        "CPU per call over ours) is a cross-check that moves less when other work shares the "
        "machine.",
        "",
        "## Targets",
        "",
        "| goal | measured | verdict | CPU-time ratio |",
        "|---|--:|---|--:|",
    ]
    lines += [
        f"| {c.goal} | {_fmt(c.value)} | {c.verdict} | {_fmt(c.cpu) if c.cpu else ''} |"
        for c in verdicts
    ]
    lines += [
        "",
        "## Import time (fresh interpreter, median)",
        "",
        "| statement | ms | vs |",
        "|---|--:|---|",
    ]
    from .startup import IMPORTS

    for name, statement, peer in IMPORTS:
        fig = imports.get(name)
        if fig is None:
            continue
        if "skipped" in fig:
            lines.append(f"| `{statement}` | skipped: {fig['skipped']} | |")
            continue
        vs = ""
        if peer and imports.get(peer, {}).get("median"):
            vs = f"{fig['median'] / imports[peer]['median']:.2f}x `{peer}`"
        lines.append(f"| `{statement}` | {fig['median'] * 1e3:.0f} | {vs} |")
    if memory:
        lines += [
            "",
            "## Memory of one async client holding open connections",
            "",
            "| client | connections | RSS growth KiB | tracemalloc KiB |",
            "|---|--:|--:|--:|",
        ]
        for name, fig in memory.items():
            label = by_name(name).label
            if "skipped" in fig:
                lines.append(f"| {label} | skipped: {fig['skipped']} | | |")
                continue
            lines.append(
                f"| {label} | {fig['connections']} | {fig['rss_bytes'] / 1024:,.0f} "
                f"| {fig['traced_bytes'] / 1024:,.0f} |"
            )
    if meta.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in meta["notes"]]
    return "\n".join(lines) + "\n"


COLOURS = {"ours": "#1b9e77", "peer": "#9a9a9a", "limit": "#4d4d4d"}


def png(path: Path, meta: dict[str, Any], results: Results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    async_targets = [t for t in TARGETS if not t.sync]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    for col, mode in enumerate(MODES):
        rows = [(t, results.get((t.name, mode))) for t in async_targets]
        rows = [(t, r) for t, r in rows if r and "skipped" not in r]
        labels = [t.label for t, _ in rows]
        colours = [
            COLOURS["limit"] if t.name == "raw-aiohttp" else COLOURS["ours" if t.ours else "peer"]
            for t, _ in rows
        ]
        panels = (
            ("rps", 1, "requests per second (higher is better)", ""),
            ("p99", 1e3, "p99 latency, ms (lower is better)", " ms"),
        )
        for row, (key, scale, title, unit) in enumerate(panels):
            ax = axes[row][col]
            values = [r[key] * scale for _, r in rows]
            y = list(range(len(rows)))
            ax.barh(y, values, color=colours)
            ax.set_xscale("log")
            ax.set_yticks(y, labels)
            ax.invert_yaxis()  # the first target on top
            ax.set_title(f"{mode}: {title}", fontsize=11)
            ax.grid(axis="x", which="both", alpha=0.3)
            for i, ((t, _), v) in enumerate(zip(rows, values, strict=True)):
                text = f"{v:,.0f}{unit}" if v >= 10 else f"{v:.1f}{unit}"
                peer = PEER.get(t.name)
                times = ratio(results, t.name, peer, mode, key) if peer else None
                if times is not None and key == "rps":
                    text += f"  ({times:.1f}x its peer)"
                elif times is not None:
                    share = f"1/{1 / times:.0f}" if times < 0.5 else f"{times:.1f}x"
                    text += f"  ({share} of its peer's)"
                ax.text(v * 1.06, i, text, va="center", fontsize=8)
            ax.set_xlim(right=max(values) * 40 if values else 10)
    fig.suptitle(
        f"holysheep vs peers, async clients · N={meta['n']}, C={meta['c']} · {meta['server']} "
        f"· {meta['machine']}\ngreen: holysheep · grey: what users would pick instead · "
        "dark: raw aiohttp (the practical limit)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
