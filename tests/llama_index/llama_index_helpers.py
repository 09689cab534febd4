"""Calling any of the LLM's eight entry points the same way, and the emulator's own rules."""

from __future__ import annotations

import inspect
from typing import Any

from llama_index.core.base.llms.types import ChatMessage

from holysheep_core import PriceTable, TokenUsage, Usage
from holysheep_core.emulator import count_prompt_tokens, count_tokens

CHAT_METHODS = ("chat", "achat", "stream_chat", "astream_chat")
COMPLETE_METHODS = ("complete", "acomplete", "stream_complete", "astream_complete")
METHODS = CHAT_METHODS + COMPLETE_METHODS


async def call(llm: Any, method: str, text: str, **kwargs: Any) -> tuple[Any, list[Any]]:
    """The final response of ``llm.<method>`` on one user text, and all streamed ones."""
    arg = [ChatMessage(role="user", content=text)] if method in CHAT_METHODS else text
    result = getattr(llm, method)(arg, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    if "stream" not in method:
        return result, [result]
    responses = [r async for r in result] if hasattr(result, "__aiter__") else list(result)
    return responses[-1], responses


def usage_by_rule(body: dict[str, Any], answer: str) -> Usage:
    """The usage the emulator reports for a text answer, from its documented counting rule."""
    prompt = count_prompt_tokens(body["messages"], body.get("tools"))
    completion = count_tokens(answer)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def embedding_usage_by_rule(emulator: Any, prices: PriceTable | None = None) -> TokenUsage:
    """The tokens of the embeddings requests the emulator received, by its documented rule
    (``count_tokens`` of each input), priced by ``prices`` (the default table otherwise)."""
    table, total = prices or PriceTable(), TokenUsage()
    for recorded in emulator.requests:
        if recorded.path.endswith("/embeddings"):
            texts = recorded.body["input"]
            tokens = sum(count_tokens(t) for t in ([texts] if isinstance(texts, str) else texts))
            usage = Usage(prompt_tokens=tokens, total_tokens=tokens)
            total += TokenUsage.from_usage(usage, table.cost(recorded.body["model"], usage))
    return total
