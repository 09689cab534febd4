"""What a chat request is, for the cache: its exact key, its semantic scope and its prompt.

Pure functions of the wire body the client is about to send, so the sync and async
clients, and the in-memory and Redis backends, agree on every key.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["RequestKey", "is_sampled", "request_key", "same_specifics"]

# Body fields that do not change the answer: how it is delivered, or who asked.
_DELIVERY_ONLY = frozenset({"stream", "stream_options", "user", "metadata", "store"})


@dataclass(frozen=True, slots=True)
class RequestKey:
    """The cache's view of one chat request."""

    exact: str
    """Digest of the canonical request: model, messages, tools, tool_choice,
    response_format and every other parameter that changes the answer."""
    scope: str
    """Digest of everything but the last user message: model, system prompt and earlier
    turns, tools and parameters. A semantic match never leaves its scope."""
    prompt: str | None
    """The last user message's text, which the semantic cache embeds; None when the
    request must never be answered by a neighbour (it follows a tool result, or its last
    message is not a plain-text user message)."""
    model: str


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def is_sampled(body: Mapping[str, Any]) -> bool:
    """Whether the request asks for a random answer: ``n > 1``, or a temperature above 0
    without a ``seed``. An unset temperature counts as deterministic enough to cache (the
    caller did not ask for variety); set one above 0 to opt out."""
    if (body.get("n") or 1) > 1:
        return True
    temperature = body.get("temperature")
    return temperature is not None and temperature > 0 and body.get("seed") is None


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, Mapping) and p.get("type") == "text" for p in content
    ):
        return "\n".join(str(p.get("text", "")) for p in content)
    return None  # images, audio, files: no text embedding can stand for them


def request_key(body: Mapping[str, Any], *, semantic: bool = True) -> RequestKey:
    """The keys of a chat request body (as :func:`holysheep_core.params.build_chat_body`
    builds it); without ``semantic``, no scope ("") and no prompt."""
    canonical = {k: v for k, v in body.items() if k not in _DELIVERY_ONLY}
    messages = list(canonical.get("messages") or ())
    last = messages[-1] if messages else None
    prompt = None
    if isinstance(last, Mapping) and last.get("role") == "user":
        prompt = _text(last.get("content"))
    if not semantic:
        return RequestKey(_digest(canonical), "", None, str(body.get("model")))
    context = {**canonical, "messages": messages[:-1] if prompt is not None else messages}
    return RequestKey(
        exact=_digest(canonical),
        scope=_digest(context),
        prompt=prompt,
        model=str(body.get("model")),
    )


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NEGATION = re.compile(
    r"\b(?:not|no|never|none|nothing|nobody|nowhere|neither|nor|without|cannot|\w+n't)\b",
    re.IGNORECASE,
)


def same_specifics(a: str, b: str) -> bool:
    """Whether two prompts carry the same numbers (in order) and the same negations: the
    near-misses embeddings are worst at ("15% of 240" / "15% of 420", "contains gluten" /
    "does not contain gluten"). A semantic match needs this as well as the threshold."""
    if _NUMBER.findall(a) != _NUMBER.findall(b):
        return False
    return sorted(m.lower() for m in _NEGATION.findall(a)) == sorted(
        m.lower() for m in _NEGATION.findall(b)
    )
