"""LangChain's ``ChatHolySheep`` and ``HolySheepEmbeddings``, replayed from cassettes: invoke
and stream (sync and async), a tool-call round trip, a streamed tool call, structured
output both ways, a chain, the cost callback, embeddings.

Models are built the way a user's code builds them, from ``HOLYSHEEP_API_KEY`` and
``HOLYSHEEP_BASE_URL`` (set by the ``holysheep_vcr`` marker). Assertions hold for any
faithful server, so re-recording against the live API passes too.
"""

from __future__ import annotations

import operator
from functools import reduce
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from pydantic import BaseModel
from recorded_helpers import EMBEDDING_MODEL, MODEL, PRICE_PER_TOKEN

from langchain_holysheep import ChatHolySheep, HolySheepEmbeddings, get_holysheep_callback

pytestmark = pytest.mark.holysheep_vcr


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny and 21 degrees in {city}"


class Capital(BaseModel):
    """The capital city of a country."""

    country: str
    capital: str


@pytest.fixture
def chat() -> ChatHolySheep:
    return ChatHolySheep(model=MODEL, temperature=0, max_retries=0)


def check_usage_and_cost(message: AIMessage) -> None:
    usage = message.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert message.response_metadata["cost_usd"] == pytest.approx(
        usage["total_tokens"] * float(PRICE_PER_TOKEN)
    )


def merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    # Exactly one chunk carries usage (the stream's last); merging must not double it.
    assert sum(c.usage_metadata is not None for c in chunks) == 1
    return reduce(operator.add, chunks)


def test_invoke(chat: ChatHolySheep) -> None:
    reply = chat.invoke("Name one colour of the rainbow.")
    assert isinstance(reply, AIMessage) and reply.content
    assert reply.response_metadata["finish_reason"] == "stop"
    check_usage_and_cost(reply)


async def test_ainvoke(chat: ChatHolySheep) -> None:
    reply = await chat.ainvoke("Name one planet of the solar system.")
    assert reply.content
    check_usage_and_cost(reply)


def test_stream(chat: ChatHolySheep) -> None:
    chunks = list(chat.stream("Count from one to five in words."))
    assert len([c for c in chunks if c.content]) >= 1
    whole = merge(chunks)
    assert whole.content == "".join(str(c.content) for c in chunks)
    check_usage_and_cost(whole)


async def test_astream(chat: ChatHolySheep) -> None:
    chunks = [c async for c in chat.astream("Say hello in three languages.")]
    whole = merge(chunks)
    assert whole.content
    check_usage_and_cost(whole)


def test_tool_call_round_trip(chat: ChatHolySheep) -> None:
    question = HumanMessage("What is the weather in Paris?")
    call_turn = chat.bind_tools([get_weather], tool_choice="get_weather").invoke([question])
    [call] = call_turn.tool_calls
    assert call["name"] == "get_weather" and call["id"]
    assert isinstance(call["args"]["city"], str) and call["args"]["city"]
    result = get_weather.invoke(call)  # a ToolMessage answering this call's id
    assert result.tool_call_id == call["id"]

    history: list[BaseMessage] = [question, call_turn, result]
    final = chat.bind_tools([get_weather]).invoke(history)
    assert final.content and not final.tool_calls
    check_usage_and_cost(final)


async def test_streamed_tool_call(chat: ChatHolySheep) -> None:
    bound = chat.bind_tools([get_weather], tool_choice="required")
    chunks = [c async for c in bound.astream("What is the weather in Lisbon?")]
    whole = merge(chunks)
    # The pieces of the call merged by index into one whole call with parsed arguments.
    [call] = whole.tool_calls
    assert call["name"] == "get_weather" and call["id"]
    assert isinstance(call["args"]["city"], str) and call["args"]["city"]
    assert whole.invalid_tool_calls == []


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_structured_output(chat: ChatHolySheep, method: Any) -> None:
    structured = chat.with_structured_output(Capital, method=method)
    answer = structured.invoke("What is the capital of Japan? Give the country and the capital.")
    assert isinstance(answer, Capital)
    assert answer.country and answer.capital


async def test_structured_output_with_raw(chat: ChatHolySheep) -> None:
    structured = chat.with_structured_output(Capital, include_raw=True)
    answer = await structured.ainvoke("What is the capital of Italy?")
    assert answer["parsing_error"] is None
    assert isinstance(answer["parsed"], Capital)
    check_usage_and_cost(answer["raw"])


def test_prompt_chain_and_cost_callback(chat: ChatHolySheep) -> None:
    chain = (
        ChatPromptTemplate.from_messages(
            [("system", "You answer in one short sentence."), ("human", "Tell me about {topic}.")]
        )
        | chat
        | StrOutputParser()
    )
    with get_holysheep_callback() as cb:
        answers = chain.batch([{"topic": "sheep"}, {"topic": "goats"}], {"max_concurrency": 1})
    assert all(isinstance(a, str) and a for a in answers)
    assert cb.successful_requests == 2
    assert cb.total_tokens == cb.prompt_tokens + cb.completion_tokens > 0
    assert cb.total_cost == pytest.approx(cb.total_tokens * float(PRICE_PER_TOKEN))


def test_embeddings() -> None:
    embeddings = HolySheepEmbeddings(model=EMBEDDING_MODEL, max_retries=0)
    documents = embeddings.embed_documents(["The cat sat on the mat.", "Stock markets fell."])
    assert len(documents) == 2 and len(documents[0]) == len(documents[1]) > 0
    assert documents[0] != documents[1]
    query = embeddings.embed_query("The cat sat on the mat.")
    assert query == pytest.approx(documents[0])


async def test_aembeddings() -> None:
    embeddings = HolySheepEmbeddings(model=EMBEDDING_MODEL, max_retries=0, batch_size=2)
    texts = ["one", "two", "three"]
    vectors = await embeddings.aembed_documents(texts)
    assert len(vectors) == 3
    assert vectors[2] == pytest.approx(await embeddings.aembed_query("three"))
