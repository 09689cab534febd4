"""An embeddings answer must hold one vector per input text: a vector short, extra or
repeated would pair every later text with the wrong vector, silently."""

from __future__ import annotations

from typing import Any

import pytest

from holysheep_core import APIResponseValidationError

MODEL = "text-embedding-3-small"


def answer(scripted: Any, indices: list[int]) -> Any:
    data = [{"object": "embedding", "index": i, "embedding": [1.0, 0.0]} for i in indices]
    body = {
        "object": "list",
        "data": data,
        "model": MODEL,
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }
    return scripted.Answer(body=body)


@pytest.mark.parametrize(
    "indices", [[0, 1], [0, 1, 2, 3], [0, 1, 1]], ids=["short", "extra", "repeated"]
)
def test_sync_refuses_misaligned_vectors(scripted: Any, make_client: Any, indices: list) -> None:
    client = make_client(base_url=scripted.url)
    scripted.queue(answer(scripted, indices))
    with pytest.raises(APIResponseValidationError) as caught:
        client.embeddings(model=MODEL, input=["a", "b", "c"])
    assert "3 input texts" in str(caught.value)
    stats = client.stats()
    assert stats.errors == {"APIResponseValidationError": 1}
    assert stats.usage.input_tokens == 3  # answered, so billed: still in the ledger


async def test_async_refuses_a_short_batch_among_good_ones(
    scripted: Any, make_async_client: Any
) -> None:
    client = make_async_client(base_url=scripted.url)
    scripted.queue(answer(scripted, [0, 1]), answer(scripted, [0]))  # batch 2: 1 of 2
    with pytest.raises(APIResponseValidationError) as caught:
        await client.embeddings(model=MODEL, input=["a", "b", "c", "d"], batch_size=2)
    assert "1 embeddings" in str(caught.value) and "2 input texts" in str(caught.value)
    assert client.stats().errors == {"APIResponseValidationError": 1}


def test_aligned_vectors_in_any_order_pass(scripted: Any, make_client: Any) -> None:
    client = make_client(base_url=scripted.url)
    scripted.queue(answer(scripted, [2, 0, 1]))
    result = client.embeddings(model=MODEL, input=["a", "b", "c"])
    assert len(result.data) == 3
