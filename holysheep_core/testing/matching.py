"""The vcrpy matcher that compares request bodies as JSON and says where they differ."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["JSON_BODY", "first_difference", "json_body", "register_matchers"]

JSON_BODY = "json_body"
"""The name :func:`json_body` is registered under, for ``match_on``."""

_NOT_JSON = object()
_PREVIEW = 120


def json_body(r1: Any, r2: Any) -> None:
    """vcrpy matcher: the bodies are equal as parsed JSON (key order and spacing aside), or
    byte for byte when either is not JSON. ``r1`` is the request being made, ``r2`` the
    recorded one.

    Raises:
        AssertionError: naming the first place where they differ, which vcrpy puts in its
            ``CannotOverwriteExistingCassetteException``.
    """
    b1, b2 = _body(r1), _body(r2)
    if b1 == b2:
        return
    j1, j2 = _parse(b1), _parse(b2)
    if j1 is _NOT_JSON or j2 is _NOT_JSON:
        raise AssertionError(f"body {_preview(b1)} != recorded {_preview(b2)}")
    where = first_difference(j1, j2)
    if where is not None:
        raise AssertionError(where)


def first_difference(new: Any, recorded: Any, path: str = "body") -> str | None:
    """Where two JSON values first differ, as ``"body.messages[0].content: 'a' != recorded
    'b'"``; None when equal. Booleans are not numbers; ``1`` equals ``1.0``."""
    if isinstance(new, dict) and isinstance(recorded, dict):
        for key in sorted(new.keys() | recorded.keys()):
            if key not in recorded:
                return f"{path}.{key}: {_short(new[key])} is not in the recording"
            if key not in new:
                return f"{path}.{key}: missing (recorded {_short(recorded[key])})"
            found = first_difference(new[key], recorded[key], f"{path}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(new, list) and isinstance(recorded, list):
        for i, (a, b) in enumerate(zip(new, recorded, strict=False)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found is not None:
                return found
        if len(new) != len(recorded):
            return f"{path}: {len(new)} items != recorded {len(recorded)}"
        return None
    if _same_scalar(new, recorded):
        return None
    return f"{path}: {_short(new)} != recorded {_short(recorded)}"


def register_matchers(vcr: Any) -> Any:
    """Register :func:`json_body` on a ``vcr.VCR`` (idempotent); returns it."""
    vcr.register_matcher(JSON_BODY, json_body)
    return vcr


def _same_scalar(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _body(request: Any) -> bytes | None:
    body = request.body
    if body is not None and not isinstance(body, (bytes, str)):
        from vcr.util import read_body  # a file or an iterator of chunks

        body = read_body(request)
    if isinstance(body, str):
        return body.encode()
    return body


def _parse(body: bytes | None) -> Any:
    if body is None:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return _NOT_JSON


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 3] + "..."


def _preview(body: bytes | None) -> str:
    if body is None:
        return "(none)"
    return repr(body if len(body) <= _PREVIEW else body[:_PREVIEW] + b"...")
