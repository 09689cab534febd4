"""Settings errors never print the key; misaligned embeddings never pass as an answer."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from holysheep_core import APIResponseValidationError, ConfigurationError
from langchain_holysheep import ChatHolySheep, HolySheepEmbeddings

KEY = "hs-LEAKCHECK-0123456789abcdef"


@pytest.mark.parametrize(
    "build",
    [
        lambda: HolySheepEmbeddings(api_key=KEY),  # no model
        lambda: HolySheepEmbeddings(model="m", api_key=KEY, chunk_size=KEY),
        lambda: ChatHolySheep(api_key=KEY, temperature=KEY),
        lambda: ChatHolySheep(api_key=KEY, max_tokens="many"),
    ],
    ids=["embeddings-no-model", "embeddings-bad-field", "chat-bad-field", "chat"],
)
def test_a_validation_error_never_prints_the_key(build: Any) -> None:
    with pytest.raises((ValidationError, ConfigurationError)) as caught:
        build()
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)


def test_an_unknown_argument_holding_the_key_is_never_printed() -> None:
    # Like ChatOpenAI, an unknown argument goes into model_kwargs with a warning, which names
    # the argument, never its value; the model's repr never shows its key.
    with pytest.warns(UserWarning) as warned:
        chat = ChatHolySheep(api_key=KEY, not_a_field=KEY)
    assert chat.model_kwargs == {"not_a_field": KEY}
    assert any("not_a_field" in str(w.message) for w in warned)
    assert all(KEY not in str(w.message) for w in warned)
    with pytest.warns(UserWarning):
        chat = ChatHolySheep(api_key=KEY, not_a_field="x")
    assert KEY not in repr(chat) and KEY not in str(chat)


def test_credentials_in_the_base_url_are_refused(api_key: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        ChatHolySheep(api_key=api_key, base_url="http://me:hunter2@127.0.0.1:9/v1")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_embeddings_with_a_vector_missing_are_refused(
    raw_server: Any, api_key: str, asynchronous: bool
) -> None:
    model = HolySheepEmbeddings(
        model="m", api_key=api_key, base_url=raw_server.url("short-embeddings")
    )
    with pytest.raises(APIResponseValidationError) as caught:
        if asynchronous:
            await model.aembed_documents(["a", "b", "c"])
        else:
            model.embed_documents(["a", "b", "c"])
    assert "2 embeddings" in str(caught.value) and "3 input texts" in str(caught.value)
