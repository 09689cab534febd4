"""Token counts and costs: LlamaIndex's TokenCountingHandler and our two cost handlers.

Expected numbers come from the emulator's documented counting rule applied to the request
it recorded, and from the core's price table: never from the response under test.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.llms.mock import MockLLM
from llama_index.core.storage.kvstore import SimpleKVStore
from llama_index_helpers import (
    CHAT_METHODS,
    METHODS,
    call,
    embedding_usage_by_rule,
    usage_by_rule,
)

from holysheep_core import PriceTable, TokenUsage
from holysheep_core.emulator import count_message_tokens, count_tokens, reply_to
from llama_index_holysheep import HolySheepCostHandler, HolySheepUsageEventHandler

# A tokenizer no real text matches: any count LlamaIndex made itself would show up as 1000s.
RETOKENISED = 1_000


def counting_handler() -> TokenCountingHandler:
    return TokenCountingHandler(tokenizer=lambda text: [0] * RETOKENISED)


@pytest.mark.parametrize("method", METHODS)
async def test_token_counting_handler_records_the_servers_numbers(
    method: str, make_llm: Any, emulator: Any
) -> None:
    counter = counting_handler()
    llm = make_llm(callback_manager=CallbackManager([counter]))
    text = "Count these words, please: alpha beta gamma"
    final, _ = await call(llm, method, text)
    (event,) = counter.llm_token_counts
    expected = usage_by_rule(emulator.requests[-1].body, reply_to(text))
    assert (event.prompt_token_count, event.completion_token_count) == (
        expected.prompt_tokens,
        expected.completion_tokens,
    )
    assert counter.total_llm_token_count == expected.total_tokens
    assert final.additional_kwargs["total_tokens"] == expected.total_tokens


def expected_costs(emulator: Any, answers: list[str]) -> dict[str, TokenUsage]:
    """Usage by rule of each recorded request, priced by the core's default table."""
    table, totals = PriceTable(), {}
    for recorded, answer in zip(emulator.requests, answers, strict=True):
        model = recorded.body["model"]
        usage = usage_by_rule(recorded.body, answer)
        call_usage = TokenUsage.from_usage(usage, table.cost(model, usage))
        totals[model] = totals[model] + call_usage if model in totals else call_usage
    return totals


async def test_both_cost_handlers_equal_usage_times_prices(make_llm: Any, emulator: Any) -> None:
    handler = HolySheepCostHandler()
    texts, answers = [], []
    with HolySheepUsageEventHandler() as events:
        for i, (model, method) in enumerate(
            (m, method) for m in ("deepseek-v3.2", "gpt-4.1") for method in METHODS
        ):
            llm = make_llm(model=model, callback_manager=CallbackManager([handler]))
            text = f"Question number {i} about {model}"
            await call(llm, method, text)
            texts.append(text)
            answers.append(reply_to(text))
    expected = expected_costs(emulator, answers)
    assert set(expected) == {"deepseek-v3.2", "gpt-4.1"}
    for report in (handler, events):
        assert report.by_model == expected
        total = sum(expected.values(), TokenUsage())
        assert report.usage == total
        assert report.successful_requests == 2 * len(METHODS)
        assert (report.prompt_tokens, report.completion_tokens, report.total_tokens) == (
            total.input_tokens,
            total.output_tokens,
            total.total_tokens,
        )
        assert report.total_cost_usd == float(total.cost_usd)
        assert report.abandoned_calls == 0


async def test_concurrent_calls_are_each_counted_once(make_llm: Any, emulator: Any) -> None:
    handler = HolySheepCostHandler()
    llm = make_llm(callback_manager=CallbackManager([handler]))
    texts = [f"parallel request {i}" for i in range(20)]
    with HolySheepUsageEventHandler() as events:
        await asyncio.gather(*(call(llm, "astream_chat", t) for t in texts[:10]))
        await asyncio.gather(*(call(llm, "acomplete", t) for t in texts[10:]))
    answers = {r.body["messages"][-1]["content"]: r for r in emulator.requests}
    expected = sum(
        (
            TokenUsage.from_usage(
                u := usage_by_rule(answers[t].body, reply_to(t)),
                PriceTable().cost("deepseek-v3.2", u),
            )
            for t in texts
        ),
        TokenUsage(),
    )
    assert handler.usage == events.usage == expected


