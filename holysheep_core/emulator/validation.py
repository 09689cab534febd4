"""Parsing and validating request bodies, with the API's own error messages."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .catalog import ModelInfo, find_model
from .errors import APIError, invalid
from .tokens import content_text, count_prompt_tokens, count_tokens
from .values import ValueSource, instance_for

__all__ = [
    "ChatRequest",
    "EmbeddingRequest",
    "ResponseFormat",
    "ToolSpec",
    "parse_chat_request",
    "parse_embedding_request",
    "parse_json_body",
]

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
MAX_STOP_SEQUENCES = 4
MAX_CHOICES = 128
MAX_EMBEDDING_INPUTS = 2048
EMBEDDING_INPUT_TOKENS = 8192
MAX_DIMENSIONS = 3072
DEFAULT_DIMENSIONS = 256
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

CHAT_PARAMETERS = frozenset(
    """
    model messages audio frequency_penalty function_call functions logit_bias logprobs
    max_completion_tokens max_tokens metadata modalities n parallel_tool_calls prediction
    presence_penalty prompt_cache_key reasoning_effort response_format safety_identifier seed
    service_tier stop store stream stream_options temperature thinking tool_choice tools
    top_logprobs top_p user verbosity web_search_options
    """.split()  # noqa: SIM905 - a word list reads better than 35 quoted strings
)
"""Top-level chat parameters the API knows (OpenAI's, plus DeepSeek's ``thinking``)."""

EMBEDDING_PARAMETERS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})
"""Top-level embedding parameters the API knows."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated ``POST /v1/chat/completions`` body."""

    model: ModelInfo
    model_id: str
    messages: tuple[Mapping[str, Any], ...]
    prompt_tokens: int
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    n: int = 1
    seed: int | None = None
    tools: tuple[ToolSpec, ...] = ()
    # "auto" | "none" | "required" | ("function", name)
    tool_choice: str | tuple[str, str] = "auto"
    parallel_tool_calls: bool = True
    response_format: ResponseFormat = ResponseFormat()
    reasoning: bool = False
    stream: bool = False
    include_usage: bool = False


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """A validated ``POST /v1/embeddings`` body."""

    model_id: str
    inputs: tuple[str, ...]
    dimensions: int
    encoding_format: Literal["float", "base64"]


def parse_json_body(body: Any) -> Mapping[str, Any]:
    """The body as a JSON object, or the API's 400 for anything else."""
    if not isinstance(body, Mapping):
        raise invalid(
            "We could not parse the JSON body of your request. The API expects a JSON object.",
            code=None,
        )
    return body


def _refuse_unknown(body: Mapping[str, Any], known: frozenset[str]) -> None:
    # The API's own words for a misspelt or unsupported argument.
    unknown = [key for key in body if key not in known]
    if unknown:
        raise invalid(f"Unrecognized request argument supplied: {unknown[0]}", code=None)


def _present(body: Mapping[str, Any], key: str) -> bool:
    # The API treats an explicit null like an omitted parameter.
    return body.get(key) is not None


def _type_error(param: str, expected: str, value: Any) -> APIError:
    return invalid(
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Sequence):
        return "an array"
    return "an object"


def _number(
    body: Mapping[str, Any], key: str, low: float, high: float, *, integer: bool = False
) -> Any:
    value = body.get(key)
    if value is None:
        return None
    kind = "integer" if integer else "decimal"
    wrong = isinstance(value, bool) or not isinstance(value, int if integer else int | float)
    if wrong:
        raise _type_error(key, "an integer" if integer else "a number", value)
    if value < low:
        raise invalid(
            f"Invalid '{key}': {kind} below minimum value. Expected a value >= {low:g}, "
            f"but got {value} instead.",
            param=key,
            code=f"{kind}_below_min_value",
        )
    if value > high:
        raise invalid(
            f"Invalid '{key}': {kind} above maximum value. Expected a value <= {high:g}, "
            f"but got {value} instead.",
            param=key,
            code=f"{kind}_above_max_value",
        )
    return value


