"""``ChatOpenAI``'s constructor arguments, as ``ChatHolySheep`` takes them.

Swapping the class in existing code should just work: ChatOpenAI's spellings of our own
settings are renamed (``openai_api_key``, ``openai_api_base``, a ``(connect, read)`` or
``httpx.Timeout`` ``request_timeout``, ``reasoning={"effort": ...}``), arguments that
name an OpenAI-client feature HolySheep has no use for are refused with what to use
instead (unless they are None, as code reading optional settings passes them), a near
miss of one of our own names (``temprature``) is refused as the typo it is, and any other
unknown argument goes into ``model_kwargs`` with a warning and is sent on the wire as it
is, which is what ``ChatOpenAI`` does with arguments it does not know.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping
from typing import Any

from holysheep_core import ConfigurationError

__all__ = ["from_openai_arguments"]

# ChatOpenAI's name -> ours.
_RENAMED = {
    "openai_api_key": "api_key",
    "openai_api_base": "base_url",
    "max_completion_tokens": "max_tokens",
}

# Arguments of the OpenAI client with no HolySheep meaning -> what to do instead.
_REFUSED = {
    "organization": "HolySheep bills by API key and has no organizations: leave it out",
    "openai_organization": "HolySheep bills by API key and has no organizations: leave it out",
    "openai_proxy": "set HTTPS_PROXY in the environment, or inject a core client=",
    "http_client": "the core pools connections itself: size the pool with "
    'client_settings={"max_connections": ...}, or inject a core client=',
    "http_async_client": "the core pools connections itself: size the pool with "
    'client_settings={"max_connections": ...}, or inject a core async_client=',
    "http_socket_options": "inject a core client= configured as you need",
    "root_client": "inject a core client= (HolySheepClient)",
    "root_async_client": "inject a core async_client= (AsyncHolySheepClient)",
    "default_query": "HolySheep takes no query parameters; send request fields with "
    "model_kwargs= or extra_body=, headers with default_headers=",
    "tiktoken_model_name": "HolySheep publishes no tokenizer and get_num_tokens() "
    "estimates; to count with tiktoken pass "
    "custom_get_token_ids=tiktoken.encoding_for_model(NAME).encode",
    "stream_chunk_timeout": 'the read timeout bounds each chunk: timeout={"read": ...}',
    "use_responses_api": "HolySheep serves the Chat Completions API only",
    "use_previous_response_id": "HolySheep serves the Chat Completions API only",
    "include_response_headers": "response_metadata carries the request id; the core "
    "reads the rate-limit headers itself",
}


def from_openai_arguments(data: Any, own_fields: set[str]) -> Any:
    """``data`` (constructor arguments) with ChatOpenAI's spellings translated.

    Args:
        data: the arguments as given (a dict; anything else is returned as it is).
        own_fields: the names (and aliases) ``ChatHolySheep`` takes itself.

    Raises:
        ConfigurationError: an OpenAI-client argument with a value, naming what to use.
    """
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for theirs, ours in _RENAMED.items():
        if theirs in data and theirs not in own_fields:
            value = data.pop(theirs)
            if ours in data and data[ours] is not None and value is not None:
                raise ConfigurationError(f"{theirs}= and {ours}= are the same setting: give one")
            if value is not None or ours not in data:
                data[ours] = value
    for name in ("timeout", "request_timeout"):
        if name in data:
            data[name] = _timeout(data[name])
    if isinstance(data.get("reasoning"), Mapping) and "reasoning" not in own_fields:
        reasoning = dict(data.pop("reasoning"))
        if "effort" in reasoning and data.get("reasoning_effort") is None:
            data["reasoning_effort"] = reasoning.pop("effort")
        if reasoning:  # summary and the like: Responses-API only
            data["reasoning"] = reasoning
    if data.get("stream_usage", True) is None:
        del data["stream_usage"]  # ChatOpenAI's "decide for me": ours is on
    for name, instead in _REFUSED.items():
        if name in data and name not in own_fields and data.pop(name) is not None:
            raise ConfigurationError(f"ChatHolySheep does not take {name}=: {instead}")
    extra = [k for k in data if k not in own_fields]
    for name in extra:
        # A misspelt setting would go out on the wire and fail there, or be ignored.
        close = difflib.get_close_matches(name, sorted(own_fields), n=1, cutoff=0.8)
        if close:
            raise ConfigurationError(f"ChatHolySheep got {name}=: did you mean {close[0]}=?")
    if extra:
        model_kwargs = dict(data.get("model_kwargs") or {})
        for name in extra:
            value = data.pop(name)
            if value is None:
                continue  # nothing to send
            warnings.warn(
                f"{name} is not a ChatHolySheep argument: it goes into model_kwargs and is "
                "sent on every request as it is. Please confirm the HolySheep API takes it.",
                UserWarning,
                stacklevel=3,
            )
            model_kwargs[name] = value
        data["model_kwargs"] = model_kwargs
    return data


def _timeout(value: Any) -> Any:
    """``(connect, read)`` and ``httpx.Timeout`` as the core's ``{connect, read, ...}``."""
    if isinstance(value, tuple) and len(value) == 2:
        connect, read = value
        return {"connect": connect, "read": read}
    parts = {k: getattr(value, k, None) for k in ("connect", "read", "write", "pool")}
    if type(value).__name__ == "Timeout" and any(v is not None for v in parts.values()):
        return {k: v for k, v in parts.items() if v is not None}
    return value
