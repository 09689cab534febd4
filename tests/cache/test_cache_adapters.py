"""The response cache through LangChain and LlamaIndex: flags on results, cost callbacks
that count a hit as no call, and LangChain's own ``cache=`` next to ours."""

from __future__ import annotations

import pytest
from langchain_core.caches import InMemoryCache
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.callbacks import CallbackManager

from holysheep_core import ResponseCache
from langchain_holysheep import ChatHolySheep, get_holysheep_callback
from llama_index_holysheep import HolySheep, HolySheepCostHandler

MODEL = "deepseek-v3.2"


def chat_requests(emulator) -> int:
    return sum(r.path.endswith("/chat/completions") for r in emulator.requests)


def test_langchain_hit_is_flagged_and_not_counted(emulator, api_key):
    model = ChatHolySheep(
        model=MODEL,
        api_key=api_key,
        base_url=emulator.url,
        client_settings={"cache": ResponseCache()},
    )
    with get_holysheep_callback() as cb:
        first = model.invoke("What is the capital of France?")
        second = model.invoke("What is the capital of France?")
    assert "cache_hit" not in first.response_metadata
    assert second.response_metadata["cache_hit"] is True
    assert second.response_metadata["cost_usd"] == 0
    assert second.content == first.content
    assert chat_requests(emulator) == 1
    assert cb.successful_requests == 1
    assert cb.total_cost_usd == first.response_metadata["cost_usd"]


async def test_langchain_stream_hit_is_flagged(emulator, api_key):
    model = ChatHolySheep(
        model=MODEL,
        api_key=api_key,
        base_url=emulator.url,
        client_settings={"cache": ResponseCache()},
    )

    async def streamed():
        merged = None
        async for chunk in model.astream("Tell me about Paris"):
            merged = chunk if merged is None else merged + chunk
        return merged

    first, second = await streamed(), await streamed()
    assert second.response_metadata.get("cache_hit") is True
    assert "cache_hit" not in first.response_metadata
    assert second.content == first.content
    assert second.usage_metadata == first.usage_metadata
    assert chat_requests(emulator) == 1


@pytest.mark.parametrize("ours", [False, True])
def test_langchain_own_cache_is_neither_doubled_nor_billed_twice(emulator, api_key, ours):
    cache = ResponseCache() if ours else None
    model = ChatHolySheep(
        model=MODEL,
        api_key=api_key,
        base_url=emulator.url,
        cache=InMemoryCache(),
        client_settings={"cache": cache} if ours else None,
    )
    with get_holysheep_callback() as cb:
        first = model.invoke("What is the capital of Peru?")
        model.invoke("What is the capital of Peru?")
    assert chat_requests(emulator) == 1
    assert cb.successful_requests == 1
    assert cb.total_cost_usd == first.response_metadata["cost_usd"]
    if ours:  # LangChain answered the repeat before our cache was asked
        assert model._sync_client().stats().cache.hits == 0


def test_llama_index_hit_is_flagged_and_not_counted(emulator, api_key):
    costs = HolySheepCostHandler()
    llm = HolySheep(
        model=MODEL,
        api_key=api_key,
        api_base=emulator.url,
        temperature=0,
        client_settings={"cache": ResponseCache()},
        callback_manager=CallbackManager([costs]),
    )
    ask = [ChatMessage(role="user", content="What is the capital of Chile?")]
    first = llm.chat(ask)
    second = llm.chat(ask)
    streamed = list(llm.stream_chat(ask))
    assert "cache_hit" not in first.additional_kwargs
    assert second.additional_kwargs["cache_hit"] is True
    assert second.additional_kwargs["cost_usd"] == 0
    assert streamed[-1].additional_kwargs["cache_hit"] is True
    assert streamed[-1].message.content == first.message.content
    assert chat_requests(emulator) == 1
    assert costs.successful_requests == 1
    assert costs.total_cost_usd == first.additional_kwargs["cost_usd"]


def test_llama_index_default_temperature_is_sampled_so_not_cached(emulator, api_key):
    # LlamaIndex sends temperature 0.1 by default: a sampled answer, sent every time
    # unless the cache is told otherwise (cache_sampled=True) or temperature=0.
    llm = HolySheep(
        model=MODEL,
        api_key=api_key,
        api_base=emulator.url,
        client_settings={"cache": ResponseCache()},
    )
    ask = [ChatMessage(role="user", content="What is the capital of Chile?")]
    llm.chat(ask)
    assert "cache_hit" not in llm.chat(ask).additional_kwargs
    assert chat_requests(emulator) == 2
    assert llm._clients.sync().stats().cache.skipped == 2


def test_a_copied_model_keeps_the_same_cache(emulator, api_key):
    import copy

    cache = ResponseCache()
    model = ChatHolySheep(
        model=MODEL, api_key=api_key, base_url=emulator.url, client_settings={"cache": cache}
    )
    model.invoke("What is the capital of Japan?")
    twin = copy.deepcopy(model)
    assert twin.invoke("What is the capital of Japan?").response_metadata["cache_hit"]
    assert chat_requests(emulator) == 1
