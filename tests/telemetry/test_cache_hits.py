"""A response-cache hit is a call with a span of its own: ended at once, marked a hit, $0."""

from __future__ import annotations

from typing import Any

from holysheep_core import ResponseCache

MODEL = "deepseek-v3.2"
HI = [{"role": "user", "content": "hello there"}]


def _calls(otel: Any) -> list[Any]:
    return [s for s in otel.spans() if s.instrumentation_scope.name.startswith("holysheep")]


def test_a_cache_hit_ends_its_span_as_a_hit_at_no_cost(
    otel: Any, make_client: Any, emulator: Any
) -> None:
    client = make_client(cache=ResponseCache())
    first = client.chat_completion(model=MODEL, messages=HI, temperature=0)
    again = client.chat_completion(model=MODEL, messages=HI, temperature=0)
    assert again.cache_hit and len(emulator.requests) == 1
    sent, hit = _calls(otel)
    assert sent.attributes["holysheep.cache.hit"] is False
    assert sent.attributes["holysheep.cost.usd"] == float(first.cost_usd)
    assert hit.attributes["holysheep.cache.hit"] is True
    assert hit.attributes["holysheep.cost.usd"] == 0.0
    assert hit.attributes["holysheep.attempts"] == 0
    assert hit.attributes["gen_ai.response.id"] == first.id


async def test_a_streamed_cache_hit_ends_its_span_as_a_hit(
    otel: Any, make_async_client: Any, emulator: Any
) -> None:
    client = make_async_client(cache=ResponseCache())
    for _ in range(2):
        async with await client.stream_chat_completion(
            model=MODEL, messages=HI, temperature=0
        ) as stream:
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text
    assert len(emulator.requests) == 1
    sent, hit = _calls(otel)
    assert sent.attributes["holysheep.cache.hit"] is False
    assert hit.attributes["holysheep.cache.hit"] is True
