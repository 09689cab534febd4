"""Every kind of response, read strictly with the openai package's own types and client."""

import base64
import struct

import httpx
import openai
import pytest
from emulator_helpers import API_KEY, MODEL, chat, error_of, stream, strict_parse, user
from openai.types import CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import ValidationError

from holysheep_core.emulator import MODELS, Emulator, Fault

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    },
}
WEATHER_QUESTION = [user("What is the weather in Lyon for 3 days?")]

# Requests covering each shape of chat response.
CHAT_VARIANTS = {
    "text": {},
    "tools": {"tools": [WEATHER_TOOL], "messages": WEATHER_QUESTION},
    "json_schema": {"response_format": SCHEMA_FORMAT, "messages": WEATHER_QUESTION},
    "reasoning": {"thinking": {"type": "enabled"}},
    "reasoning_tools": {
        "reasoning_effort": "high",
        "tools": [WEATHER_TOOL],
        "messages": WEATHER_QUESTION,
    },
    "n": {"n": 3, "max_tokens": 4},
}


@pytest.mark.parametrize("variant", CHAT_VARIANTS)
def test_chat_completion_reads_strictly(client: httpx.Client, variant: str) -> None:
    completion = strict_parse(ChatCompletion, chat(client, **CHAT_VARIANTS[variant]))
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.usage is not None


@pytest.mark.parametrize("variant", CHAT_VARIANTS)
def test_every_stream_chunk_reads_strictly(client: httpx.Client, variant: str) -> None:
    chunks = stream(client, stream_options={"include_usage": True}, **CHAT_VARIANTS[variant])
    assert len(chunks) > 2
    for chunk in chunks:
        strict_parse(ChatCompletionChunk, chunk)
    assert len({chunk["id"] for chunk in chunks}) == 1


@pytest.mark.parametrize("encoding", ["float", None])
def test_embeddings_read_strictly(client: httpx.Client, encoding: str | None) -> None:
    body = {"model": "text-embedding-3-small", "input": ["first text", "second"]}
    if encoding:
        body["encoding_format"] = encoding
    response = client.post("/embeddings", json=body)
    assert response.status_code == 200
    parsed = strict_parse(CreateEmbeddingResponse, response.json())
    assert [item.index for item in parsed.data] == [0, 1]


def test_base64_embeddings_decode_to_the_float_ones(client: httpx.Client) -> None:
    body = {"model": "m", "input": "some words here", "dimensions": 16}
    floats = client.post("/embeddings", json=body).json()["data"][0]["embedding"]
    encoded = client.post("/embeddings", json={**body, "encoding_format": "base64"})
    raw = base64.b64decode(encoded.json()["data"][0]["embedding"])
    assert struct.unpack("<16f", raw) == pytest.approx(floats, rel=1e-6)


def test_models_read_strictly(client: httpx.Client) -> None:
    listing = client.get("/models").json()
    assert set(listing) == {"object", "data"}
    assert listing["object"] == "list"
    models = [strict_parse(Model, item) for item in listing["data"]]
    ids = [m.id for m in models]
    assert ids == ["deepseek-v3.2", "gpt-4.1", "claude-sonnet-4.5", "gemini-2.5-flash"]
    for model_id in ids:
        assert strict_parse(Model, client.get(f"/models/{model_id}").json()).id == model_id


def test_error_bodies_read_strictly(client: httpx.Client, emu: Emulator) -> None:
    error_of(client.post("/chat/completions", json={"model": MODEL}), 400)
    error_of(client.get("/models", headers={"Authorization": "Bearer wrong"}), 401)
    error_of(client.get("/models/nope"), 404)
    emu.inject(Fault.status(503))
    error_of(client.get("/models"), 503)


@pytest.mark.parametrize(
    "raw",
    [
        {"id": "m", "object": "model", "created": 1, "owned_by": "x", "extra": 1},
        {"id": "m", "object": "model", "created": "1", "owned_by": "x"},
        {"id": "m", "object": "model", "owned_by": "x"},
    ],
    ids=["extra-field", "coerced-type", "missing-field"],
)
def test_strict_reader_rejects_a_field_that_is_off(raw: dict) -> None:
    with pytest.raises((AssertionError, ValidationError)):
        strict_parse(Model, raw)


@pytest.fixture
def sdk(emu: Emulator) -> openai.OpenAI:
    with openai.OpenAI(base_url=emu.url, api_key=API_KEY, max_retries=0) as client:
        yield client


def test_openai_client_json_and_stream_agree(sdk: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Tell me about the Loire valley"}]
    completion = sdk.chat.completions.create(model=MODEL, messages=messages)
    chunks = list(
        sdk.chat.completions.create(
            model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == completion.choices[0].message.content
    assert "Loire valley" in text
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == completion.usage.completion_tokens


def test_openai_client_tool_calls(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model=MODEL, messages=WEATHER_QUESTION, tools=[WEATHER_TOOL]
    )
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city": "Lyon"}'


def test_openai_client_embeddings_and_models(sdk: openai.OpenAI) -> None:
    result = sdk.embeddings.create(model="text-embedding-3-small", input="hello world")
    assert len(result.data[0].embedding) == 256
    assert [m.id for m in sdk.models.list()] == [m.id for m in MODELS]


def test_openai_client_sees_status_errors(sdk: openai.OpenAI, emu: Emulator) -> None:
    emu.inject(Fault.status(429, retry_after=1))
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model=MODEL, messages=WEATHER_QUESTION)
    assert caught.value.response.headers["retry-after"] == "1"
    with (
        openai.OpenAI(base_url=emu.url, api_key="hs-wrong", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError),
    ):
        wrong.models.list()


async def test_async_openai_client_streams(emu: Emulator) -> None:
    async with openai.AsyncOpenAI(base_url=emu.url, api_key=API_KEY) as client:
        chunks = [
            chunk
            async for chunk in await client.chat.completions.create(
                model=MODEL, messages=WEATHER_QUESTION, stream=True
            )
        ]
    assert chunks[-1].choices[0].finish_reason == "stop"
