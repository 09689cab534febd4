"""Defaults that survive real use: lazy streams, embedding batches and prices, model names,
cost tracking inside indexes and query engines."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import pytest
from llama_index.core.base.llms.types import AudioBlock, ChatMessage
from llama_index.core.callbacks import CallbackManager
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index_helpers import embedding_usage_by_rule
from pydantic import BaseModel
from strict_helpers import assert_strict_schema

from holysheep_core import InvalidRequestError, budget_scope
from llama_index_holysheep import HolySheepCostHandler

HI = [ChatMessage(role="user", content="Hi")]


def _chat_requests(emulator: Any) -> list[Any]:
    return [r for r in emulator.requests if r.path == "/v1/chat/completions"]


# --- streams send their request on first iteration ----------------------------------------


def test_unconsumed_streams_send_nothing_and_hold_no_connection(
    make_llm: Any, emulator: Any
) -> None:
    # A pool of 2: had the streams sent their requests, the third would wait for a slot.
    llm = make_llm(client_settings={"max_connections": 2})
    streams = [llm.stream_chat(HI) for _ in range(100)]
    assert _chat_requests(emulator) == []
    assert llm.chat(HI).message.content  # the pool is free
    first = streams[0]
    assert next(first).message.role == "assistant"  # the request goes out now
    assert len(_chat_requests(emulator)) == 2
    assert emulator.requests[-1].body["stream"] is True
    for stream in streams:
        stream.close()
    assert len(_chat_requests(emulator)) == 2


async def test_unconsumed_async_streams_send_nothing(make_llm: Any, emulator: Any) -> None:
    llm = make_llm(client_settings={"max_connections": 2})
    streams = [await llm.astream_chat(HI) for _ in range(100)]
    assert _chat_requests(emulator) == []
    assert (await llm.achat(HI)).message.content
    texts = [r.delta async for r in streams[0]]
    assert "".join(t or "" for t in texts)
    assert len(_chat_requests(emulator)) == 2
    for stream in streams[1:]:
        await stream.aclose()
    assert len(_chat_requests(emulator)) == 2


def test_a_lazy_stream_is_charged_to_the_budget_scope_it_was_made_in(
    make_llm: Any, emulator: Any
) -> None:
    # Made inside the scope, iterated after it: the request still counts against its cap.
    llm = make_llm()
    with budget_scope(1.0) as budget:
        stream = llm.stream_chat(HI)
    assert budget.spent_usd == 0
    assert "".join(r.delta or "" for r in stream)
    assert budget.spent_usd > 0


async def test_a_lazy_async_stream_is_charged_to_the_budget_scope_it_was_made_in(
    make_llm: Any, emulator: Any
) -> None:
    llm = make_llm()
    with budget_scope(1.0) as budget:
        stream = await llm.astream_chat(HI)
    assert budget.spent_usd == 0
    assert "".join([r.delta or "" async for r in stream])
    assert budget.spent_usd > 0


def test_bad_messages_are_refused_when_the_stream_is_made(make_llm: Any, emulator: Any) -> None:
    llm = make_llm()
    bad = [ChatMessage(role="user", blocks=[AudioBlock(audio=b"\x00\x01", format="wav")])]
    with pytest.raises(InvalidRequestError):
        llm.stream_chat(bad)
    assert emulator.requests == []


# --- strict schemas are ones OpenAI's strict mode accepts ------------------------------------


class Pen(BaseModel):
    name: str
    gates: int = 1


class Invoice(BaseModel):
    """An invoice."""

    customer: str
    amount: int
    note: str = "none"
    pen: Pen | None = None


def file_invoice(customer: str, amount: int, note: str = "none") -> str:
    """File an invoice."""
    return f"{customer}: {amount} ({note})"


@pytest.mark.parametrize("mode", ["function_calling", "json_schema"])
async def test_strict_structured_output_sends_strict_schemas(
    mode: str, make_llm: Any, emulator: Any
) -> None:
    llm = make_llm(model="gpt-4.1", strict=True, structured_output=mode)
    prompt = PromptTemplate("Extract the invoice: {text}")
    text = 'The invoice for "Acme Corp" is 250 dollars.'
    invoice = llm.structured_predict(Invoice, prompt, text=text)
    assert (invoice.customer, invoice.amount) == ("Acme Corp", 250)
    assert isinstance(invoice.note, str)
    assert await llm.astructured_predict(Invoice, prompt, text=text) == invoice
    body = emulator.requests[-1].body
    if mode == "json_schema":
        spec = body["response_format"]["json_schema"]
        assert spec["strict"] is True
        assert_strict_schema(spec["schema"])
        assert {"type": "null"} in spec["schema"]["properties"]["note"]["anyOf"]
    else:
        function = body["tools"][0]["function"]
        assert function["strict"] is True
        assert_strict_schema(function["parameters"])


def test_strict_tools_require_every_argument(make_llm: Any, emulator: Any) -> None:
    tool = FunctionTool.from_defaults(file_invoice)
    make_llm(strict=True).chat_with_tools([tool], 'file the invoice for "Acme" of 3')
    function = emulator.requests[-1].body["tools"][0]["function"]
    assert function["strict"] is True
    assert_strict_schema(function["parameters"])
    assert function["parameters"]["properties"]["note"]["type"] == "string"


# --- embeddings: OpenAIEmbedding's batch size, priced by default ----------------------------


def _embedding_requests(emulator: Any) -> list[Any]:
    return [r for r in emulator.requests if r.path.endswith("/embeddings")]


def test_embeddings_go_out_in_batches_of_100(make_embedding: Any, emulator: Any) -> None:
    model = make_embedding()
    assert model.embed_batch_size == 100
    vectors = model.get_text_embedding_batch([f"text number {i}" for i in range(250)])
    assert len(vectors) == 250
    assert [len(r.body["input"]) for r in _embedding_requests(emulator)] == [100, 100, 50]
    assert make_embedding(embed_batch_size=7).embed_batch_size == 7


def test_a_rag_index_build_is_priced_and_warns_of_nothing(
    make_llm: Any, make_embedding: Any, emulator: Any, caplog: Any
) -> None:
    from llama_index.core import Document, VectorStoreIndex

    handler = HolySheepCostHandler()
    embed_model = make_embedding(callback_manager=CallbackManager([handler]))
    llm = make_llm(callback_manager=CallbackManager([handler]))
    docs = [Document(text=f"Sheep number {i} grazes in field {i}.") for i in range(30)]
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="holysheep"):
        warnings.simplefilter("error")
        index = VectorStoreIndex.from_documents(docs, embed_model=embed_model)
        index.as_query_engine(llm=llm).query("Where does sheep 3 graze?")
    assert not [r for r in caplog.records if "price" in r.getMessage()]
    embedded = embedding_usage_by_rule(emulator)
    assert embedded.unpriced_requests == 0 and embedded.cost_usd > 0
    assert handler.by_model[embed_model.model_name].cost_usd == embedded.cost_usd
    assert handler.unpriced_requests == 0


# --- the cost handler survives LlamaIndex replacing the callback manager -------------------


def test_cost_handler_survives_a_query_engine(
    make_llm: Any, make_embedding: Any, emulator: Any
) -> None:
    from llama_index.core import Document, VectorStoreIndex

    handler = HolySheepCostHandler()
    llm = make_llm(callback_manager=CallbackManager([handler]))
    embed_model = make_embedding()
    index = VectorStoreIndex.from_documents(
        [Document(text="Sheep graze in the long meadow.")], embed_model=embed_model
    )
    index.as_query_engine(llm=llm).query("Where do sheep graze?")
    assert len(_chat_requests(emulator)) == 1
    assert handler.by_model[llm.model].requests == 1
    assert handler.total_cost_usd is not None and handler.total_cost_usd > 0


def test_a_replaced_manager_keeps_its_own_handlers_and_gains_ours(make_llm: Any) -> None:
    from llama_index.core.callbacks import TokenCountingHandler
    from llama_index.core.llms.utils import resolve_llm

    handler = HolySheepCostHandler()
    llm = make_llm(callback_manager=CallbackManager([handler]))
    counter = TokenCountingHandler()
    shared = CallbackManager([counter])
    resolve_llm(llm, callback_manager=shared)
    llm.complete("Hi")
    assert handler.successful_requests == 1
    assert counter.total_llm_token_count > 0
    assert shared.handlers == [counter]  # the shared manager itself is left as it was
    llm.callback_manager.remove_handler(handler)
    llm.complete("Hi")
    assert handler.successful_requests == 1  # removed on purpose: no longer counting


def test_embedding_cost_handler_survives_an_index_build(make_embedding: Any) -> None:
    from llama_index.core import Document, VectorStoreIndex

    handler = HolySheepCostHandler()
    embed_model = make_embedding(callback_manager=CallbackManager([handler]))
    VectorStoreIndex.from_documents(
        [Document(text="one"), Document(text="two")], embed_model=embed_model
    )
    assert handler.by_model[embed_model.model_name].requests == 1


# --- model names ---------------------------------------------------------------------------


def test_a_known_name_in_another_case_is_that_model(make_llm: Any, emulator: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        llm = make_llm(model="DeepSeek-V3.2")
    assert llm.model == "deepseek-v3.2"
    assert llm.metadata.context_window == 128_000
    response = llm.complete("Hi")
    assert emulator.requests[-1].body["model"] == "deepseek-v3.2"
    assert response.additional_kwargs["cost_usd"] is not None


def test_a_dated_snapshot_gets_its_models_window_without_a_warning(make_llm: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        llm = make_llm(model="gpt-4.1-2025-04-14")
    assert llm.model == "gpt-4.1-2025-04-14"  # sent as written
    assert llm.metadata.context_window == 1_047_576


def test_an_unknown_name_warns_and_names_the_closest_model(make_llm: Any) -> None:
    with pytest.warns(
        UserWarning, match=r"'gemini-2.5-flash-lite' \(did you mean 'gemini-2.5-flash'\?\)"
    ):
        llm = make_llm(model="gemini-2.5-flash-lite")
    assert llm.metadata.context_window == 128_000
    with pytest.warns(UserWarning, match="'gpt-4.1-mini': assuming"):  # not priced as gpt-4.1
        make_llm(model="gpt-4.1-mini")
