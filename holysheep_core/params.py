"""Checks and encoding of request bodies, done before any network call.

Every mistake a caller can make with arguments surfaces here as ``InvalidRequestError``
naming the parameter, so a bad call costs no request, no retry and no money.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from .errors import InvalidRequestError

__all__ = ["build_chat_body", "build_embeddings_body", "encode_json"]

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
TOOL_CHOICES = frozenset({"auto", "none", "required"})
RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})

# name -> (low, high) for numeric knobs; None = unbounded on that side.
_RANGES: dict[str, tuple[float | None, float | None]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
_POSITIVE_INTS = ("max_tokens", "max_completion_tokens", "n")


def _fail(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _as_dict(obj: Any, where: str) -> dict[str, Any]:
    if isinstance(obj, BaseModel):
        return obj.model_dump(exclude_none=True)
    if isinstance(obj, Mapping):
        return dict(obj)
    raise _fail(f"{where} must be a mapping, got {type(obj).__name__}", where)


def _check_message(raw: Any, i: int) -> dict[str, Any]:
    where = f"messages[{i}]"
    msg = _as_dict(raw, where)
    role = msg.get("role")
    if role not in ROLES:
        raise _fail(f"{where}.role must be one of {sorted(ROLES)}, got {role!r}", where)
    content = msg.get("content")
    if content is None:
        if role not in ("assistant", "function") or not (
            msg.get("tool_calls") or msg.get("function_call")
        ):
            raise _fail(f"{where}.content is required for a {role} message", where)
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                raise _fail(f"{where}.content[{j}] must be a part with a 'type'", where)
    elif not isinstance(content, str):
        raise _fail(
            f"{where}.content must be a string or a list of parts, got {type(content).__name__}",
            where,
        )
    if role == "tool" and not isinstance(msg.get("tool_call_id"), str):
        raise _fail(f"{where} is a tool message without tool_call_id", where)
    tool_calls = msg.get("tool_calls")
    if tool_calls is not None:
        if role != "assistant" or not isinstance(tool_calls, list):
            raise _fail(f"{where}.tool_calls must be a list on an assistant message", where)
        msg["tool_calls"] = [
            _check_tool_call(tc, f"{where}.tool_calls[{j}]") for j, tc in enumerate(tool_calls)
        ]
    return msg


def _check_tool_call(raw: Any, where: str) -> dict[str, Any]:
    tc = _as_dict(raw, where)
    fn = tc.get("function")
    if not isinstance(tc.get("id"), str) or not isinstance(fn, Mapping):
        raise _fail(f"{where} needs an 'id' and a 'function'", where)
    if not isinstance(fn.get("name"), str) or not fn["name"]:
        raise _fail(f"{where}.function.name must be a non-empty string", where)
    args = fn.get("arguments", "")
    if not isinstance(args, str):
        # Accept parsed arguments and send them the way the wire wants: a JSON string.
        fn = {**fn, "arguments": json.dumps(args)}
    tc["function"] = dict(fn)
    tc.setdefault("type", "function")
    return tc


def _check_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(f"{name} must be a finite number, got {value!r}", name)
    low, high = _RANGES[name]
    if (low is not None and value < low) or (high is not None and value > high):
        raise _fail(f"{name} must be between {low} and {high}, got {value!r}", name)


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(f"{name} must be a positive integer, got {value!r}", name)


def _check_tools(tools: Any) -> None:
    if not isinstance(tools, list) or not tools:
        raise _fail("tools must be a non-empty list (leave it out for no tools)", "tools")
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise _fail(f"tools[{i}] must be {{type: function, function: {{name, ...}}}}", "tools")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, Mapping):
            raise _fail(f"tools[{i}].function.parameters must be a JSON schema object", "tools")


def _check_tool_choice(choice: Any, tools: Any) -> None:
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise _fail(
                f"tool_choice must be one of {sorted(TOOL_CHOICES)} or a function", "tool_choice"
            )
        return
    name = None
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        name = choice["function"].get("name")
    if not isinstance(name, str):
        raise _fail("tool_choice must be {type: function, function: {name}}", "tool_choice")
    if tools is not None:
        _check_tools(tools)  # tool_choice may come first in the kwargs: never index bad tools
    names = {t["function"]["name"] for t in tools or ()}
    if name not in names:
        raise _fail(f"tool_choice names {name!r}, which is not among the tools", "tool_choice")


def _check_response_format(fmt: Any) -> None:
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind not in RESPONSE_FORMATS:
        raise _fail(
            f"response_format.type must be one of {sorted(RESPONSE_FORMATS)}", "response_format"
        )
    if kind == "json_schema":
        js = fmt.get("json_schema")
        if (
            not isinstance(js, Mapping)
            or not js.get("name")
            or not isinstance(js.get("schema"), Mapping)
        ):
            raise _fail("response_format.json_schema needs a name and a schema", "response_format")


def _check_stop(stop: Any) -> None:
    if isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise _fail("stop must be a string or a list of non-empty strings", "stop")


def build_chat_body(
    model: str,
    messages: Sequence[Any],
    params: Mapping[str, Any],
    *,
    stream: bool = False,
    include_usage: bool = True,
) -> dict[str, Any]:
    """The JSON body of a chat completion, checked. Raises ``InvalidRequestError``."""
    if not isinstance(model, str) or not model.strip():
        raise _fail("model must be a non-empty string", "model")
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise _fail("messages must be a list of messages", "messages")
    if not messages:
        raise _fail("messages must not be empty", "messages")
    body: dict[str, Any] = {
        "model": model,
        "messages": [_check_message(m, i) for i, m in enumerate(messages)],
    }
    for name, value in params.items():
        if value is None:
            continue
        if name in _RANGES:
            _check_number(name, value)
        elif name in _POSITIVE_INTS:
            _check_positive_int(name, value)
        elif name == "tools":
            _check_tools(value)
        elif name == "tool_choice":
            _check_tool_choice(value, params.get("tools"))
        elif name == "response_format":
            _check_response_format(value)
        elif name == "stop":
            _check_stop(value)
        elif name == "seed" and (isinstance(value, bool) or not isinstance(value, int)):
            raise _fail("seed must be an integer", "seed")
        elif name in ("stream", "stream_options"):
            continue  # the client decides these
        body[name] = value
    if "tool_choice" in body and "tools" not in body:
        raise _fail("tool_choice needs tools", "tool_choice")
    if stream:
        body["stream"] = True
        if include_usage:
            body["stream_options"] = {"include_usage": True}
    return body


def build_embeddings_body(model: str, input: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body of an embeddings call, checked. Raises ``InvalidRequestError``."""
    if not isinstance(model, str) or not model.strip():
        raise _fail("model must be a non-empty string", "model")
    if isinstance(input, str):
        if not input:
            raise _fail("input must not be empty", "input")
    elif isinstance(input, list) and input and all(isinstance(t, str) for t in input):
        # The API refuses an empty text anywhere in the list (400), so refuse it here first.
        empty = next((i for i, text in enumerate(input) if not text), None)
        if empty is not None:
            raise _fail(f"input[{empty}] must not be empty", "input")
    else:
        raise _fail("input must be a non-empty string or a non-empty list of strings", "input")
    body = {"model": model, "input": input}
    dims = params.get("dimensions")
    if dims is not None:
        _check_positive_int("dimensions", dims)
    body.update({k: v for k, v in params.items() if v is not None})
    return body


# One encoder for every call: json.dumps with options builds a new one each time.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_json(body: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; a value JSON cannot carry is an ``InvalidRequestError``."""
    try:
        return _ENCODER.encode(body).encode()
    except (TypeError, ValueError) as exc:
        path = _find_unserialisable(body, "")
        raise _fail(
            f"request is not JSON-serialisable at {path or 'body'}: {exc}",
            path.lstrip(".") or "body",
        ) from exc


def _find_unserialisable(value: Any, path: str) -> str:
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{path}.{k!r}"
            found = _find_unserialisable(v, f"{path}.{k}")
            if found:
                return found
        return ""
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _find_unserialisable(v, f"{path}[{i}]")
            if found:
                return found
        return ""
    if value is None or isinstance(value, (str, int, bool)):
        return ""
    if isinstance(value, float):
        return "" if math.isfinite(value) else path
    return path
