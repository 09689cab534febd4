"""HolySheep and HolySheepEmbedding ride out a burst of 429s that say when to come back, as
OpenAILike/OpenAIEmbedding do, so index builds and agent runs do not fail on one."""

from __future__ import annotations

from typing import Any

from llama_index.core.llms import ChatMessage

from holysheep_core.emulator import Fault

BURST = Fault.status(429, retry_after=0.05)


def test_chat_rides_out_ten_timed_429s(emulator: Any, llm: Any) -> None:
    emulator.inject(BURST, times=10)
    answer = llm.chat([ChatMessage(role="user", content="hi")])
    assert answer.message.content
    assert len(emulator.requests) == 11


async def test_async_embedding_rides_out_ten_timed_429s(emulator: Any, embed_model: Any) -> None:
    emulator.inject(BURST, times=10)
    vectors = await embed_model.aget_text_embedding_batch(["a", "b", "c"])
    assert len(vectors) == 3
    assert len(emulator.requests) == 11
