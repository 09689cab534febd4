"""Embeddings and a whole retrieval pipeline: index, retrieve, answer, stream.

The emulator's embeddings are feature-hashed bags of content words (``embed``), so a
question shares its nearest neighbour with the document that shares its words.
"""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex, get_response_synthesizer
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index_helpers import embedding_usage_by_rule, usage_by_rule

from holysheep_core import InvalidRequestError
from holysheep_core.emulator import embed
from llama_index_holysheep import HolySheepCostHandler, HolySheepEmbedding

DEFAULT_DIMENSIONS = 256  # the emulator's, when a request names none

DOCUMENTS = [
    Document(text="Cats eat fish and sleep all afternoon.", doc_id="cats"),
    Document(text="Volcanoes erupt lava and ash from the mountain.", doc_id="volcanoes"),
    Document(text="Bicycles have two wheels, pedals and a chain.", doc_id="bicycles"),
]


def test_vectors_are_the_servers(embed_model: HolySheepEmbedding) -> None:
    text = "Cats eat fish"
    assert embed_model.get_text_embedding(text) == embed(text, DEFAULT_DIMENSIONS)
    assert embed_model.get_query_embedding(text) == embed(text, DEFAULT_DIMENSIONS)


async def test_batches_follow_embed_batch_size(make_embedding: Any, emulator: Any) -> None:
    model = make_embedding(embed_batch_size=2)
    texts = [f"text number {i}" for i in range(5)]
    vectors = model.get_text_embedding_batch(texts)
    avectors = await model.aget_text_embedding_batch(texts)
    assert vectors == avectors == [embed(t, DEFAULT_DIMENSIONS) for t in texts]
    sizes = [len(r.body["input"]) for r in emulator.requests]
    assert sizes == [2, 2, 1, 2, 2, 1]


async def test_dimensions_and_settings_reach_the_request(
    make_embedding: Any, api_key: str, emulator: Any
) -> None:
    model = make_embedding(
        model_name="my-embedder", dimensions=64, additional_kwargs={"user": "tester"}
    )
    vector = await model.aget_query_embedding("hello world")
    assert vector == embed("hello world", 64)
    body = emulator.requests[-1].body
    assert (body["model"], body["dimensions"], body["user"]) == ("my-embedder", 64, "tester")
    assert "api_key" not in model.to_dict() and api_key not in model.to_json()
    assert api_key not in repr(model)


def test_bad_input_fails_before_any_request(embed_model: HolySheepEmbedding, emulator: Any) -> None:
    with pytest.raises(InvalidRequestError, match=r"input\[0\] must not be empty"):
        embed_model.get_text_embedding("")
    with pytest.raises(ValueError):
        HolySheepEmbedding(api_key="hs-x", dimensions=0)
    assert emulator.requests == []


def query_engine(
    embed_model: HolySheepEmbedding, llm: Any, *handlers: Any, **kwargs: Any
) -> RetrieverQueryEngine:
    # A response synthesizer gives the LLM its own callback manager, else the global one in
    # Settings: pass ours at every level so nothing global is involved.
    callbacks = CallbackManager(list(handlers))
    index = VectorStoreIndex.from_documents(
        DOCUMENTS, embed_model=embed_model, callback_manager=callbacks
    )
    synthesizer = get_response_synthesizer(llm=llm, callback_manager=callbacks, **kwargs)
    return RetrieverQueryEngine(
        index.as_retriever(similarity_top_k=1),
        response_synthesizer=synthesizer,
        callback_manager=callbacks,
    )


def test_query_engine_retrieves_and_answers(
    embed_model: HolySheepEmbedding, llm: Any, emulator: Any
) -> None:
    counter = TokenCountingHandler(tokenizer=lambda text: [0] * 1_000)
    costs = HolySheepCostHandler()
    engine = query_engine(embed_model, llm, counter, costs)
    response = engine.query("What do cats eat?")
    assert [n.node.ref_doc_id for n in response.source_nodes] == ["cats"]
    # The emulator answers from the context's best-matching sentence: the retrieved text.
    assert str(response) == "Cats eat fish and sleep all afternoon."
    chat = next(r.body for r in emulator.requests if r.path.endswith("/chat/completions"))
    expected = usage_by_rule(chat, str(response))
    assert counter.total_llm_token_count == expected.total_tokens
    assert_costs(costs, llm, embed_model, emulator, expected.total_tokens)


def assert_costs(
    costs: HolySheepCostHandler,
    llm: Any,
    embed_model: HolySheepEmbedding,
    emulator: Any,
    llm_tokens: int,
) -> None:
    """The handler saw the answer and every embeddings request (the index's and the
    question's), each under its own model."""
    embedded = embedding_usage_by_rule(emulator)
    assert embedded.requests == 2, "one request for the documents, one for the question"
    assert costs.by_model[llm.model].total_tokens == llm_tokens
    assert costs.by_model[embed_model.model_name] == embedded
    assert costs.total_tokens == llm_tokens + embedded.total_tokens
    # The default embedding model is priced (its public list price): the total holds it.
    assert embedded.cost_usd is not None and embedded.cost_usd > 0
    assert costs.unpriced_requests == 0
    assert costs.usage.cost_usd == costs.by_model[llm.model].cost_usd + embedded.cost_usd


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_streaming_query_engine(
    asynchronous: bool, embed_model: HolySheepEmbedding, llm: Any, emulator: Any
) -> None:
    costs = HolySheepCostHandler()
    engine = query_engine(embed_model, llm, costs, streaming=True)
    if asynchronous:
        response = await engine.aquery("Which volcanoes erupt lava?")
        text = "".join([t async for t in response.async_response_gen()])
    else:
        response = engine.query("Which volcanoes erupt lava?")
        text = "".join(response.response_gen)
    assert [n.node.ref_doc_id for n in response.source_nodes] == ["volcanoes"]
    assert text == "Volcanoes erupt lava and ash from the mountain."
    chat = next(r.body for r in emulator.requests if r.path.endswith("/chat/completions"))
    assert chat["stream"] is True
    assert_costs(costs, llm, embed_model, emulator, usage_by_rule(chat, text).total_tokens)
