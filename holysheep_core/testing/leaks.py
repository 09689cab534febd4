"""Checking written cassettes for credentials: every byte, and every decoded value."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .scrub import _CREDENTIAL_BYTES, is_secret_header

__all__ = ["Leak", "find_leaks"]


@dataclass(frozen=True, slots=True)
class Leak:
    """One credential found in a cassette. It says where and what kind, never the value."""

    path: Path
    where: str
    kind: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind} at {self.where}"


def find_leaks(paths: Iterable[str | Path], secrets: Iterable[str] = ()) -> list[Leak]:
    """Credentials in these cassette files (directories are searched for ``*.yaml`` and
    ``*.json``): any of ``secrets``, in the raw bytes or base64-encoded; an ``hs-`` key or a
    ``Bearer``/``Basic`` token; a credential header (``Authorization``, cookies, ...).
    The parsed values are searched too (folded strings, ``!!binary`` bodies), so one leak
    may be reported twice."""
    needles = [s.encode() for s in secrets if s]
    needles += [base64.b64encode(n) for n in needles]
    leaks: list[Leak] = []
    for path in _cassette_files(paths):
        raw = path.read_bytes()
        leaks += _scan_bytes(path, "file", raw, needles)
        leaks += _scan_structure(path, raw, needles)
    return leaks


def _cassette_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    for p in map(Path, paths):
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.suffix in (".yaml", ".yml", ".json"))
        else:
            yield p


def _scan_bytes(path: Path, where: str, data: bytes, needles: list[bytes]) -> list[Leak]:
    leaks = []
    for needle in needles:
        if needle in data:
            line = data[: data.index(needle)].count(b"\n") + 1
            leaks.append(Leak(path, f"{where} line {line}", "a given secret"))
    for match in _CREDENTIAL_BYTES.finditer(data):
        line = data[: match.start()].count(b"\n") + 1
        kind = "a bearer token" if match.group(0)[:1] in (b"B", b"b") else "an hs- key"
        leaks.append(Leak(path, f"{where} line {line}", kind))
    return leaks


def _scan_structure(path: Path, raw: bytes, needles: list[bytes]) -> list[Leak]:
    try:
        import yaml
    except ImportError:  # pragma: no cover - vcrpy depends on PyYAML
        return []
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError:
        return [Leak(path, "file", "unreadable YAML")]
    leaks = []
    for i, interaction in enumerate((doc or {}).get("interactions") or []):
        for part in ("request", "response"):
            headers = (interaction.get(part) or {}).get("headers") or {}
            leaks += [
                Leak(path, f"interaction {i} {part} headers", f"credential header {name!r}")
                for name in headers
                if is_secret_header(str(name))
            ]
        for where, value in _values(interaction, f"interaction {i}"):
            leaks += _scan_bytes(path, where, value, needles)
    return leaks


def _values(value: Any, where: str) -> Iterator[tuple[str, bytes]]:
    # Decoded, a value is whole again: a long string YAML folded over lines, or bytes it
    # stored as !!binary (base64 in the file).
    if isinstance(value, bytes):
        yield where, value
    elif isinstance(value, str):
        yield where, value.encode()
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _values(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _values(v, f"{where}[{i}]")
