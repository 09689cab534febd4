"""The cost callback: its figures equal the emulator's usage for the requests it received,
times our prices, however the calls were made."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable
from langchain_helpers import chat_bodies, emulated_usage, expected_cost

from holysheep_core import PriceTable
from holysheep_core.emulator import reply_to
from langchain_holysheep import (
    ChatHolySheep,
    HolySheepCallbackHandler,
    get_holysheep_callback,
)

Make = Callable[..., ChatHolySheep]


def _assert_matches_emulator(cb: HolySheepCallbackHandler, bodies: list[dict[str, Any]]) -> None:
    assert bodies, "no request reached the emulator"
    by_model: dict[str, list[dict[str, Any]]] = {}
    for body in bodies:
        by_model.setdefault(body["model"], []).append(body)
    seen = cb.by_model
    assert seen.keys() == by_model.keys()
    for model, model_bodies in by_model.items():
        usages = [emulated_usage(b) for b in model_bodies]
        got = seen[model]
        assert got.requests == len(model_bodies)
        assert got.input_tokens == sum(u.prompt_tokens for u in usages)
        assert got.output_tokens == sum(u.completion_tokens for u in usages)
        assert got.reasoning_tokens == sum(u.reasoning_tokens for u in usages)
        assert got.cost_usd == expected_cost(model_bodies)
    assert cb.usage.cost_usd == expected_cost(bodies)
    assert cb.total_cost == float(expected_cost(bodies))
    assert cb.successful_requests == len(bodies)
    assert cb.unpriced_requests == 0


@pytest.fixture
def two_model_chain(make_chat: Make) -> Runnable[dict[str, str], str]:
    """deepseek describes, gpt-4.1 (with thinking) summarises: two models, one chain."""
    describe = (
        ChatPromptTemplate.from_messages([("human", "Describe {animal} in a sentence")])
        | make_chat(model="deepseek-v3.2")
        | StrOutputParser()
    )
    summarise = ChatPromptTemplate.from_messages([("human", "Summarise: {text}")]) | make_chat(
        model="gpt-4.1", thinking=True
    )
    return {"text": describe} | summarise | StrOutputParser()


def test_invoke_stream_batch(emulator: Any, two_model_chain: Runnable[Any, str]) -> None:
    with get_holysheep_callback() as cb:
        two_model_chain.invoke({"animal": "a sheep"})
        pieces = list(two_model_chain.stream({"animal": "a ram"}))
        two_model_chain.batch([{"animal": "a lamb"}, {"animal": "a ewe"}, {"animal": "a goat"}])
    assert "".join(pieces) == reply_to(f"Summarise: {reply_to('Describe a ram in a sentence')}")
    bodies = chat_bodies(emulator)
    assert len(bodies) == 10
    assert sum(bool(b.get("stream")) for b in bodies) == 2, "stream() streams both models"
    _assert_matches_emulator(cb, bodies)
    assert cb.reasoning_tokens > 0


async def test_async_calls(emulator: Any, two_model_chain: Runnable[Any, str]) -> None:
    with get_holysheep_callback() as cb:
        await two_model_chain.ainvoke({"animal": "a sheep"})
        _ = [piece async for piece in two_model_chain.astream({"animal": "a ram"})]
        await two_model_chain.abatch([{"animal": "a lamb"}, {"animal": "a ewe"}])
    _assert_matches_emulator(cb, chat_bodies(emulator))


def test_many_threads(emulator: Any, chat: ChatHolySheep) -> None:
    with get_holysheep_callback() as cb:
        chat.batch([f"sheep number {i}" for i in range(24)], config={"max_concurrency": 8})
    _assert_matches_emulator(cb, chat_bodies(emulator))


def test_a_stream_counts_once(emulator: Any, chat: ChatHolySheep) -> None:
    with get_holysheep_callback() as cb:
        chunks = list(chat.stream("count me once"))
    assert len(chunks) > 3
    assert cb.successful_requests == 1
    _assert_matches_emulator(cb, chat_bodies(emulator))


async def test_event_streams_count_once(emulator: Any, chat: ChatHolySheep) -> None:
    with get_holysheep_callback() as cb:
        events = list(chat.stream_events("first", version="v3"))
        _ = [event async for event in chat.astream_events("second", version="v2")]
    assert events
    _assert_matches_emulator(cb, chat_bodies(emulator))


def test_explicit_handler_inside_a_block_counts_once(emulator: Any, chat: ChatHolySheep) -> None:
    with get_holysheep_callback() as cb:
        chat.invoke("hi", config={"callbacks": [cb]})
    assert cb.successful_requests == 1


def test_nested_blocks(emulator: Any, chat: ChatHolySheep) -> None:
    with get_holysheep_callback() as outer:
        chat.invoke("outer call")
        with get_holysheep_callback() as inner:
            chat.invoke("inner call")
    chat.invoke("after the blocks")
    first, second, _ = chat_bodies(emulator)
    _assert_matches_emulator(inner, [second])
    _assert_matches_emulator(outer, [first, second])


def test_handler_passed_in_config(emulator: Any, chat: ChatHolySheep) -> None:
    handler = HolySheepCallbackHandler()
    chat.invoke("one", config={"callbacks": [handler]})
    chat.batch(["two", "three"], config={"callbacks": [handler]})
    _assert_matches_emulator(handler, chat_bodies(emulator))
    handler.reset()
    assert handler.successful_requests == 0 and handler.usage.cost_usd is None


def _result(message: AIMessage) -> LLMResult:
    return LLMResult(generations=[[ChatGeneration(message=message)]])


def test_other_providers_messages_are_priced_by_the_table() -> None:
    usage = {"input_tokens": 1000, "output_tokens": 500, "total_tokens": 1500}
    handler = HolySheepCallbackHandler()
    handler.on_llm_end(
        _result(AIMessage("x", usage_metadata=usage, response_metadata={"model_name": "gpt-4.1"}))
    )
    price = PriceTable().price("gpt-4.1")
    assert price is not None
    assert handler.usage.cost_usd == (1000 * price.input + 500 * price.output) / 1_000_000
    custom = PriceTable().with_prices({"my-model": {"input": "1", "output": "2"}})
    handler = HolySheepCallbackHandler(prices=custom)
    handler.on_llm_end(
        _result(AIMessage("x", usage_metadata=usage, response_metadata={"model_name": "my-model"}))
    )
    assert handler.usage.cost_usd == Decimal("0.002")


def test_unknown_price_is_not_zero() -> None:
    handler = HolySheepCallbackHandler()
    usage = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
    message = AIMessage("x", usage_metadata=usage, response_metadata={"model_name": "mystery"})
    handler.on_llm_end(_result(message))
    assert handler.usage.cost_usd is None
    assert handler.unpriced_requests == 1
    assert handler.total_tokens == 15
    assert "1 unpriced" in repr(handler)
