"""HolySheepEmbeddings: langchain-tests' standard suites and our own checks."""

from __future__ import annotations

import math
from typing import Any

import pytest
from langchain_core.exceptions import ModelAPIError
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from holysheep_core.emulator import Fault
from langchain_holysheep import HolySheepEmbeddings

UNIT_KEY = "hs-unit-test-key"
UNIT_URL = "https://holysheep.example/v1"
MODEL = "text-embedding-3-small"


class TestHolySheepEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[HolySheepEmbeddings]:
        return HolySheepEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": MODEL, "api_key": UNIT_KEY}

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        return (
            {"HOLYSHEEP_API_KEY": UNIT_KEY, "HOLYSHEEP_BASE_URL": UNIT_URL},
            {"model": MODEL},
            {"api_key": UNIT_KEY, "base_url": UNIT_URL},
        )


class TestHolySheepEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @pytest.fixture(autouse=True)
    def _emulator(self, base_url: str, api_key: str) -> None:
        self._base_url = base_url
        self._api_key = api_key

    @property
    def embeddings_class(self) -> type[HolySheepEmbeddings]:
        return HolySheepEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": MODEL, "api_key": self._api_key, "base_url": self._base_url}


def _bodies(emulator: Any) -> list[dict[str, Any]]:
    return [r.body for r in emulator.requests if r.path == "/v1/embeddings"]


def test_batches_keep_order(emulator: Any, base_url: str, api_key: str) -> None:
    texts = [f"sheep number {i}" for i in range(5)]
    batched = HolySheepEmbeddings(model=MODEL, api_key=api_key, base_url=base_url, batch_size=2)
    vectors = batched.embed_documents(texts)
    assert [len(b["input"]) for b in _bodies(emulator)] == [2, 2, 1]
    one_by_one = [batched.embed_query(t) for t in texts]
    assert vectors == one_by_one


async def test_async_twins(embeddings: HolySheepEmbeddings) -> None:
    texts = ["a white sheep", "a black sheep", "a red tractor"]
    vectors = await embeddings.aembed_documents(texts)
    assert vectors == embeddings.embed_documents(texts)
    assert await embeddings.aembed_query(texts[0]) == vectors[0]


def test_dimensions_and_norm(emulator: Any, base_url: str, api_key: str) -> None:
    model = HolySheepEmbeddings(model=MODEL, api_key=api_key, base_url=base_url, dimensions=64)
    (vector,) = model.embed_documents(["a flock of sheep"])
    assert len(vector) == 64
    assert math.isclose(sum(x * x for x in vector), 1.0)
    assert _bodies(emulator)[0]["dimensions"] == 64


def test_similar_texts_are_closer(embeddings: HolySheepEmbeddings) -> None:
    sheep, lamb_sheep, tractor = embeddings.embed_documents(
        ["sheep in the meadow", "sheep and lambs in the meadow", "a red tractor engine"]
    )

    def dot(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert dot(sheep, lamb_sheep) > dot(sheep, tractor)


def test_empty_list_costs_no_request(emulator: Any, embeddings: HolySheepEmbeddings) -> None:
    assert embeddings.embed_documents([]) == []
    assert emulator.requests == []


def test_errors_are_mapped(emulator: Any, base_url: str, api_key: str) -> None:
    emulator.inject(Fault.status(500).at("/v1/embeddings"))
    model = HolySheepEmbeddings(model=MODEL, api_key=api_key, base_url=base_url, max_retries=0)
    with pytest.raises(ModelAPIError) as caught:
        model.embed_query("hi")
    assert caught.value.status_code == 500
