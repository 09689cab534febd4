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
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.value is None or math.isnan(self.value):
            return "not measured"
        ok = self.value >= self.limit if self.at_least else self.value <= self.limit
        return "met" if ok else "MISSED"


def _get(results: Results, name: str, mode: str, key: str) -> float | None:
    r = results.get((name, mode))
    if not r or "skipped" in r or r.get("errors"):
        return None
    return r[key]


def ratio(results: Results, a: str, b: str, mode: str, key: str = "rps") -> float | None:
    x, y = _get(results, a, mode, key), _get(results, b, mode, key)
    if x is None or y is None or not y:
        return None
    return x / y


def checks(results: Results, imports: dict[str, dict[str, Any]]) -> list[Check]:
    out: list[Check] = []
    for mode in MODES:
        out += [
            Check(
                f"core async {mode}: ≥ 10x openai SDK req/s",
                ratio(results, "core", "openai", mode),
                10,
                True,
            ),
            Check(
                f"core async {mode}: ≥ 0.5x raw aiohttp req/s",
                ratio(results, "core", "raw-aiohttp", mode),
                0.5,
                True,
            ),
            Check(
                f"core async {mode}: p99 ≤ 1/5 of openai SDK's",
                ratio(results, "core", "openai", mode, "p99"),
                0.2,
                False,
            ),
        ]
    for mode, call in (("json", "ainvoke"), ("stream", "astream")):
        out.append(
            Check(
                f"ChatHolySheep.{call}: ≥ 4x ChatOpenAI",
                ratio(results, "chat-holysheep", "chat-openai", mode),
                4,
                True,
            )
        )
    for mode, call in (("json", "achat"), ("stream", "astream_chat")):
        out.append(
            Check(
                f"HolySheep.{call}: ≥ 8x OpenAILike",
                ratio(results, "llama-holysheep", "openai-like", mode),
                8,
                True,
            )
        )
    ours = imports.get("langchain_holysheep", {}).get("median")
    theirs = imports.get("langchain_openai", {}).get("median")
    out.append(
        Check(
            "import langchain_holysheep ≤ 0.5x import langchain_openai",
            ours / theirs if ours and theirs else None,
            0.5,
            False,
        )
    )
    for mode in MODES:
        out.append(
            Check(
                f"resilience on/off {mode}: costs ≤ 10% req/s",
                ratio(results, "core-resilient", "core-bare", mode),
                0.9,
                True,
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
        f"(sync clients: {meta['threads']} threads), after {meta['warmup']} warm-up calls; "
        f"{meta['rounds']} round(s), median round shown. Server: {meta['server']}.",
        "",
        f"Libraries: {meta['versions']}",
        "",
        "## Throughput and latency",
        "",
        "| target | mode | req/s | p50 ms | p99 ms | client CPU µs/call | server busy "
        "| x openai SDK | x raw aiohttp | x its peer |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for t in TARGETS:
        for mode in MODES:
            r = results.get((t.name, mode))
            if r is None:
                continue
            if "skipped" in r:
                lines.append(f"| {t.label} | {mode} | skipped: {r['skipped']} |||||||| ")
                continue
            err = f" ({r['errors']} errors: {r['first_error']})" if r.get("errors") else ""
            peer = PEER.get(t.name)
            lines.append(
                f"| {t.label}{err} | {mode} | {r['rps']:,.0f} | {r['p50'] * 1e3:.1f} "
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
        "## Targets",
        "",
        "| goal | measured | verdict |",
        "|---|--:|---|",
    ]
    lines += [f"| {c.goal} | {_fmt(c.value)} | {c.verdict} |" for c in verdicts]
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
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5), sharey=True)
    for col, mode in enumerate(MODES):
        rows = [(t, results.get((t.name, mode))) for t in async_targets]
        rows = [(t, r) for t, r in rows if r and "skipped" not in r]
        labels = [t.label for t, _ in rows]
        colours = [
            COLOURS["limit"] if t.name == "raw-aiohttp" else COLOURS["ours" if t.ours else "peer"]
            for t, _ in rows
        ]
        for row, (key, scale, title, unit) in enumerate(
            (
                ("rps", 1, "requests per second (higher is better)", ""),
                ("p99", 1e3, "p99 latency, ms (lower is better)", " ms"),
            )
        ):
            ax = axes[row][col]
            values = [r[key] * scale for _, r in rows]
            y = range(len(rows))
            ax.barh(list(y), values, color=colours)
            ax.set_xscale("log")
            ax.set_yticks(list(y), labels)
            ax.invert_yaxis()
            ax.set_title(f"{mode}: {title}", fontsize=11)
            ax.grid(axis="x", which="both", alpha=0.3)
            for i, v in enumerate(values):
                ax.text(
                    v * 1.05,
                    i,
                    f"{v:,.0f}{unit}" if v >= 10 else f"{v:.1f}{unit}",
                    va="center",
                    fontsize=8,
                )
            ax.set_xlim(right=max(values) * 4 if values else 10)
    fig.suptitle(
        f"holysheep vs peers · N={meta['n']}, C={meta['c']} · {meta['server']} · "
        f"{meta['machine']}\ngreen: holysheep · grey: peers · dark: raw aiohttp (practical limit)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
