"""Settings errors never print the key; misaligned embeddings never pass as an answer."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from holysheep_core import APIResponseValidationError, ConfigurationError
from llama_index_holysheep import HolySheep, HolySheepEmbedding

KEY = "hs-LEAKCHECK-0123456789abcdef"


@pytest.mark.parametrize(
    "build",
    [
        lambda: HolySheep(api_key=KEY, temperature=KEY),
        lambda: HolySheep(api_key=KEY, max_tokens="many"),
        lambda: HolySheepEmbedding(api_key=KEY, embed_batch_size=KEY),
        lambda: HolySheepEmbedding(api_key=KEY, timeout=KEY),
    ],
)
def test_a_validation_error_never_prints_the_key(build: Any) -> None:
    with pytest.raises((ValidationError, ConfigurationError)) as caught:
        build()
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)


def test_credentials_in_the_base_url_are_refused(api_key: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        HolySheep(api_key=api_key, api_base="http://me:hunter2@127.0.0.1:9/v1")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_embeddings_with_a_vector_missing_are_refused(
    raw_server: Any, api_key: str, asynchronous: bool
) -> None:
    model = HolySheepEmbedding(api_key=api_key, api_base=raw_server.url("short-embeddings"))
    try:
        with pytest.raises(APIResponseValidationError) as caught:
            if asynchronous:
                await model.aget_text_embedding_batch(["a", "b", "c"])
            else:
                model.get_text_embedding_batch(["a", "b", "c"])
        assert "2 embeddings" in str(caught.value)
    finally:
        await model._clients.asynchronous().aclose()
