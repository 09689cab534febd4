"""What a client costs before its first request: import time, and memory with 100 open
connections. Each figure comes from fresh processes, so nothing is already imported."""

from __future__ import annotations

import statistics
import subprocess
import sys
from typing import Any

from .spawn import ROOT, run_worker

__all__ = ["IMPORTS", "MEMORY_TARGETS", "import_times", "memory"]


# (name, statement, the peer it is compared with). The "floor" rows are what the framework
# itself costs to import: an integration built on it cannot import in less.
IMPORTS: tuple[tuple[str, str, str | None], ...] = (
    ("holysheep_core", "import holysheep_core", "openai"),
    ("openai", "import openai", None),
    ("langchain_holysheep", "import langchain_holysheep", "langchain_openai"),
    ("langchain_openai", "import langchain_openai", None),
    (
        "floor: langchain_core BaseChatModel",
        "from langchain_core.language_models import BaseChatModel",
        "langchain_openai",
    ),
    ("llama_index_holysheep", "import llama_index_holysheep", "llama_index.llms.openai_like"),
    ("llama_index.llms.openai_like", "import llama_index.llms.openai_like", None),
    (
        "floor: llama_index FunctionCallingLLM",
        "from llama_index.core.llms.function_calling import FunctionCallingLLM",
        "llama_index.llms.openai_like",
    ),
)

# What the library needs before any client exists: imported before the baseline is taken.
MEMORY_TARGETS: dict[str, tuple[str, ...]] = {
    "core": ("holysheep_core", "aiohttp"),
    "openai": ("openai",),
}

_TIMER = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"


# A package being written may import as an empty namespace: ask for what it must export.
_PROBES = {
    "langchain_holysheep": "from langchain_holysheep import ChatHolySheep",
    "llama_index_holysheep": "from llama_index_holysheep import HolySheep",
}


def _importable(name: str, statement: str) -> str | None:
    """None if ``statement`` runs in a fresh interpreter, else the error's last line."""
    code = _PROBES.get(name, statement)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if out.returncode == 0:
        return None
    lines = out.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {out.returncode}"


def import_times(runs: int = 7) -> dict[str, dict[str, Any]]:
    """Median seconds each import statement takes in a fresh interpreter (site already
    loaded, interpreter start-up not counted). They take turns so drift touches all alike."""
    statements = {name: stmt for name, stmt, _ in IMPORTS}
    skipped = {m: err for m, stmt in statements.items() if (err := _importable(m, stmt))}
    samples: dict[str, list[float]] = {m: [] for m in statements if m not in skipped}
    for _ in range(runs):
        for m in list(samples):
            out = subprocess.run(
                [sys.executable, "-c", _TIMER.format(stmt=statements[m])],
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            if out.returncode != 0:  # the package does not import here: report, skip
                skipped[m] = (out.stderr.strip().splitlines() or ["failed"])[-1]
                del samples[m]
                continue
            samples[m].append(float(out.stdout.strip().splitlines()[-1]))
    result: dict[str, dict[str, Any]] = {m: {"skipped": e} for m, e in skipped.items()}
    for m, s in samples.items():
        result[m] = {"median": statistics.median(s), "min": min(s), "runs": len(s)}
    return result


def memory(url: str, connections: int = 100) -> dict[str, dict[str, Any]]:
    """Per library: RSS growth and tracemalloc'd bytes of one async client after it opened
    ``connections`` keep-alive connections (each measured in its own process)."""
    out: dict[str, dict[str, Any]] = {}
    for name in MEMORY_TARGETS:
        figures: dict[str, Any] = {}
        for traced in (False, True):
            spec = {"memory": name, "url": url, "connections": connections, "traced": traced}
            result = run_worker(spec, timeout=120)
            if "skipped" in result:
                figures = result
                break
            figures.update(result)
        out[name] = figures
    return out
