"""Helpers for the emulator tests: requests, SSE parsing and a strict reader of the wire format."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx
from openai.types import CreateEmbeddingResponse, Embedding, Model
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    chat_completion,
    chat_completion_chunk,
)
from openai.types.chat.chat_completion_message_function_tool_call import (
    ChatCompletionMessageFunctionToolCall,
    Function,
)
from openai.types.completion_usage import (
    CompletionTokensDetails,
    CompletionUsage,
    PromptTokensDetails,
)
from openai.types.create_embedding_response import Usage as EmbeddingUsage
from openai.types.shared import ErrorObject
from pydantic import BaseModel

API_KEY = "hs-test-key"
MODEL = "deepseek-v3.2"

M = TypeVar("M", bound=BaseModel)

# Keys each wire object must have, and keys it may have: the spec (DESIGN.md section 3)
# read strictly. reasoning_content is DeepSeek's extension, unknown to the openai types.
SPEC: dict[type[BaseModel], tuple[frozenset[str], frozenset[str]]] = {
    ChatCompletion: (
        frozenset({"id", "object", "created", "model", "system_fingerprint", "choices", "usage"}),
        frozenset(),
    ),
    chat_completion.Choice: (
        frozenset({"index", "message", "finish_reason", "logprobs"}),
        frozenset(),
    ),
    ChatCompletionMessage: (
        frozenset({"role", "content"}),
        frozenset({"tool_calls", "reasoning_content"}),
    ),
    ChatCompletionMessageFunctionToolCall: (frozenset({"id", "type", "function"}), frozenset()),
    Function: (frozenset({"name", "arguments"}), frozenset()),
    CompletionUsage: (
        frozenset(
            {
                "prompt_tokens",
                "completion_tokens",
                "total_tokens",
                "prompt_tokens_details",
                "completion_tokens_details",
            }
        ),
        frozenset(),
    ),
    PromptTokensDetails: (frozenset({"cached_tokens"}), frozenset()),
    CompletionTokensDetails: (frozenset({"reasoning_tokens"}), frozenset()),
    ChatCompletionChunk: (
        frozenset({"id", "object", "created", "model", "system_fingerprint", "choices"}),
        frozenset({"usage"}),
    ),
    chat_completion_chunk.Choice: (
        frozenset({"index", "delta", "finish_reason", "logprobs"}),
        frozenset(),
    ),
    chat_completion_chunk.ChoiceDelta: (
        frozenset(),
        frozenset({"role", "content", "reasoning_content", "tool_calls"}),
    ),
    chat_completion_chunk.ChoiceDeltaToolCall: (
        frozenset({"index"}),
        frozenset({"id", "type", "function"}),
    ),
    chat_completion_chunk.ChoiceDeltaToolCallFunction: (
        frozenset(),
        frozenset({"name", "arguments"}),
    ),
    CreateEmbeddingResponse: (frozenset({"data", "model", "object", "usage"}), frozenset()),
    Embedding: (frozenset({"embedding", "index", "object"}), frozenset()),
    EmbeddingUsage: (frozenset({"prompt_tokens", "total_tokens"}), frozenset()),
    Model: (frozenset({"id", "object", "created", "owned_by"}), frozenset()),
    ErrorObject: (frozenset({"message", "type", "code", "param"}), frozenset()),
}


def _check_tree(value: Any, path: str) -> None:
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_tree(item, f"{path}[{i}]")
        return
    if not isinstance(value, BaseModel):
        return
    kind = type(value)
    assert kind in SPEC, f"{path}: parsed as unexpected type {kind.__name__}"
    required, optional = SPEC[kind]
    keys = value.model_fields_set | set(value.model_extra or {})
    assert required <= keys, f"{path}: missing {sorted(required - keys)}"
    assert keys <= required | optional, f"{path}: unexpected {sorted(keys - required - optional)}"
    for name in value.model_fields_set:
        _check_tree(getattr(value, name), f"{path}.{name}")


def strict_parse(model: type[M], raw: Mapping[str, Any]) -> M:
    """Parse raw as model, failing on a missing or unexpected key or a coerced value."""
    parsed = model.model_validate(raw, strict=True)
    _check_tree(parsed, model.__name__)
    # A field the types coerced, or an extra kept under another shape, would differ here.
    assert parsed.model_dump(mode="json", exclude_unset=True) == raw
    return parsed


def tool(name: str, description: str, properties: dict | None = None) -> dict:
    parameters = {"type": "object", "properties": properties or {}}
    parameters["required"] = list(properties or {})
    function = {"name": name, "description": description, "parameters": parameters}
    return {"type": "function", "function": function}


WEATHER = tool(
    "get_weather",
    "Current weather for a city",
    {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
)
TIME = tool("get_local_time", "Local time in a city", {"city": {"type": "string"}})
STOCK = tool("stockQuote", "Share price of a company", {"ticker": {"type": "string"}})
TOOLS = [WEATHER, TIME, STOCK]
BOTH = "What is the weather and the local time in Rome?"


def auth(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def chat(client: httpx.Client, headers: Mapping[str, str] | None = None, **body: Any) -> dict:
    """POST a chat completion (model and a default message filled in); the 200 JSON body."""
    body.setdefault("model", MODEL)
    body.setdefault("messages", [user("Hello there")])
    response = client.post("/chat/completions", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def cached_tokens(client: httpx.Client, **body: Any) -> int:
    return chat(client, **body)["usage"]["prompt_tokens_details"]["cached_tokens"]


def sse_data(text: str) -> list[str]:
    """The data of each event in an SSE body, in order."""
    events = []
    for block in text.split("\n\n"):
        lines = [line[len("data: ") :] for line in block.split("\n") if line.startswith("data: ")]
        if lines:
            events.append("\n".join(lines))
    return events


def stream(
    client: httpx.Client, headers: Mapping[str, str] | None = None, **body: Any
) -> list[dict[str, Any]]:
    """POST a streaming chat completion; its chunks, checked to end with ``[DONE]``."""
    body.setdefault("model", MODEL)
    body.setdefault("messages", [user("Hello there")])
    response = client.post("/chat/completions", json={**body, "stream": True}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_data(response.text)
    assert events[-1] == "[DONE]"
    return [json.loads(event) for event in events[:-1]]


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error object of an API error response, checked strictly."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    strict_parse(ErrorObject, body["error"])
    return body["error"]
