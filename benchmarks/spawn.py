"""Running one measurement in a fresh interpreter, the way every target is measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_worker(spec: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """The worker's result (its last stdout line, JSON), or ``{"skipped": why}``."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return {"skipped": f"worker failed: {tail}"}
    return json.loads(lines[-1])
