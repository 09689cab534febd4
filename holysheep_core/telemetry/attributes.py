"""Attribute, event and metric names: the OpenTelemetry GenAI conventions, then our own.

The GenAI names follow the published semantic conventions (development status); the
``holysheep.*`` names are ours, for what the conventions have no word for: cost, the model
a fallback served, cache hits, and the policy events of a call.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

PROVIDER = "holysheep"

# --- GenAI semantic conventions --------------------------------------------------------
OPERATION = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
SYSTEM = "gen_ai.system"
"""The provider's name before ``gen_ai.provider.name`` replaced it; kept for backends
that still group by it."""
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
TOKEN_TYPE = "gen_ai.token.type"
OUTPUT_TYPE = "gen_ai.output.type"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
HTTP_STATUS = "http.response.status_code"

# Wire parameters and the request attributes they become.
_REQUEST_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "dimensions": "gen_ai.embeddings.dimension.count",
}

# --- ours ------------------------------------------------------------------------------
COST_USD = "holysheep.cost.usd"
SERVED_MODEL = "holysheep.served_model"
CACHE_HIT = "holysheep.cache.hit"
ATTEMPTS = "holysheep.attempts"
STREAM = "holysheep.request.stream"
ABANDONED = "holysheep.stream.abandoned"
REASON = "holysheep.reason"

EVENT_RETRY = "holysheep.retry"
EVENT_FALLBACK = "holysheep.fallback"
EVENT_BREAKER = "holysheep.breaker.transition"
EVENT_RATE_LIMIT = "holysheep.rate_limit.wait"
EVENT_BUDGET_REFUSED = "holysheep.budget.refused"
EVENT_CIRCUIT_REFUSED = "holysheep.breaker.refused"

# --- metrics ---------------------------------------------------------------------------
METRIC_DURATION = "gen_ai.client.operation.duration"
METRIC_TOKENS = "gen_ai.client.token.usage"
METRIC_TTFC = "gen_ai.client.operation.time_to_first_chunk"
METRIC_COST = "holysheep.client.cost"

# The bucket boundaries the conventions advise.
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip


@lru_cache(maxsize=64)
def server_attributes(base_url: str) -> dict[str, Any]:
    """``server.address`` and ``server.port`` of a base URL (worked out once per URL: the
    caller copies the dict)."""
    parts = urlsplit(base_url)
    out: dict[str, Any] = {}
    if parts.hostname:
        out[SERVER_ADDRESS] = parts.hostname
        out[SERVER_PORT] = parts.port or (443 if parts.scheme == "https" else 80)
    return out


def request_attributes(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request attributes the conventions name, from a chat or embeddings wire body."""
    out: dict[str, Any] = {}
    for param, name in _REQUEST_PARAMS.items():
        value = body.get(param)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = value
    stop = body.get("stop")
    if isinstance(stop, str):
        out["gen_ai.request.stop_sequences"] = (stop,)
    elif isinstance(stop, (list, tuple)) and stop:
        out["gen_ai.request.stop_sequences"] = tuple(str(s) for s in stop)
    n = body.get("n")
    if isinstance(n, int) and n != 1:
        out["gen_ai.request.choice.count"] = n
    fmt = body.get("response_format")
    if isinstance(fmt, Mapping):
        kind = fmt.get("type")
        out[OUTPUT_TYPE] = "json" if kind in ("json_object", "json_schema") else "text"
    encoding = body.get("encoding_format")
    if isinstance(encoding, str):
        out["gen_ai.request.encoding_formats"] = (encoding,)
    return out
