"""``OpenAILike`` / ``OpenAI`` / ``OpenAIEmbedding`` constructor arguments, as ``HolySheep``
and ``HolySheepEmbedding`` take them, so swapping the class in existing code just works or
says why not. LlamaIndex models otherwise ignore an argument they do not know, silently.

Settings we have are taken (``default_headers``; ``logprobs``, ``top_logprobs`` and
``reasoning_effort`` go into ``additional_kwargs`` and are sent; ``model`` names the
embedding model; ``should_use_structured_outputs`` picks ``structured_output``); OpenAI
client options HolySheep has no use for are refused when given a value, saying what to do
instead; any other unknown argument is refused, naming ``additional_kwargs`` for request
parameters.
"""

from __future__ import annotations

from typing import Any

from holysheep_core import ConfigurationError

__all__ = ["from_openai_arguments"]

_SENT = ("logprobs", "top_logprobs", "reasoning_effort")

_REFUSED = {
    "api_version": "HolySheep's API has no versions",
    "http_client": "the core pools connections itself: size the pool with "
    'client_settings={"max_connections": ...}, or pass a core client=',
    "async_http_client": "the core pools connections itself: size the pool with "
    'client_settings={"max_connections": ...}, or pass a core async_client=',
    "openai_client": "pass a core client= (HolySheepClient)",
    "async_openai_client": "pass a core async_client= (AsyncHolySheepClient)",
    "tokenizer": "HolySheep knows each model's window; set context_window= for another model",
    "modalities": "the API answers with text",
    "audio_config": "the API answers with text",
}


def from_openai_arguments(
    data: dict[str, Any], own_fields: set[str], *, owner: str
) -> dict[str, Any]:
    """``data`` (keyword arguments) with OpenAILike's spellings translated.

    Raises:
        ConfigurationError: an OpenAI-client option with a value, or an unknown argument.
    """
    data = dict(data)
    if "model" in data and "model" not in own_fields:  # OpenAIEmbedding(model=...)
        model = data.pop("model")
        if data.get("model_name") not in (None, model):
            raise ConfigurationError(f"{owner}: model= and model_name= are one setting: give one")
        data["model_name"] = model
    sent = {k: data.pop(k) for k in _SENT if k in data and k not in own_fields}
    if any(v is not None for v in sent.values()):
        data["additional_kwargs"] = {
            **{k: v for k, v in sent.items() if v is not None},
            **(data.get("additional_kwargs") or {}),
        }
    if "is_chat_model" not in own_fields and data.pop("is_chat_model", None) is False:
        raise ConfigurationError(f"{owner} serves chat models only: leave is_chat_model out")
    structured = data.pop("should_use_structured_outputs", None)
    if structured and "structured_output" in own_fields:
        data.setdefault("structured_output", "json_schema")
    data.pop("reuse_client", None)  # clients are always shared and pooled, per event loop
    for name, instead in _REFUSED.items():
        if name in data and name not in own_fields and data.pop(name) is not None:
            raise ConfigurationError(f"{owner} does not take {name}=: {instead}")
    unknown = sorted(k for k in data if k not in own_fields)
    if unknown:
        raise ConfigurationError(
            f"{owner} got unknown argument(s) {unknown}: request parameters go in "
            "additional_kwargs={...}"
        )
    return data