def test_cached_and_reasoning_tokens_and_unknown_prices(make_llm: Any) -> None:
    handler = HolySheepCostHandler()
    system = ChatMessage(role="system", content="You are a careful assistant.")
    with pytest.warns(UserWarning):  # no profile for this model name
        reasoner = make_llm(model="holysheep-reasoner", callback_manager=CallbackManager([handler]))
    for text in ("first question", "second question"):
        response = reasoner.chat([system, ChatMessage(role="user", content=text)])
    thinking = response.message.blocks[0].content
    usage = handler.by_model["holysheep-reasoner"]
    # The system prompt was cached on the second call; the model thinks on both.
    assert usage.cached_tokens == count_message_tokens(
        {"role": "system", "content": system.content}
    )
    assert response.additional_kwargs["cached_tokens"] == usage.cached_tokens
    assert response.additional_kwargs["reasoning_tokens"] == count_tokens(thinking)
    assert usage.reasoning_tokens == 2 * count_tokens(thinking)
    # No price for this model: unknown, never $0.
    assert response.additional_kwargs["cost_usd"] is None
    assert (usage.cost_usd, usage.unpriced_requests, handler.total_cost_usd) == (None, 2, None)


def test_other_llms_are_not_counted() -> None:
    handler = HolySheepCostHandler()
    with HolySheepUsageEventHandler() as events:
        MockLLM(callback_manager=CallbackManager([handler])).complete("Hi")
    assert handler.by_model == events.by_model == {}


def test_the_event_handler_detaches_on_exit() -> None:
    with HolySheepUsageEventHandler() as events:
        assert events in get_dispatcher().event_handlers
    assert events not in get_dispatcher().event_handlers


# --- streams left early --------------------------------------------------------------------


@pytest.mark.parametrize("method", ["stream_chat", "stream_complete"])
def test_a_stream_left_early_is_abandoned_not_counted(method: str, make_llm: Any) -> None:
    handler = HolySheepCostHandler()
    llm = make_llm(callback_manager=CallbackManager([handler]))
    arg = [ChatMessage(role="user", content="a b c d e f")] if method in CHAT_METHODS else "a b"
    with HolySheepUsageEventHandler() as events:
        stream = getattr(llm, method)(arg)
        next(stream), next(stream)
        stream.close()
        llm.complete("after")
    for report in (handler, events):
        assert report.abandoned_calls == 1
        assert report.successful_requests == 1  # only the complete() call
        assert report.usage.input_tokens == count_message_tokens({"content": "after"})


async def test_an_async_stream_left_early_is_abandoned_not_counted(make_llm: Any) -> None:
    handler = HolySheepCostHandler()
    llm = make_llm(callback_manager=CallbackManager([handler]))
    with HolySheepUsageEventHandler() as events:
        stream = await llm.astream_chat([ChatMessage(role="user", content="a b c d e f")])
        await anext(stream)
        await anext(stream)
        await stream.aclose()
    assert handler.abandoned_calls == events.abandoned_calls == 1
    assert handler.successful_requests == events.successful_requests == 0


def test_a_stream_closed_after_its_last_response_is_counted_once(
    make_llm: Any, emulator: Any
) -> None:
    handler = HolySheepCostHandler()
    llm = make_llm(callback_manager=CallbackManager([handler]))
    with HolySheepUsageEventHandler() as events:
        stream = llm.stream_complete("stop right after the end")
        last = None
        while last is None or "cost_usd" not in last.additional_kwargs:
            last = next(stream)
        stream.close()  # before the generator itself finished
    expected = usage_by_rule(emulator.requests[-1].body, reply_to("stop right after the end"))
    # The event handler saw the final response go by; the callback manager only saw the
    # close, so the cost handler can only say the call was left.
    assert events.successful_requests == 1 and events.total_tokens == expected.total_tokens
    assert events.abandoned_calls == 0
    assert (handler.successful_requests, handler.abandoned_calls) == (0, 1)


