"""Token counts without a tokenizer: ChatHolySheep estimates by the core's documented rule
(one token per four bytes, rounded up), so ``trim_messages`` and friends work offline."""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    trim_messages,
)
from langchain_core.tools import tool
from langchain_helpers import chat_bodies

from langchain_holysheep import ChatHolySheep

Make = Callable[..., ChatHolySheep]


def rule(data: bytes) -> int:
    wide = sum(1 for b in data if b > 127)  # bytes of other scripts: half a token each
    return math.ceil((len(data) - wide) / 4) + math.ceil(wide / 2)


CONVERSATION: list[BaseMessage] = [
    SystemMessage("You answer questions about sheep."),
    HumanMessage("How many legs does a sheep have?"),
    AIMessage("Four, like most mammals that graze."),
    HumanMessage("And how much wool does one give in a year?"),
    AIMessage("", tool_calls=[{"id": "call_1", "name": "wool", "args": {"breed": "merino"}}]),
    ToolMessage("About 4.5 kilograms for a merino.", tool_call_id="call_1"),
    AIMessage("A merino gives about 4.5 kg of wool a year."),
    HumanMessage("Thanks! What do lambs eat?"),
]


@pytest.mark.parametrize("text", ["", "sheep", "a b c d e f g", "Schäfchen zählen", "羊" * 7])
def test_text_counts_follow_the_rule(chat: ChatHolySheep, text: str) -> None:
    assert chat.get_num_tokens(text) == rule(text.encode())


def test_message_counts_cover_everything_that_is_sent(chat: ChatHolySheep) -> None:
    total = chat.get_num_tokens_from_messages(CONVERSATION)
    # Each message adds its own text, so every prefix counts less than the whole.
    prefixes = [chat.get_num_tokens_from_messages(CONVERSATION[:i]) for i in range(1, 9)]
    assert prefixes == sorted(prefixes) and len(set(prefixes)) == len(prefixes)
    assert prefixes[-1] == total
    assert total >= rule("".join(str(m.content) for m in CONVERSATION).encode())

    @tool
    def wool(breed: str) -> str:
        """Wool a sheep of this breed gives in a year."""
        return "4.5 kg"

    assert chat.get_num_tokens_from_messages(CONVERSATION, tools=[wool]) > total


def test_the_estimate_is_on_the_high_side_of_english_prompts(
    chat: ChatHolySheep, emulator: Any
) -> None:
    reply = chat.invoke(CONVERSATION)
    assert reply.usage_metadata is not None
    (body,) = chat_bodies(emulator)
    assert reply.usage_metadata["input_tokens"] <= chat.get_num_tokens_from_messages(CONVERSATION)
    # ...and within what the client's limiter reserved for the whole request body.
    sent = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    assert chat.get_num_tokens_from_messages(CONVERSATION) <= rule(sent)


@pytest.mark.parametrize("max_tokens", [20, 40, 140, 1_000])
def test_trim_messages_keeps_the_longest_tail_that_fits(
    chat: ChatHolySheep, max_tokens: int
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback tokenizer warning, no transformers
        kept = trim_messages(
            CONVERSATION,
            max_tokens=max_tokens,
            token_counter=chat,
            strategy="last",
            include_system=True,
            start_on="human",
        )
    assert "transformers" not in sys.modules
    assert chat.get_num_tokens_from_messages(kept) <= max_tokens
    assert kept[0] == CONVERSATION[0]
    assert kept[1:] == CONVERSATION[len(CONVERSATION) - len(kept) + 1 :]
    # The next human turn further back would not have fitted.
    earlier = [
        i for i in range(1, len(CONVERSATION) - len(kept) + 1) if CONVERSATION[i].type == "human"
    ]
    if earlier:
        longer = [CONVERSATION[0], *CONVERSATION[earlier[-1] :]]
        assert chat.get_num_tokens_from_messages(longer) > max_tokens


def test_a_custom_tokenizer_wins(make_chat: Make) -> None:
    chat = make_chat(custom_get_token_ids=lambda text: list(range(len(text.split()))))
    assert chat.get_num_tokens("one two three") == 3
    assert chat.get_token_ids("one two") == [0, 1]


def test_token_ids_need_a_tokenizer(chat: ChatHolySheep) -> None:
    with pytest.raises(NotImplementedError, match="get_num_tokens"):
        chat.get_token_ids("sheep")
