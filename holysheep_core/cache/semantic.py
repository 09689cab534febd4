"""The semantic index's arithmetic: vectors packed as float32, nearest neighbour by cosine.

The search runs in this process over one scope's vectors (a scope is one model, system
prompt, history, tools and parameters), with numpy when it is installed; see the README
for how far that goes, measured.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["nearest", "pack"]

_NUMPY: list[Any] = []


def _numpy() -> Any:
    """numpy if installed (it ships with llama-index-core; the core does not need it),
    imported on the first search so ``import holysheep_core`` stays cheap."""
    if not _NUMPY:
        try:
            import numpy
        except ImportError:  # pragma: no cover - exercised where numpy is absent
            numpy = None
        _NUMPY.append(numpy)
    return _NUMPY[0]


def pack(vector: Sequence[float]) -> bytes:
    """A unit vector as little-endian float32 bytes (normalised here, so a dot product is
    the cosine)."""
    norm = math.sqrt(math.fsum(x * x for x in vector)) or 1.0
    return struct.pack(f"<{len(vector)}f", *(x / norm for x in vector))


def nearest(query: bytes, candidates: Mapping[str, bytes]) -> tuple[str, float] | None:
    """The candidate closest to ``query`` and its cosine similarity; None for no candidate
    of the same dimension."""
    same = [(k, v) for k, v in candidates.items() if len(v) == len(query)]
    if not same:
        return None
    np = _numpy()
    if np is not None:
        q = np.frombuffer(query, dtype="<f4")
        matrix = np.frombuffer(b"".join(v for _, v in same), dtype="<f4").reshape(len(same), -1)
        scores = matrix @ q
        best = int(scores.argmax())
        return same[best][0], float(scores[best])
    n = len(query) // 4
    q = struct.unpack(f"<{n}f", query)
    best_key, best_score = "", -2.0
    for key, raw in same:
        score = math.fsum(a * b for a, b in zip(q, struct.unpack(f"<{n}f", raw), strict=True))
        if score > best_score:
            best_key, best_score = key, score
    return best_key, best_score
