"""Values for JSON schemas (tool arguments, structured output) taken from a user message."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from .words import content_words

__all__ = ["ValueSource", "instance_for"]

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?!\w)")
_QUOTED = re.compile(r'"([^"]+)"|“([^”]+)”|(?<!\w)\'([^\']+)\'(?!\w)')
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)?")
_SENTENCE_MARKS = ".!?:"
MAX_DEPTH = 6


class ValueSource:
    """Values taken, each once and in order, from one message.

    numbers: each number written in the message (``-?\\d+(\\.\\d+)?``, not part of a word);
    strings: each quoted phrase (``"..."``, ``“...”``, ``'...'``), then each run of
    capitalised words that does not start a sentence (``New York``), each phrase once; then
    the whole message (whitespace collapsed) once those run out.
    """

    def __init__(self, message: str) -> None:
        self.message = " ".join(message.split())
        self._numbers = iter([_to_number(m.group()) for m in _NUMBER.finditer(message)])
        strings = dict.fromkeys(_quoted(message) + _capitalised(message))
        self._strings: Iterator[str] = iter(strings)
        self.words = set(content_words(message))

    def next_number(self) -> int | float | None:
        return next(self._numbers, None)

    def next_string(self) -> str:
        return next(self._strings, self.message)

    def mentions(self, value: Any) -> bool:
        """Whether the message holds value's text as whole words, ignoring case."""
        text = str(value).strip()
        if not text:
            return False
        pattern = rf"(?<!\w){re.escape(text)}(?!\w)"
        return re.search(pattern, self.message, re.IGNORECASE) is not None


def _to_number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


def _quoted(message: str) -> list[str]:
    return [next(g for g in m.groups() if g is not None) for m in _QUOTED.finditer(message)]


def _capitalised(message: str) -> list[str]:
    phrases: list[list[str]] = []
    at_sentence_start, end, joinable = True, 0, False
    for match in _WORD.finditer(message):
        gap = message[end : match.start()]
        if gap.strip():
            at_sentence_start = gap.strip()[-1] in _SENTENCE_MARKS
        sentence_start = at_sentence_start or "\n" in gap
        word = match.group()
        if word[0].isupper() and not sentence_start and word != "I":
            if joinable and gap == " ":
                phrases[-1].append(word)
            else:
                phrases.append([word])
            joinable = True
        else:
            joinable = False
        at_sentence_start, end = False, match.end()
    return [" ".join(words) for words in phrases]


def instance_for(schema: Mapping[str, Any], source: ValueSource) -> Any:
    """A JSON value valid against schema, filled from source.

    Rules: ``const`` → it; ``enum`` → the first value the message mentions, else the first;
    ``anyOf``/``oneOf`` → the first branch not of type null; ``allOf`` → the merged branches;
    local ``$ref`` → resolved; object → every property in order (and any other ``required``
    name); array → ``max(minItems, 1)`` items (no more than ``maxItems``); string → the next
    string; number → the next number, integer → the next number truncated (both clamped to
    ``minimum``/``maximum``; with none left, ``default``, else ``minimum``, else 0); boolean →
    true when a content word of its property name is in the message, else ``default``, else
    false; null → null. A schema without a type is inferred from ``properties``/``items``,
    else a string. ``pattern``, ``format`` and ``multipleOf`` are not honoured.
    """
    return _Builder(schema, source).build(schema, name="", depth=0)


class _Builder:
    def __init__(self, root: Mapping[str, Any], source: ValueSource) -> None:
        self.root = root
        self.source = source

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        seen = 0
        while "$ref" in schema and seen < MAX_DEPTH:
            target: Any = self.root
            for part in schema["$ref"].lstrip("#").split("/"):
                if part:
                    target = target[part.replace("~1", "/").replace("~0", "~")]
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **rest}
            seen += 1
        return schema

    def build(self, schema: Mapping[str, Any], *, name: str, depth: int) -> Any:
        schema = self.resolve(schema)
        if "allOf" in schema:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                merged = {**self.resolve(part), **merged}
            schema = merged
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            values = list(schema["enum"])
            return next((v for v in values if self.source.mentions(v)), values[0])
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self.build(self._branch(schema[key], depth), name=name, depth=depth + 1)
        kind = _kind(schema)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind in ("number", "integer"):
            return self._number(schema, integer=kind == "integer")
        if kind == "boolean":
            mentioned = bool(set(content_words(name)) & self.source.words)
            return mentioned or bool(schema.get("default", False))
        if kind == "null":
            return None
        return self._string(schema)

    def _branch(self, branches: list[Mapping[str, Any]], depth: int) -> Mapping[str, Any]:
        resolved = [self.resolve(b) for b in branches]
        if depth >= MAX_DEPTH:
            # Past the depth cap a null or plain branch ends recursive schemas.
            plain = [b for b in resolved if _kind(b) == "null"] or resolved
            return plain[0]
        return next((b for b in resolved if _kind(b) != "null"), resolved[0])

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = dict(schema.get("properties") or {})
        required = list(schema.get("required") or ())
        names = required if depth >= MAX_DEPTH else [*properties, *required]
        return {
            key: self.build(properties.get(key, {}), name=key, depth=depth + 1)
            for key in dict.fromkeys(names)
        }

    def _array(self, schema: Mapping[str, Any], name: str, depth: int) -> list[Any]:
        low = int(schema.get("minItems", 0))
        count = low if depth >= MAX_DEPTH else max(low, 1)
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        items = schema.get("items")
        item_schema = items if isinstance(items, Mapping) else {}
        return [self.build(item_schema, name=name, depth=depth + 1) for _ in range(count)]

    def _number(self, schema: Mapping[str, Any], *, integer: bool) -> int | float:
        value = self.source.next_number()
        if value is None:
            value = schema.get("default", schema.get("minimum", 0))
        if "minimum" in schema:
            value = max(value, schema["minimum"])
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            value = schema["exclusiveMinimum"] + 1
        if "maximum" in schema:
            value = min(value, schema["maximum"])
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            value = schema["exclusiveMaximum"] - 1
        return int(value) if integer else value

    def _string(self, schema: Mapping[str, Any]) -> str:
        value = self.source.next_string()
        if "maxLength" in schema:
            value = value[: int(schema["maxLength"])]
        return value.ljust(int(schema.get("minLength", 0)), "x")


def _kind(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        return next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"
