"""Prompt and completion content in the GenAI conventions' message shape, for users who opt
in with ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.

Messages become ``{"role", "parts": [...]}`` with ``text``, ``tool_call`` and
``tool_call_response`` parts; system messages go to ``gen_ai.system_instructions``. Each
value is one JSON string, scrubbed of the API key in case a prompt quotes it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_ON = {"true", "1", "yes", "on", "span_only", "span_and_event"}


def capture_enabled() -> bool:
    return os.environ.get(ENV, "").strip().lower() in _ON


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):  # content parts: keep their text
        return "".join(
            p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text"
        )
    return ""


def _tool_call_parts(calls: Any) -> list[dict[str, Any]]:
    parts = []
    for call in calls or ():
        fn = call.get("function") or {}
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": fn.get("name"),
                "arguments": fn.get("arguments"),
            }
        )
    return parts


def input_messages(messages: Sequence[Mapping[str, Any]]) -> tuple[list[Any], list[Any]]:
    """(system instructions, input messages) from the wire body's ``messages``."""
    system: list[Any] = []
    out: list[Any] = []
    for m in messages:
        role = m.get("role")
        text = _text(m.get("content"))
        if role in ("system", "developer"):
            system.append({"type": "text", "content": text})
            continue
        if role == "tool":
            parts: list[Any] = [
                {"type": "tool_call_response", "id": m.get("tool_call_id"), "response": text}
            ]
        else:
            parts = [{"type": "text", "content": text}] if text else []
            parts += _tool_call_parts(m.get("tool_calls"))
        out.append({"role": role, "parts": parts})
    return system, out


def output_message(text: str, tool_calls: list[dict[str, Any]], finish: str | None) -> Any:
    parts: list[Any] = [{"type": "text", "content": text}] if text else []
    parts += tool_calls
    return {"role": "assistant", "parts": parts, "finish_reason": finish or ""}


def completion_messages(choices: Sequence[Any]) -> list[Any]:
    out = []
    for choice in choices:
        msg = choice.message
        calls = [
            {
                "type": "tool_call",
                "id": c.id,
                "name": c.function.name,
                "arguments": c.function.arguments,
            }
            for c in msg.tool_calls or ()
        ]
        out.append(output_message(msg.content or "", calls, choice.finish_reason))
    return out


class StreamedMessages:
    """The assistant messages of a stream, put back together from its deltas."""

    __slots__ = ("_calls", "_finish", "_text")

    def __init__(self) -> None:
        self._text: dict[int, list[str]] = {}
        self._calls: dict[int, dict[int, dict[str, Any]]] = {}
        self._finish: dict[int, str | None] = {}

    def add(self, chunk: Any) -> None:
        for choice in chunk.choices:
            i = choice.index
            delta = choice.delta
            if delta.content:
                self._text.setdefault(i, []).append(delta.content)
            for call in delta.tool_calls or ():
                fresh = {"type": "tool_call", "id": None, "name": None, "arguments": ""}
                slot = self._calls.setdefault(i, {}).setdefault(call.index or 0, fresh)
                if call.id:
                    slot["id"] = call.id
                if call.function is not None:
                    if call.function.name:
                        slot["name"] = call.function.name
                    if call.function.arguments:
                        slot["arguments"] += call.function.arguments
            if choice.finish_reason is not None or i not in self._finish:
                self._finish[i] = choice.finish_reason

    def messages(self) -> list[Any]:
        return [
            output_message(
                "".join(self._text.get(i, ())),
                [self._calls[i][k] for k in sorted(self._calls.get(i, {}))],
                self._finish[i],
            )
            for i in sorted(self._finish)
        ]


def dumps(value: Any, secret: str) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text.replace(secret, "[redacted]") if secret else text
