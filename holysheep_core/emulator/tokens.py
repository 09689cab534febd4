"""The emulator's tokenizer: one rule for every count it reports."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "IMAGE_PART_TOKENS",
    "MESSAGE_OVERHEAD_TOKENS",
    "content_text",
    "count_message_tokens",
    "count_prompt_tokens",
    "count_tokens",
    "split_tokens",
    "truncate_tokens",
]

MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens every chat message costs on top of its text (role and framing), as OpenAI's 4."""

IMAGE_PART_TOKENS = 85
"""Tokens an ``image_url`` content part costs (OpenAI's low-detail price)."""

_TOKEN = re.compile(r"\w+|[^\w\s]")
# One token plus the whitespace before it, so pieces join back into the text.
_PIECE = re.compile(r"\s*(?:\w+|[^\w\s])")


def count_tokens(text: str) -> int:
    """Count tokens: each run of word characters (``\\w+``) and each other non-space character."""
    return len(_TOKEN.findall(text))


def split_tokens(text: str) -> list[str]:
    """Split text into one-token pieces (each with its leading whitespace); they join into text."""
    pieces = _PIECE.findall(text)
    rest = text[sum(map(len, pieces)) :]
    if rest and pieces:
        pieces[-1] += rest
    elif rest:
        pieces = [rest]
    return pieces


def truncate_tokens(text: str, limit: int) -> str:
    """The longest prefix of text holding at most ``limit`` tokens."""
    return "".join(split_tokens(text)[:limit])


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or its text parts joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


def count_message_tokens(message: Mapping[str, Any]) -> int:
    """Tokens of one chat message.

    ``MESSAGE_OVERHEAD_TOKENS`` + the content's text + ``IMAGE_PART_TOKENS`` per image part
    + ``name`` + ``reasoning_content`` + each tool call's function name and arguments.
    """
    content = message.get("content")
    images = 0
    if isinstance(content, Sequence) and not isinstance(content, str):
        images = sum(
            1 for part in content if isinstance(part, Mapping) and part.get("type") == "image_url"
        )
    texts = [content_text(content), message.get("name") or ""]
    texts.append(message.get("reasoning_content") or "")
    for call in message.get("tool_calls") or ():
        texts += [call["function"]["name"], call["function"]["arguments"]]
    return MESSAGE_OVERHEAD_TOKENS + images * IMAGE_PART_TOKENS + sum(map(count_tokens, texts))


def count_prompt_tokens(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
) -> int:
    """Prompt tokens of a chat request: its messages, plus the JSON text of ``tools`` if any."""
    tool_tokens = count_tokens(json.dumps(list(tools))) if tools else 0
    return sum(map(count_message_tokens, messages)) + tool_tokens
