"""LlamaIndex's ``HolySheep`` and ``HolySheepEmbedding``, replayed from cassettes: chat and
complete (sync and async, whole and streamed), tools, an agent loop, structured output,
embeddings and a retrieval pipeline, with the cost handler counting each call once.

Objects are built the way a user's code builds them, from ``HOLYSHEEP_API_KEY`` and
``HOLYSHEEP_BASE_URL`` (set by the ``holysheep_vcr`` marker). Assertions hold for any
faithful server, so re-recording against the live API passes too.
"""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex, get_response_synthesizer
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.callbacks import CallbackManager
from llama_index.core.prompts import PromptTemplate
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel
from recorded_helpers import EMBEDDING_MODEL, MODEL, PRICE_PER_TOKEN

from llama_index_holysheep import HolySheep, HolySheepCostHandler, HolySheepEmbedding

pytestmark = pytest.mark.holysheep_vcr


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


ADD = FunctionTool.from_defaults(add)


class Invoice(BaseModel):
    """An invoice."""

    customer: str
    amount: int


INVOICE_PROMPT = PromptTemplate("Extract the invoice: {text}")
INVOICE_TEXT = 'The invoice for "Acme Corp" is 250 dollars.'


@pytest.fixture
def costs() -> HolySheepCostHandler:
    return HolySheepCostHandler()


@pytest.fixture
def llm(costs: HolySheepCostHandler) -> HolySheep:
    return HolySheep(
        model=MODEL, temperature=0, max_retries=0, callback_manager=CallbackManager([costs])
    )


@pytest.fixture
def embed_model() -> HolySheepEmbedding:
    return HolySheepEmbedding(model_name=EMBEDDING_MODEL, max_retries=0)


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


def check_costs(costs: HolySheepCostHandler, calls: int) -> None:
    # The chat model's share: the handler may also count embedding calls (no price).
    chat = costs.by_model[MODEL]
    assert chat.requests == calls
    assert chat.input_tokens > 0 and chat.output_tokens > 0
    assert chat.cost_usd == chat.total_tokens * PRICE_PER_TOKEN


def test_chat(llm: HolySheep, costs: HolySheepCostHandler) -> None:
    response = llm.chat(user("Name one colour of the rainbow."))
    assert response.message.role == "assistant" and response.message.content
    check_costs(costs, calls=1)


async def test_achat_and_acomplete(llm: HolySheep, costs: HolySheepCostHandler) -> None:
    chat = await llm.achat(user("Name one planet of the solar system."))
    completion = await llm.acomplete("Name one ocean.")
    assert chat.message.content and completion.text
    check_costs(costs, calls=2)


def test_stream_chat(llm: HolySheep, costs: HolySheepCostHandler) -> None:
    responses = list(llm.stream_chat(user("Count from one to five in words.")))
    assert "".join(r.delta or "" for r in responses) == responses[-1].message.content
    assert responses[-1].message.content
    check_costs(costs, calls=1)


async def test_astream_complete(llm: HolySheep, costs: HolySheepCostHandler) -> None:
    responses = [r async for r in await llm.astream_complete("Say hello in three languages.")]
    assert "".join(r.delta or "" for r in responses) == responses[-1].text
    check_costs(costs, calls=1)


def test_predict_and_call_runs_the_tool(llm: HolySheep) -> None:
    output = llm.predict_and_call([ADD], "Please add 20 and 22")
    assert output.response == "42"


async def test_function_agent_tool_loop(llm: HolySheep, costs: HolySheepCostHandler) -> None:
    result = await FunctionAgent(tools=[ADD], llm=llm).run("Please add 3 and 4")
    assert [(c.tool_name, c.tool_kwargs, c.tool_output.raw_output) for c in result.tool_calls] == [
        ("add", {"a": 3, "b": 4}, 7)
    ]
    assert str(result)
    check_costs(costs, calls=2)  # the call that asks for the tool, the one that answers


@pytest.mark.parametrize("mode", ["function_calling", "json_schema"])
def test_structured_predict(mode: Any) -> None:
    llm = HolySheep(model=MODEL, temperature=0, max_retries=0, structured_output=mode)
    invoice = llm.structured_predict(Invoice, INVOICE_PROMPT, text=INVOICE_TEXT)
    assert invoice == Invoice(customer="Acme Corp", amount=250)


def test_embeddings(embed_model: HolySheepEmbedding) -> None:
    texts = ["Cats eat fish.", "Volcanoes erupt lava."]
    vectors = embed_model.get_text_embedding_batch(texts)
    assert len(vectors) == 2 and len(vectors[0]) == len(vectors[1]) > 0
    assert vectors[0] != vectors[1]
    assert embed_model.get_query_embedding("Cats eat fish.") == pytest.approx(vectors[0])


async def test_aembeddings(embed_model: HolySheepEmbedding) -> None:
    vectors = await embed_model.aget_text_embedding_batch(["one", "two"])
    assert vectors[1] == pytest.approx(await embed_model.aget_query_embedding("two"))


@pytest.mark.parametrize("streaming", [False, True])
def test_query_engine(
    streaming: bool, llm: HolySheep, embed_model: HolySheepEmbedding, costs: HolySheepCostHandler
) -> None:
    documents = [
        Document(text="Cats eat fish and sleep all afternoon.", doc_id="cats"),
        Document(text="Volcanoes erupt lava and ash from the mountain.", doc_id="volcanoes"),
    ]
    # A response synthesizer gives the LLM its own callback manager (else the global one
    # in Settings): pass ours at every level.
    callbacks = CallbackManager([costs])
    index = VectorStoreIndex.from_documents(
        documents, embed_model=embed_model, callback_manager=callbacks
    )
    engine = RetrieverQueryEngine(
        index.as_retriever(similarity_top_k=1),
        response_synthesizer=get_response_synthesizer(
            llm=llm, callback_manager=callbacks, streaming=streaming
        ),
        callback_manager=callbacks,
    )
    response = engine.query("What do cats eat?")
    text = "".join(response.response_gen) if streaming else str(response)
    assert text
    assert [n.node.ref_doc_id for n in response.source_nodes] == ["cats"]
    check_costs(costs, calls=1)
