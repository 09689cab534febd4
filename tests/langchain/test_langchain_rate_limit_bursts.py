"""ChatHolySheep and HolySheepEmbeddings ride out a burst of 429s that say when to come
back, as ChatOpenAI/OpenAIEmbeddings users expect, with the default settings."""

from __future__ import annotations

from typing import Any

from holysheep_core.emulator import Fault

BURST = Fault.status(429, retry_after=0.05)


def test_chat_rides_out_ten_timed_429s(emulator: Any, make_chat: Any) -> None:
    emulator.inject(BURST, times=10)
    message = make_chat().invoke("hi")
    assert message.content
    assert len(emulator.requests) == 11


async def test_async_embeddings_ride_out_ten_timed_429s(emulator: Any, embeddings: Any) -> None:
    emulator.inject(BURST, times=10)
    vectors = await embeddings.aembed_documents(["a", "b", "c"])
    assert len(vectors) == 3
    assert len(emulator.requests) == 11