def _bool(body: Mapping[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _type_error(key, "a boolean", value)
    return value


def _mapping(value: Any, param: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _type_error(param, "an object", value)
    return value


def _list(value: Any, param: str) -> Sequence[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise _type_error(param, "an array", value)
    return value


def _require_model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if model is None or model == "":
        raise invalid("you must provide a model parameter", param="model", code=None)
    if not isinstance(model, str):
        raise _type_error("model", "a string", model)
    return model


def _unknown_model(model_id: str) -> APIError:
    return APIError(
        404,
        f"The model `{model_id}` does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate a chat completion body, raising the API's 400/404 ``APIError``."""
    body = parse_json_body(body)
    _refuse_unknown(body, CHAT_PARAMETERS)
    model_id = _require_model(body)
    model = find_model(model_id)
    if model is None:
        raise _unknown_model(model_id)
    messages = _messages(body.get("messages"))
    for key, low, high in (
        ("temperature", 0, 2),
        ("top_p", 0, 1),
        ("presence_penalty", -2, 2),
        ("frequency_penalty", -2, 2),
    ):
        _number(body, key, low, high)
    seed = _number(body, "seed", -(2**63), 2**63 - 1, integer=True)
    n = _number(body, "n", 1, MAX_CHOICES, integer=True) or 1
    max_tokens = _max_tokens(body, model)
    tools = _tools(body)
    stream = _bool(body, "stream", False)
    include_usage = False
    if _present(body, "stream_options"):
        if not stream:
            raise invalid(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        options = _mapping(body["stream_options"], "stream_options")
        include_usage = _bool(options, "include_usage", False)
    response_format = _response_format(body, messages)
    reasoning = _reasoning(body, model_id)
    if reasoning:
        _require_sent_back_reasoning(messages)
    prompt_tokens = count_prompt_tokens(messages, body.get("tools"))
    _check_context(model, prompt_tokens, max_tokens)
    return ChatRequest(
        model=model,
        model_id=model_id,
        messages=tuple(messages),
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        stop=_stop(body),
        n=n,
        seed=seed,
        tools=tools,
        tool_choice=_tool_choice(body, tools),
        parallel_tool_calls=_bool(body, "parallel_tool_calls", True),
        response_format=response_format,
        reasoning=reasoning,
        stream=stream,
        include_usage=include_usage,
    )


def _messages(value: Any) -> list[Mapping[str, Any]]:
    if value is None:
        raise invalid(
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    messages = _list(value, "messages")
    if not messages:
        raise invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    checked = [_message(message, f"messages[{i}]") for i, message in enumerate(messages)]
    _check_tool_replies(checked)
    return checked


def _message(value: Any, param: str) -> Mapping[str, Any]:
    message = _mapping(value, param)
    role = message.get("role")
    if role not in ROLES:
        supported = ", ".join(f"'{r}'" for r in ROLES)
        raise invalid(
            f"Invalid value: {role!r}. Supported values are: {supported}.", param=f"{param}.role"
        )
    content = message.get("content")
    if content is None:
        if role != "assistant" or not message.get("tool_calls"):
            raise invalid(
                f"Missing required parameter: '{param}.content'.",
                param=f"{param}.content",
                code="missing_required_parameter",
            )
    elif not isinstance(content, str):
        for i, part in enumerate(_list(content, f"{param}.content")):
            _content_part(part, f"{param}.content[{i}]")
    for key in ("name", "reasoning_content", "tool_call_id"):
        if _present(message, key) and not isinstance(message[key], str):
            raise _type_error(f"{param}.{key}", "a string", message[key])
    required = {"tool": "tool_call_id", "function": "name"}.get(role)
    if required and not _present(message, required):
        raise invalid(
            f"Missing required parameter: '{param}.{required}'.",
            param=f"{param}.{required}",
            code="missing_required_parameter",
        )
    if _present(message, "tool_calls"):
        if role != "assistant":
            raise invalid(
                "Invalid parameter: only messages with role 'assistant' can have 'tool_calls'.",
                param=f"{param}.tool_calls",
            )
        for i, call in enumerate(_list(message["tool_calls"], f"{param}.tool_calls")):
            _tool_call(call, f"{param}.tool_calls[{i}]")
    return message


def _content_part(value: Any, param: str) -> None:
    part = _mapping(value, param)
    kind = part.get("type")
    if kind == "text" and isinstance(part.get("text"), str):
        return
    if kind == "image_url" and isinstance(part.get("image_url"), Mapping):
        return
    raise invalid(
        f"Invalid content part at '{param}': expected a 'text' part with a string 'text' "
        "or an 'image_url' part with an 'image_url' object.",
        param=param,
    )


def _tool_call(value: Any, param: str) -> None:
    call = _mapping(value, param)
    function = _mapping(call.get("function"), f"{param}.function")
    for key, field in (("id", call.get("id")), ("function.name", function.get("name"))):
        if not isinstance(field, str):
            raise _type_error(f"{param}.{key}", "a string", field)
    if not isinstance(function.get("arguments"), str):
        raise _type_error(f"{param}.function.arguments", "a string", function.get("arguments"))


def _check_tool_replies(messages: Sequence[Mapping[str, Any]]) -> None:
    """Each assistant tool call is answered by tool messages right after it, as the API demands."""
    pending: set[str] | None = None
    for i, message in enumerate(messages):
        if message["role"] == "tool":
            if pending is None or message["tool_call_id"] not in pending:
                raise invalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceding message with 'tool_calls'.",
                    param=f"messages[{i}].role",
                )
            pending.discard(message["tool_call_id"])
            continue
        _no_pending(pending, i)
        calls = message.get("tool_calls") or ()
        pending = {call["id"] for call in calls} if calls else None
    _no_pending(pending, len(messages))


def _no_pending(pending: set[str] | None, index: int) -> None:
    if pending:
        raise invalid(
            "An assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(sorted(pending))}",
            param=f"messages[{index}].role",
        )


def _max_tokens(body: Mapping[str, Any], model: ModelInfo) -> int | None:
    # max_completion_tokens is the newer name; a server honours it first.
    key = "max_completion_tokens" if _present(body, "max_completion_tokens") else "max_tokens"
    value = _number(body, key, 1, 2**31, integer=True)
    if value is not None and value > model.max_output_tokens:
        raise invalid(
            f"max_tokens is too large: {value}. This model supports at most "
            f"{model.max_output_tokens} completion tokens, whereas you provided {value}.",
            param=key,
        )
    return value


def _stop(body: Mapping[str, Any]) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    stops = _list(value, "stop")
    if len(stops) > MAX_STOP_SEQUENCES or not all(isinstance(s, str) for s in stops):
        raise invalid(
            f"Invalid 'stop': expected a string or an array of at most {MAX_STOP_SEQUENCES} "
            "strings.",
            param="stop",
        )
    return tuple(s for s in stops if s)


def _tools(body: Mapping[str, Any]) -> tuple[ToolSpec, ...]:
    if not _present(body, "tools"):
        return ()
    tools = _list(body["tools"], "tools")
    if not tools:
        raise invalid(
            "Invalid 'tools': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param="tools",
            code="empty_array",
        )
    specs = []
    for i, value in enumerate(tools):
        tool = _mapping(value, f"tools[{i}]")
        if tool.get("type") != "function":
            raise invalid(
                f"Invalid value: {tool.get('type')!r}. Supported values are: 'function'.",
                param=f"tools[{i}].type",
            )
        function = _mapping(tool.get("function"), f"tools[{i}].function")
        name = function.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise invalid(
                f"Invalid 'tools[{i}].function.name': string does not match pattern. "
                f"Expected a string that matches the pattern '{_NAME.pattern}'.",
                param=f"tools[{i}].function.name",
            )
        parameters = function.get("parameters") or {}
        _check_schema(parameters, f"tools[{i}].function.parameters", f"function '{name}'")
        description = function.get("description") or ""
        if not isinstance(description, str):
            raise _type_error(f"tools[{i}].function.description", "a string", description)
        specs.append(ToolSpec(name, description, parameters))
    return tuple(specs)


def _tool_choice(body: Mapping[str, Any], tools: Sequence[ToolSpec]) -> str | tuple[str, str]:
    value = body.get("tool_choice")
    if value is None:
        return "auto"
    if not tools:
        raise invalid(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
            "are specified.",
            param="tool_choice",
        )
    if value in ("auto", "none", "required"):
        return value
    choice = value if isinstance(value, Mapping) else {}
    function = choice.get("function")
    name = function.get("name") if isinstance(function, Mapping) else None
    if choice.get("type") != "function" or not isinstance(name, str):
        raise invalid(
            "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or "
            "{'type': 'function', 'function': {'name': ...}}.",
            param="tool_choice",
        )
    if name not in {tool.name for tool in tools}:
        raise invalid(
            f"Invalid value for 'tool_choice': function '{name}' is not one of the "
            "functions in 'tools'.",
            param="tool_choice",
        )
    return ("function", name)


def _response_format(
    body: Mapping[str, Any], messages: Sequence[Mapping[str, Any]]
) -> ResponseFormat:
    if not _present(body, "response_format"):
        return ResponseFormat()
    value = _mapping(body["response_format"], "response_format")
    kind = value.get("type")
    if kind == "text":
        return ResponseFormat()
    if kind == "json_object":
        if not any("json" in content_text(m.get("content")).lower() for m in messages):
            raise invalid(
                "'messages' must contain the word 'json' in some form, to use "
                "'response_format' of type 'json_object'.",
                param="messages",
                code=None,
            )
        return ResponseFormat("json_object")
    if kind == "json_schema":
        spec = _mapping(value.get("json_schema"), "response_format.json_schema")
        name = spec.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise invalid(
                "Invalid 'response_format.json_schema.name': expected a string that matches "
                f"the pattern '{_NAME.pattern}'.",
                param="response_format.json_schema.name",
            )
        schema = spec.get("schema")
        if schema is not None:
            _check_schema(schema, "response_format.json_schema.schema", f"response_format '{name}'")
        return ResponseFormat("json_schema", schema)
    raise invalid(
        f"Invalid value: {kind!r}. Supported values are: 'text', 'json_object' and 'json_schema'.",
        param="response_format.type",
    )


def _check_schema(schema: Any, param: str, owner: str) -> None:
    """Refuse a schema the value builder cannot fill, as the API refuses invalid schemas."""
    _mapping(schema, param)
    try:
        instance_for(schema, ValueSource(""))
    except (LookupError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise invalid(
            f"Invalid schema for {owner}: {type(exc).__name__}: {exc}.", param=param
        ) from None


def _reasoning(body: Mapping[str, Any], model_id: str) -> bool:
    thinking = body.get("thinking")
    thinking_type = None
    if thinking is not None:
        thinking_type = _mapping(thinking, "thinking").get("type")
        if thinking_type not in ("enabled", "disabled"):
            raise invalid(
                f"Invalid value: {thinking_type!r}. Supported values are: 'enabled' and "
                "'disabled'.",
                param="thinking.type",
            )
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        supported = ", ".join(f"'{e}'" for e in REASONING_EFFORTS)
        raise invalid(
            f"Invalid value: {effort!r}. Supported values are: {supported}.",
            param="reasoning_effort",
        )
    if thinking_type == "enabled" or effort not in (None, "none"):
        return True
    reasoner_name = "reasoner" in model_id or "thinking" in model_id
    return reasoner_name and thinking_type != "disabled"


def _require_sent_back_reasoning(messages: Sequence[Mapping[str, Any]]) -> None:
    """DeepSeek's thinking-mode rule: tool-call turns since the last user message keep reasoning."""
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    for i, message in enumerate(messages[last_user + 1 :], start=last_user + 1):
        if message.get("tool_calls") and "reasoning_content" not in message:
            raise invalid(
                f"Missing `reasoning_content` field in the assistant message at message index {i}.",
                param=f"messages[{i}].reasoning_content",
                code=None,
            )


def _check_context(model: ModelInfo, prompt_tokens: int, max_tokens: int | None) -> None:
    requested = prompt_tokens + (max_tokens or 0)
    if requested <= model.context_window:
        return
    if max_tokens:
        detail = (
            f"However, you requested {requested} tokens ({prompt_tokens} in the messages, "
            f"{max_tokens} in the completion). Please reduce the length of the messages or "
            "completion."
        )
    else:
        detail = (
            f"However, your messages resulted in {prompt_tokens} tokens. Please reduce the "
            "length of the messages."
        )
    raise invalid(
        f"This model's maximum context length is {model.context_window} tokens. {detail}",
        param="messages",
        code="context_length_exceeded",
    )


def parse_embedding_request(body: Any) -> EmbeddingRequest:
    """Validate an embeddings body, raising the API's 400 ``APIError``."""
    body = parse_json_body(body)
    _refuse_unknown(body, EMBEDDING_PARAMETERS)
    model_id = _require_model(body)
    value = body.get("input")
    if value is None:
        raise invalid(
            "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
        )
    inputs = [value] if isinstance(value, str) else list(_list(value, "input"))
    if not inputs or len(inputs) > MAX_EMBEDDING_INPUTS:
        raise invalid(
            f"Invalid 'input': expected between 1 and {MAX_EMBEDDING_INPUTS} inputs.",
            param="input",
        )
    for i, text in enumerate(inputs):
        if not isinstance(text, str):
            raise invalid(
                "Invalid 'input': the emulator accepts a string or an array of strings "
                "(token arrays are not supported).",
                param=f"input[{i}]",
            )
        if not text:
            raise invalid("'$.input' is invalid: inputs must not be empty.", param="input")
        tokens = count_tokens(text)
        if tokens > EMBEDDING_INPUT_TOKENS:
            raise invalid(
                f"This model's maximum context length is {EMBEDDING_INPUT_TOKENS} tokens, "
                f"however you requested {tokens} tokens in input[{i}]. Please reduce your "
                "prompt.",
                param="input",
                code="context_length_exceeded",
            )
    dimensions = _number(body, "dimensions", 1, MAX_DIMENSIONS, integer=True)
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise invalid(
            f"Invalid value: {encoding!r}. Supported values are: 'float' and 'base64'.",
            param="encoding_format",
        )
    return EmbeddingRequest(model_id, tuple(inputs), dimensions or DEFAULT_DIMENSIONS, encoding)
