"""LangChain's own LLM cache (``set_llm_cache``): a hit sends no request, so the cost
callback bills nothing for it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.globals import set_llm_cache
from langchain_helpers import chat_bodies, expected_cost

from langchain_holysheep import get_holysheep_callback


@pytest.fixture
def llm_cache() -> Iterator[InMemoryCache]:
    cache = InMemoryCache()
    set_llm_cache(cache)
    try:
        yield cache
    finally:
        set_llm_cache(None)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_cache_hits_cost_nothing_and_are_not_requests(
    asynchronous: bool, make_chat: Any, emulator: Any, llm_cache: InMemoryCache
) -> None:
    model = make_chat(temperature=0)
    with get_holysheep_callback() as outer, get_holysheep_callback() as cb:
        replies = [
            await model.ainvoke("Hello") if asynchronous else model.invoke("Hello")
            for _ in range(3)
        ]
    assert len({r.content for r in replies}) == 1
    bodies = chat_bodies(emulator)
    assert len(bodies) == 1  # one request sent: the other two were cache hits
    for handler in (cb, outer):
        assert handler.successful_requests == 1
        assert handler.llm_cache_hits == 2
        assert handler.usage.cost_usd == expected_cost(bodies)
        assert handler.total_tokens == replies[0].usage_metadata["total_tokens"]


def test_reset_forgets_cache_hits(make_chat: Any, llm_cache: InMemoryCache) -> None:
    model = make_chat(temperature=0)
    with get_holysheep_callback() as cb:
        model.invoke("Hello")
        model.invoke("Hello")
    assert cb.llm_cache_hits == 1
    cb.reset()
    assert (cb.llm_cache_hits, cb.successful_requests) == (0, 0)
