"""The server's usage and the core's price, written onto responses and read back by handlers.

A final response carries the usage twice, for two readers: ``raw["usage"]`` (OpenAI's shape,
which LlamaIndex's ``TokenCountingHandler`` reads instead of re-tokenising) and flat keys in
``additional_kwargs`` for people and for our handlers:

* ``prompt_tokens``, ``completion_tokens``, ``total_tokens``: as the server reported them;
* ``cached_tokens`` (part of the prompt) and ``reasoning_tokens`` (part of the completion);
* ``cost_usd``: USD as a float from the client's price table; ``None`` when the model has
  no price or the server sent no usage (unknown, never $0).

``cost_usd`` is present on exactly one response per call (the last one of a stream), which
is how the handlers know a call is finished and never count it twice; ``raw["model"]`` names
the model that served it (a fallback model, when the call fell back).

Embeddings have no such response: LlamaIndex hands its ``EMBEDDING`` callbacks and its
``EmbeddingEndEvent`` only the texts and the vectors. So ``HolySheepEmbedding`` reports each
request itself, as a :class:`HolySheepEmbeddingUsageEvent` on the instrumentation dispatcher
(and straight to the cost handlers of its own callback manager).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from llama_index.core.instrumentation.events import BaseEvent

from holysheep_core import EmbeddingResponse, TokenUsage, Usage

__all__ = [
    "CACHE_HIT_KEY",
    "COST_KEY",
    "LLM_CLASS_NAME",
    "HolySheepEmbeddingUsageEvent",
    "cache_hit",
    "embedding_usage",
    "served_model",
    "usage_fields",
    "usage_of",
]

COST_KEY = "cost_usd"
LLM_CLASS_NAME = "holysheep_llm"
"""``HolySheep.class_name()``: how callback payloads name our LLM."""
CACHE_HIT_KEY = "cache_hit"
"""True on the final response of a call a ``ResponseCache`` answered (no request, $0)."""


def usage_fields(usage: Usage | None, cost: Decimal | None) -> dict[str, Any]:
    """The ``additional_kwargs`` entries of a call's final response."""
    fields: dict[str, Any] = {}
    if usage is not None:
        fields.update(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
        )
    fields[COST_KEY] = None if cost is None else float(cost)
    return fields


def cache_hit(response: Any) -> bool:
    """Whether a final response came from a ``ResponseCache``: no request, nothing to count."""
    extra = getattr(response, "additional_kwargs", None)
    return isinstance(extra, dict) and bool(extra.get(CACHE_HIT_KEY))


def usage_of(response: Any) -> TokenUsage | None:
    """The tokens and cost of the call a final response closes; None for any other response
    (a streamed chunk before the last, or a response from another LLM)."""
    extra = getattr(response, "additional_kwargs", None)
    if not isinstance(extra, dict) or COST_KEY not in extra or cache_hit(response):
        return None  # a cache hit made no request and cost nothing
    raw = getattr(response, "raw", None)
    wire = raw.get("usage") if isinstance(raw, dict) else None
    usage = Usage.model_validate(wire) if isinstance(wire, dict) else None
    cost = extra[COST_KEY]
    # repr() of the float is the shortest string that round-trips, so prices with a few
    # decimals come back exact and sums stay exact.
    return TokenUsage.from_usage(usage, None if cost is None else Decimal(repr(cost)))


def served_model(response: Any) -> str | None:
    """The model a final response says served the call, if it names one."""
    raw = getattr(response, "raw", None)
    model = raw.get("model") if isinstance(raw, dict) else None
    return model if isinstance(model, str) and model else None


class HolySheepEmbeddingUsageEvent(BaseEvent):
    """One embeddings request of ``HolySheepEmbedding``: the tokens the server reported and
    their USD from the client's price table (``usage.cost_usd`` None when the model has no
    price). Sent once per request; a text served from an embeddings cache sends none."""

    model: str
    usage: TokenUsage

    @classmethod
    def class_name(cls) -> str:
        return "HolySheepEmbeddingUsageEvent"


def embedding_usage(response: EmbeddingResponse) -> TokenUsage:
    """The tokens and cost of one embeddings request."""
    wire = response.usage
    usage = (
        None
        if wire is None
        else Usage(prompt_tokens=wire.prompt_tokens, total_tokens=wire.total_tokens)
    )
    return TokenUsage.from_usage(usage, response.cost_usd)