def test_a_failed_call_counts_nothing(make_llm: Any) -> None:
    handler = HolySheepCostHandler()
    with pytest.warns(UserWarning):
        llm = make_llm(model="no-such-model", callback_manager=CallbackManager([handler]))
    with HolySheepUsageEventHandler() as events, pytest.raises(Exception, match="no-such"):
        llm.complete("Hi")
    for report in (handler, events):
        assert (report.successful_requests, report.abandoned_calls, report.total_cost_usd) == (
            0,
            0,
            None,
        )


def test_reset_clears_the_tally(llm: Any) -> None:
    handler = HolySheepCostHandler()
    llm.callback_manager = CallbackManager([handler])
    llm.complete("Hi")
    assert handler.successful_requests == 1
    handler.reset()
    assert (handler.successful_requests, handler.by_model, handler.total_cost_usd) == (0, {}, None)
    assert handler.usage.cost_usd is None
    assert Decimal(0) == handler.usage.total_tokens


# --- embeddings ----------------------------------------------------------------------------

EMBEDDING_MODEL = "text-embedding-3-small"
EMBEDDING_PRICES = PriceTable().with_prices({EMBEDDING_MODEL: {"input": "0.02", "output": "0"}})


async def test_both_handlers_count_every_embeddings_request(
    make_embedding: Any, emulator: Any
) -> None:
    handler = HolySheepCostHandler()
    model = make_embedding(
        embed_batch_size=2,
        client_settings={"prices": EMBEDDING_PRICES},
        callback_manager=CallbackManager([handler]),
    )
    texts = [f"text number {i} about sheep" for i in range(5)]
    with HolySheepUsageEventHandler() as events:
        model.get_text_embedding_batch(texts)
        await model.aget_text_embedding_batch(texts)  # its batches run concurrently
        model.get_query_embedding("a question")
        await model.aget_text_embedding("a text")
    expected = embedding_usage_by_rule(emulator, EMBEDDING_PRICES)
    assert expected.requests == 3 + 3 + 1 + 1
    assert expected.cost_usd is not None and expected.cost_usd > 0
    for report in (handler, events):
        assert report.by_model == {EMBEDDING_MODEL: expected}
        assert report.total_cost_usd == float(expected.cost_usd)
        assert report.unpriced_requests == 0


def test_an_unpriced_embedding_model_costs_unknown(make_embedding: Any, emulator: Any) -> None:
    handler = HolySheepCostHandler()
    model = make_embedding(
        model_name="house-embedding-1", callback_manager=CallbackManager([handler])
    )
    model.get_text_embedding("no price for this model")
    expected = embedding_usage_by_rule(emulator)
    assert handler.by_model == {"house-embedding-1": expected}
    assert (handler.total_cost_usd, handler.unpriced_requests) == (None, 1)
    assert handler.prompt_tokens == expected.input_tokens > 0


def test_cached_embeddings_cost_nothing(make_embedding: Any, emulator: Any) -> None:
    handler = HolySheepCostHandler()
    model = make_embedding(
        embeddings_cache=SimpleKVStore(), callback_manager=CallbackManager([handler])
    )
    with HolySheepUsageEventHandler() as events:
        first = model.get_text_embedding("the same text twice")
        assert model.get_text_embedding("the same text twice") == first
    assert len(emulator.requests) == 1
    for report in (handler, events):
        assert report.by_model == {EMBEDDING_MODEL: embedding_usage_by_rule(emulator)}


def test_embedding_usage_goes_only_to_the_models_own_handlers(
    make_embedding: Any, make_llm: Any
) -> None:
    mine, other = HolySheepCostHandler(), HolySheepCostHandler()
    make_llm(callback_manager=CallbackManager([other]))
    make_embedding(callback_manager=CallbackManager([mine])).get_text_embedding("hello")
    assert mine.successful_requests == 1
    assert other.successful_requests == 0
