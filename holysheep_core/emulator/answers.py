"""The text of an answer: deterministic rules that read like a reply.

Three cases, tried in order:

* after tool results: what the tools returned (``tool_results_text``);
* a question with context (retrieval-augmented prompts): the context's sentences that best
  match the question (``answer_from_context``), so a RAG test can check what was retrieved;
* anything else: a short reply naming the question (``reply_to``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .tokens import content_text, truncate_tokens
from .words import content_words

__all__ = [
    "CONTEXT_SENTENCES",
    "GREETING",
    "NOT_IN_CONTEXT",
    "QUOTE_LIMIT_TOKENS",
    "SHORT_REPLY",
    "answer_from_context",
    "answer_text",
    "last_user_text",
    "reply_to",
    "split_question",
    "tool_results_text",
]

QUOTE_LIMIT_TOKENS = 32
"""At most this many tokens of the question are quoted in a reply without context."""

CONTEXT_SENTENCES = 2
"""A context answer holds at most this many sentences."""

GREETING = "Hello! How can I help you today?"
SHORT_REPLY = "the HolySheep emulator keeps its replies short; a live model would say more."
NOT_IN_CONTEXT = "The provided context does not answer that question."

_GREETING_WORDS = frozenset(
    "hi hello hey hiya howdy yo greetings good morning afternoon evening there".split()  # noqa: SIM905
)
# "Query:" is LlamaIndex's QA prompt; "Question:" the usual LangChain RAG prompt.
_QUESTION_MARK = re.compile(r"^[ \t]*(?:query|question)[ \t]*:", re.I | re.M)
_ANSWER_MARK = re.compile(r"^[ \t]*answer[ \t]*:.*\Z", re.I | re.M | re.S)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_MARKUP = re.compile(r"^\s*(?:[#>*|]|-\s|\d+\.\s|[^\w\s]+\s*$)")
_BULLET = re.compile(r"^[\s#>*\-|]+")


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last user message ("" without one)."""
    return next(
        (content_text(m.get("content")) for m in reversed(messages) if m["role"] == "user"), ""
    )


def split_question(text: str) -> tuple[str, str]:
    """``(context, question)`` of a user message.

    The question follows the last line starting ``Query:`` or ``Question:`` (any case), up
    to a line starting ``Answer:``; the context is everything before that line. Without
    such a line the whole message is the question and the context is empty.
    """
    marks = list(_QUESTION_MARK.finditer(text))
    if not marks:
        return "", text.strip()
    last = marks[-1]
    question = _ANSWER_MARK.sub("", text[last.end() :])
    return text[: last.start()].strip(), " ".join(question.split())


def _lines(context: str) -> list[str]:
    # Hard-wrapped prose is joined back: a line continues the previous one unless either is
    # blank or markup (heading, list item, separator) or the previous ends a sentence.
    lines: list[str] = []
    for line in context.splitlines():
        previous = lines[-1] if lines else ""
        if (
            line.strip()
            and previous.strip()
            and not _MARKUP.match(line)
            and not _MARKUP.match(previous)
            and not previous.rstrip().endswith((".", "!", "?", ":"))
        ):
            lines[-1] = f"{previous.rstrip()} {line.strip()}"
        else:
            lines.append(line)
    return lines


def _sentences(context: str) -> list[str]:
    pieces = (
        _BULLET.sub("", piece).strip()
        for line in _lines(context)
        for piece in _SENTENCE_END.split(line)
    )
    # Separator lines ("-----") and bare markup carry no words.
    return [piece for piece in pieces if re.search(r"[^\W\d_]", piece)]


def answer_from_context(context: str, question: str) -> str:
    """The context's sentences that share the most content words with the question.

    The context is split into sentences (at ``.``/``!``/``?`` followed by a space, and at
    line ends, hard-wrapped prose lines joined first; list and heading marks dropped). Each
    scores the number of distinct ``content_words`` it shares with the question; the
    ``CONTEXT_SENTENCES`` best (ties: the earlier) are joined in their order in the context.
    ``NOT_IN_CONTEXT`` when none scores.
    """
    wanted = set(content_words(question))
    scored = [
        (len(wanted & set(content_words(sentence))), i, sentence)
        for i, sentence in enumerate(_sentences(context))
    ]
    best = sorted((s for s in scored if s[0] > 0), key=lambda s: (-s[0], s[1]))
    chosen = sorted(best[:CONTEXT_SENTENCES], key=lambda s: s[1])
    return " ".join(sentence for _, _, sentence in chosen) or NOT_IN_CONTEXT


def reply_to(question: str) -> str:
    """The reply to a message without context.

    ``GREETING`` when the message is empty or only greets (words such as "hi", "hello",
    "good morning"); else ``Noted: "Q" — `` + ``SHORT_REPLY``, with Q the message,
    whitespace collapsed, cut to ``QUOTE_LIMIT_TOKENS`` tokens.
    """
    words = re.findall(r"[^\W\d_]+", question.lower())
    if not words or set(words) <= _GREETING_WORDS:
        return GREETING
    quoted = truncate_tokens(" ".join(question.split()), QUOTE_LIMIT_TOKENS)
    return f'Noted: "{quoted}" — {SHORT_REPLY}'


def tool_results_text(results: Sequence[Mapping[str, Any]], names: Mapping[str, str]) -> str:
    """``"Based on the tool results: NAME returned CONTENT; ..."`` in call order."""
    parts = [
        f"{names.get(m.get('tool_call_id'), m.get('name') or 'tool')} returned "
        f"{content_text(m.get('content'))}"
        for m in results
    ]
    return "Based on the tool results: " + "; ".join(parts)


def answer_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text answer to a conversation.

    After tool results (the trailing ``tool`` messages): ``tool_results_text``, NAME taken
    from the assistant call with that id. Otherwise the last user message is split into
    context and question (``split_question``): with context, ``answer_from_context``;
    without, ``reply_to(question)``.
    """
    results = []
    for message in reversed(messages):
        if message["role"] not in ("tool", "function"):
            break
        results.append(message)
    if results:
        names = {
            call["id"]: call["function"]["name"]
            for m in messages
            for call in m.get("tool_calls") or ()
        }
        return tool_results_text(results[::-1], names)
    context, question = split_question(last_user_text(messages))
    if context:
        return answer_from_context(context, question)
    return reply_to(question)
