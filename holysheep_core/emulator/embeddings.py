"""Feature-hashed bag-of-words embeddings: stable, and close for texts sharing words."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

from .tokens import count_tokens
from .validation import EmbeddingRequest
from .words import content_words

__all__ = ["embed", "embeddings_body"]


def _features(text: str) -> list[str]:
    return content_words(text) or text.lower().split()


def embed(text: str, dimensions: int) -> list[float]:
    """An L2-normalised vector of ``dimensions`` floats for text.

    Each content word (see ``content_words``; without any, each lower-cased word) adds ±1 at
    a position and with a sign both taken from its BLAKE2b hash, so the vector is the same in
    every process. A text whose features cancel out gets the unit vector on the first axis.
    """
    vector = [0.0] * dimensions
    for feature in _features(text):
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        position = int.from_bytes(digest[:4], "little") % dimensions
        vector[position] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0:
        vector[0] = norm = 1.0
    return [x / norm for x in vector]


def _encoded(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        # The OpenAI SDK asks for base64 by default: little-endian float32s.
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def embeddings_body(request: EmbeddingRequest) -> dict[str, Any]:
    """The ``list`` of ``embedding`` objects, with usage counted by ``count_tokens``."""
    tokens = sum(map(count_tokens, request.inputs))
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": _encoded(embed(text, request.dimensions), request.encoding_format),
        }
        for i, text in enumerate(request.inputs)
    ]
    return {
        "object": "list",
        "data": data,
        "model": request.model_id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
