"""The core client, replayed from cassettes: sync (httpx) and async (aiohttp and httpx),
plain and streamed answers, tool calls, JSON-schema output, embeddings, models, errors.

Assertions hold for any faithful server (the emulator or the live API), so a re-recording
against either passes: usage adds up, cost follows the price rule, tool arguments and
structured output validate against their schemas. Split-chunk streaming is not covered
here (a cassette replays a stream as one chunk): tests/core/test_sse_decoder.py covers it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
from recorded_helpers import EMBEDDING_MODEL, MODEL, PRICE_PER_TOKEN

from holysheep_core import (
    AsyncHolySheepClient,
    ChatCompletionChunk,
    HolySheepClient,
    NotFoundError,
    Usage,
)
from holysheep_core.testing import Target

pytestmark = pytest.mark.holysheep_vcr

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CAPITAL_SCHEMA = {
    "type": "object",
    "properties": {"country": {"type": "string"}, "capital": {"type": "string"}},
    "required": ["country", "capital"],
    "additionalProperties": False,
}


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def check_usage(usage: Usage | None, cost: Decimal | None) -> None:
    assert usage is not None
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert cost == usage.total_tokens * PRICE_PER_TOKEN


def join_stream(chunks: list[ChatCompletionChunk]) -> tuple[str, list[ChatCompletionChunk]]:
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, [c for c in chunks if c.usage is not None]


@pytest.fixture
def client(holysheep_target: Target) -> Iterator[HolySheepClient]:
    with HolySheepClient(
        api_key=holysheep_target.api_key, base_url=holysheep_target.base_url, max_retries=0
    ) as c:
        yield c


@pytest.fixture(params=["aiohttp", "httpx"])
async def aclient(
    request: pytest.FixtureRequest, holysheep_target: Target
) -> AsyncIterator[AsyncHolySheepClient]:
    async with AsyncHolySheepClient(
        api_key=holysheep_target.api_key,
        base_url=holysheep_target.base_url,
        max_retries=0,
        async_backend=request.param,
    ) as c:
        yield c


def test_chat_completion(client: HolySheepClient) -> None:
    completion = client.chat_completion(
        model=MODEL, messages=ask("Name one colour of the rainbow."), temperature=0
    )
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason == "stop"
    check_usage(completion.usage, completion.cost_usd)
    assert client.stats().requests == 1


async def test_chat_completion_async(aclient: AsyncHolySheepClient) -> None:
    completion = await aclient.chat_completion(
        model=MODEL, messages=ask("Name one planet of the solar system."), temperature=0
    )
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    check_usage(completion.usage, completion.cost_usd)


def test_stream(client: HolySheepClient) -> None:
    with client.stream_chat_completion(
        model=MODEL, messages=ask("Count from one to five in words."), temperature=0
    ) as stream:
        chunks = list(stream)
    text, usage_chunks = join_stream(chunks)
    assert text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    # Usage arrives exactly once, on a last chunk without choices, carrying the cost.
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1]
    assert usage_chunks[0].choices == []
    check_usage(usage_chunks[0].usage, usage_chunks[0].cost_usd)
    assert client.stats().requests == 1


async def test_stream_async(aclient: AsyncHolySheepClient) -> None:
    stream = await aclient.stream_chat_completion(
        model=MODEL, messages=ask("Say hello in three languages."), temperature=0
    )
    async with stream:
        chunks = [chunk async for chunk in stream]
    text, usage_chunks = join_stream(chunks)
    assert text
    assert len(usage_chunks) == 1 and usage_chunks[0].choices == []
    check_usage(usage_chunks[0].usage, usage_chunks[0].cost_usd)


def test_forced_tool_call(client: HolySheepClient) -> None:
    completion = client.chat_completion(
        model=MODEL,
        messages=ask("What is the weather in Paris?"),
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = completion.choices[0]
    assert choice.finish_reason in ("tool_calls", "stop")
    [call] = choice.message.tool_calls or []
    assert call.id and call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER_TOOL["function"]["parameters"])
    check_usage(completion.usage, completion.cost_usd)


async def test_streamed_tool_call_async(aclient: AsyncHolySheepClient) -> None:
    stream = await aclient.stream_chat_completion(
        model=MODEL,
        messages=ask("What is the weather in Lisbon?"),
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    calls: dict[int, dict[str, Any]] = {}
    async with stream:
        async for chunk in stream:
            for choice in chunk.choices:
                for delta in choice.delta.tool_calls or []:
                    call = calls.setdefault(delta.index, {"id": "", "name": "", "args": ""})
                    call["id"] += delta.id or ""
                    if delta.function is not None:
                        call["name"] += delta.function.name or ""
                        call["args"] += delta.function.arguments or ""
    # Every delta carried an index, so the pieces joined into whole calls.
    assert list(calls) == [0]
    assert calls[0]["id"] and calls[0]["name"] == "get_weather"
    jsonschema.validate(json.loads(calls[0]["args"]), WEATHER_TOOL["function"]["parameters"])


def test_json_schema_output(client: HolySheepClient) -> None:
    completion = client.chat_completion(
        model=MODEL,
        messages=ask("Give the capital of Japan as JSON."),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "capital", "schema": CAPITAL_SCHEMA, "strict": True},
        },
    )
    jsonschema.validate(json.loads(completion.choices[0].message.content or ""), CAPITAL_SCHEMA)


def test_embeddings(client: HolySheepClient) -> None:
    texts = ["The cat sat on the mat.", "A dog barked at the mailman."]
    response = client.embeddings(model=EMBEDDING_MODEL, input=texts)
    vectors = [d.embedding for d in sorted(response.data, key=lambda d: d.index)]
    assert len(vectors) == 2
    assert len(vectors[0]) == len(vectors[1]) > 0
    assert vectors[0] != vectors[1]
    assert response.usage is not None and response.usage.prompt_tokens > 0


async def test_embeddings_async_in_batches(aclient: AsyncHolySheepClient) -> None:
    texts = ["first text", "second text", "third text"]
    response = await aclient.embeddings(model=EMBEDDING_MODEL, input=texts, batch_size=2)
    # Two requests (2 + 1 texts), merged back in input order.
    assert [d.index for d in response.data] == [0, 1, 2]
    single = await aclient.embeddings(model=EMBEDDING_MODEL, input="third text")
    assert response.data[2].embedding == single.data[0].embedding


def test_models(client: HolySheepClient) -> None:
    assert MODEL in {m.id for m in client.models()}


async def test_unknown_model_is_a_typed_error(aclient: AsyncHolySheepClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await aclient.chat_completion(model="no-such-model", messages=ask("Hello"))
    assert caught.value.status_code == 404
    assert aclient.stats().errors == {"NotFoundError": 1}
