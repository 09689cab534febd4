"""Swapping ``OpenAILike(...)`` / ``OpenAIEmbedding(...)`` for ``HolySheep(...)`` /
``HolySheepEmbedding(...)``: their arguments are taken, or refused saying why, never
ignored in silence."""

from __future__ import annotations

from typing import Any

import pytest

from holysheep_core import ConfigurationError
from llama_index_holysheep import HolySheep, HolySheepEmbedding


def test_an_openai_like_call_swapped_for_holysheep(
    api_key: str, base_url: str, emulator: Any, opened: list[Any]
) -> None:
    llm = HolySheep(
        model="deepseek-v3.2",
        api_key=api_key,
        api_base=base_url,
        is_chat_model=True,
        is_function_calling_model=True,
        context_window=64_000,
        max_tokens=200,
        temperature=0.1,
        timeout=30,
        max_retries=2,
        reuse_client=True,
        default_headers={"X-App": "farm"},
        additional_kwargs={"seed": 3},
        logprobs=True,
        top_logprobs=2,
        reasoning_effort="low",
        should_use_structured_outputs=True,
        strict=False,
    )
    opened.append(llm)
    assert llm.metadata.context_window == 64_000
    assert llm.structured_output == "json_schema"
    llm.complete("Hi")
    recorded = emulator.requests[-1]
    assert recorded.headers["x-app"] == "farm"
    body = recorded.body
    assert (body["logprobs"], body["top_logprobs"], body["reasoning_effort"]) == (True, 2, "low")
    assert (body["seed"], body["max_tokens"], body["temperature"]) == (3, 200, 0.1)


def test_is_function_calling_model_false_is_honoured(api_key: str) -> None:
    llm = HolySheep(api_key=api_key, is_function_calling_model=False)
    assert llm.metadata.is_function_calling_model is False


def test_an_openai_embedding_call_swapped_for_holysheep_embedding(
    api_key: str, base_url: str, emulator: Any, opened: list[Any]
) -> None:
    model = HolySheepEmbedding(
        model="text-embedding-3-large",
        api_key=api_key,
        api_base=base_url,
        embed_batch_size=50,
        dimensions=256,
        max_retries=3,
        timeout=20,
        reuse_client=True,
        default_headers={"X-App": "farm"},
    )
    opened.append(model)
    assert model.model_name == "text-embedding-3-large"
    model.get_text_embedding("hello")
    recorded = emulator.requests[-1]
    assert recorded.body["model"] == "text-embedding-3-large"
    assert recorded.headers["x-app"] == "farm"


@pytest.mark.parametrize(
    ("cls", "name", "value", "instead"),
    [
        (HolySheep, "is_chat_model", False, "chat models only"),
        (HolySheep, "api_version", "2024-06-01", "no versions"),
        (HolySheep, "http_client", object(), "max_connections"),
        (HolySheep, "tokenizer", "gpt2", "context_window"),
        (HolySheep, "temprature", 0.3, "additional_kwargs"),
        (HolySheepEmbedding, "async_http_client", object(), "max_connections"),
        (HolySheepEmbedding, "mode", "similarity", "additional_kwargs"),
    ],
)
def test_what_cannot_be_taken_is_refused_saying_why(
    api_key: str, cls: Any, name: str, value: Any, instead: str
) -> None:
    with pytest.raises(ConfigurationError, match=instead) as raised:
        cls(api_key=api_key, **{name: value})
    assert name in str(raised.value)
    assert api_key not in str(raised.value)


def test_none_for_an_openai_client_option_is_fine(api_key: str) -> None:
    HolySheep(api_key=api_key, http_client=None, api_version=None, tokenizer=None)


def test_model_and_model_name_disagreeing_is_refused(api_key: str) -> None:
    with pytest.raises(ConfigurationError, match="one setting"):
        HolySheepEmbedding(model="text-embedding-3-large", model_name="x", api_key=api_key)
    assert HolySheepEmbedding(api_key=api_key).model_name == "text-embedding-3-small"
