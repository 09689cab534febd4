"""Both adapters are traced by the core's instrumentation: the same spans, under the
framework's own spans when it traces with OpenTelemetry (OpenInference's instrumentors)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.prompts import ChatPromptTemplate
from llama_index.core.llms import ChatMessage
from openinference.instrumentation.langchain import LangChainInstrumentor
from openinference.instrumentation.llama_index import LlamaIndexInstrumentor

from langchain_holysheep import ChatHolySheep, HolySheepEmbeddings
from llama_index_holysheep import HolySheep, HolySheepEmbedding

MODEL = "deepseek-v3.2"


def ours(otel: Any) -> list[Any]:
    return [s for s in otel.spans() if s.instrumentation_scope.name.startswith("holysheep")]


def parent_name(otel: Any, span: Any) -> str | None:
    names = {s.context.span_id: s.name for s in otel.spans()}
    return names.get(span.parent.span_id) if span.parent is not None else None


@pytest.fixture
def langchain_traced(otel: Any) -> Iterator[Any]:
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider)
    yield otel
    instrumentor.uninstrument()


@pytest.fixture
def llama_index_traced(otel: Any) -> Iterator[Any]:
    instrumentor = LlamaIndexInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider)
    yield otel
    instrumentor.uninstrument()


async def test_chat_holysheep_calls_are_traced(otel: Any, base_url: str, api_key: str) -> None:
    chat = ChatHolySheep(api_key=api_key, base_url=base_url, model=MODEL, temperature=0.1)
    message = chat.invoke("hi")
    "".join(c.content for c in chat.stream("hi"))
    await chat.ainvoke("hi")
    HolySheepEmbeddings(api_key=api_key, base_url=base_url, model="embed-1").embed_documents(
        ["a", "b"]
    )
    spans = ours(otel)
    assert [s.name for s in spans] == [f"chat {MODEL}"] * 3 + ["embeddings embed-1"]
    first = spans[0].attributes
    assert first["gen_ai.request.temperature"] == 0.1
    assert first["gen_ai.usage.output_tokens"] == message.usage_metadata["output_tokens"]
    assert first["gen_ai.response.id"] == message.response_metadata["id"]
    assert spans[1].attributes["gen_ai.response.time_to_first_chunk"] > 0


def test_chat_holysheep_spans_nest_under_the_callers_span_across_batch_threads(
    otel: Any, base_url: str, api_key: str
) -> None:
    chat = ChatHolySheep(api_key=api_key, base_url=base_url, model=MODEL)
    chain = ChatPromptTemplate.from_template("say {word}") | chat
    with otel.tracer.start_as_current_span("job"):
        chain.batch([{"word": w} for w in ("a", "b", "c")])  # runs in LangChain's threads
    assert [parent_name(otel, s) for s in ours(otel)] == ["job"] * 3


async def test_chat_holysheep_spans_nest_under_langchains_spans(
    langchain_traced: Any, base_url: str, api_key: str
) -> None:
    # OpenInference's LangChain tracer never makes its spans current, so the adapter names
    # its run and the call span goes under that run's span. (langchain-core's own
    # ``BaseChatModel.stream`` gives ``_stream`` no run manager: a direct ``.stream()`` nests
    # under the caller's current span instead.)
    otel = langchain_traced
    chat = ChatHolySheep(api_key=api_key, base_url=base_url, model=MODEL)
    chat.invoke("hi")
    (ChatPromptTemplate.from_template("say {word}") | chat).invoke({"word": "hi"})
    await chat.ainvoke("hi")
    spans = ours(otel)
    assert len(spans) == 3
    # Each call span is a child of the ChatHolySheep run's span, in its trace.
    assert [parent_name(otel, s) for s in spans] == ["ChatHolySheep"] * 3


async def test_llama_index_calls_are_traced_under_llama_indexs_spans(
    llama_index_traced: Any, base_url: str, api_key: str
) -> None:
    otel = llama_index_traced
    llm = HolySheep(api_key=api_key, api_base=base_url, model=MODEL)
    hi = [ChatMessage(role="user", content="hi")]
    response = llm.chat(hi)
    list(llm.stream_chat(hi))
    await llm.achat(hi)
    gen = await llm.astream_chat(hi)
    async for _ in gen:
        pass
    HolySheepEmbedding(api_key=api_key, api_base=base_url, model_name="embed-1").get_text_embedding(
        "a"
    )
    spans = ours(otel)
    assert [s.name for s in spans][:4] == [f"chat {MODEL}"] * 4
    # OpenInference ends a streaming method's span from a sweeper thread of its own, once the
    # stream is done: wait for those spans to be exported (the parents are set already).
    for _ in range(100):
        if None not in [parent_name(otel, s) for s in spans[:4]]:
            break
        await asyncio.sleep(0.1)
    assert [parent_name(otel, s) for s in spans[:4]] == [
        "HolySheep.chat",
        "HolySheep.stream_chat",
        "HolySheep.achat",
        "HolySheep.astream_chat",
    ]
    assert (
        spans[0].attributes["gen_ai.usage.output_tokens"]
        == response.raw["usage"]["completion_tokens"]
    )
    assert spans[-1].name == "embeddings embed-1"
