"""Shared by the recorded suites: the models they use and their price, and the cassette
sources file."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

MODEL = "deepseek-v3.2"
EMBEDDING_MODEL = "text-embedding-3-small"
PRICE_PER_TOKEN = Decimal("0.42") / 1_000_000
"""USD per token of MODEL, input and output alike (the provider's guide)."""

SOURCES_FILE = "SOURCES.md"
_HEADER = """# Where the cassettes came from

Written by `make record` (`tests/recorded/conftest.py`), one row per cassette it re-recorded:
`emulator` is the bundled `holysheep_core.emulator` (no key), `live API` is the real service
(recorded with `HOLYSHEEP_API_KEY` set). Keys and credential headers are filtered out before
anything is written (`holysheep_core.testing`); `tests/test_cassette_hygiene.py` checks.

| cassette | source | recorded (UTC) |
|---|---|---|
"""


def update_sources(root: Path, notes: Mapping[str, str]) -> None:
    """Merge ``{cassette path: "source | date"}`` into ``root/SOURCES.md``; rows of
    cassettes that no longer exist are dropped."""
    path = root / SOURCES_FILE
    rows = _read_rows(path)
    rows.update(notes)
    kept = {name: note for name, note in rows.items() if (root / name).exists()}
    lines = [f"| {name} | {note} |" for name, note in sorted(kept.items())]
    path.write_text(_HEADER + "\n".join(lines) + "\n", encoding="utf-8")


def _read_rows(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].endswith(".yaml"):
            rows[cells[0]] = f"{cells[1]} | {cells[2]}"
    return rows
