"""Embeddings: shape, stability, similarity and retrieval, usage, and refused inputs."""

import math

import httpx
import pytest
from emulator_helpers import error_of

from holysheep_core.emulator import count_tokens, embed

DOCUMENTS = [
    "The Eiffel Tower is a wrought iron lattice tower in Paris.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar in plants.",
    "The Great Wall of China stretches across the northern border of China.",
    "Python is a programming language with dynamic typing and garbage collection.",
]


def embeddings(client: httpx.Client, texts: list[str] | str, **body: object) -> list[list[float]]:
    response = client.post(
        "/embeddings", json={"model": "text-embedding-3-small", "input": texts, **body}
    )
    assert response.status_code == 200, response.text
    return [item["embedding"] for item in response.json()["data"]]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_vectors_are_normalised_with_the_requested_dimensions(client: httpx.Client) -> None:
    (default,) = embeddings(client, "hello world")
    (small,) = embeddings(client, ["hello world"], dimensions=32)
    assert (len(default), len(small)) == (256, 32)
    for vector in (default, small):
        assert math.fsum(x * x for x in vector) == pytest.approx(1.0)


def test_vectors_are_stable_and_match_embed(client: httpx.Client) -> None:
    first = embeddings(client, DOCUMENTS)
    assert embeddings(client, DOCUMENTS) == first
    assert first[0] == pytest.approx(embed(DOCUMENTS[0], 256))


def test_texts_sharing_words_are_closer(client: httpx.Client) -> None:
    tower, tower_again, plants = embeddings(
        client, ["the iron tower in Paris", "Paris has an iron tower", "plants need sunlight"]
    )
    assert cosine(tower, tower_again) > 0.9
    assert cosine(tower, tower_again) > cosine(tower, plants) + 0.5


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Which tower stands in Paris?", 0),
        ("How do plants use sunlight?", 1),
        ("Where is the Great Wall?", 2),
        ("Which programming language has garbage collection?", 3),
    ],
)
def test_retrieval_over_a_small_document_set_works(
    client: httpx.Client, question: str, answer: int
) -> None:
    *documents, query = embeddings(client, [*DOCUMENTS, question])
    scores = [cosine(query, document) for document in documents]
    assert scores.index(max(scores)) == answer


def test_usage_counts_the_input_tokens(client: httpx.Client) -> None:
    body = client.post("/embeddings", json={"model": "e", "input": DOCUMENTS[:2]}).json()
    tokens = sum(map(count_tokens, DOCUMENTS[:2]))
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    assert body["model"] == "e"


def test_text_without_content_words_still_gets_a_unit_vector() -> None:
    assert math.fsum(x * x for x in embed("the of and", 8)) == pytest.approx(1.0)
    assert math.fsum(x * x for x in embed("!!!", 8)) == pytest.approx(1.0)
    assert embed("  ", 8) == [1.0] + [0.0] * 7


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [[1, 2, 3]]}, "input[0]"),
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": None}, "input"),
        ({"input": "hi", "dimensions": 0}, "dimensions"),
        ({"input": "hi", "encoding_format": "hex"}, "encoding_format"),
        ({"input": "word " * 8193}, "input"),
        ({"input": "hi", "model": None}, "model"),
    ],
    ids=[
        "token-arrays",
        "empty-string",
        "empty-list",
        "missing",
        "zero-dims",
        "hex",
        "too-long",
        "no-model",
    ],
)
def test_invalid_embedding_requests_are_refused(
    client: httpx.Client, body: dict, param: str
) -> None:
    body = {key: value for key, value in {"model": "e", **body}.items() if value is not None}
    assert error_of(client.post("/embeddings", json=body), 400)["param"] == param
