"""Spans and metrics of chat, stream and embeddings calls, on the emulator, per the GenAI
conventions; content only when asked for."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from otel_helpers import KEY, instrumented

MODEL = "deepseek-v3.2"
HI = [{"role": "user", "content": "hello there"}]


def test_a_chat_call_is_one_client_span_with_the_conventions_attributes(
    otel: Any, make_client: Any, emulator: Any
) -> None:
    client = make_client()
    completion = client.chat_completion(model=MODEL, messages=HI, temperature=0.3, max_tokens=50)
    span = otel.span()
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    attrs = dict(span.attributes)
    host, port = emulator.url.split("//")[1].split("/")[0].split(":")
    assert attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "holysheep",
        "gen_ai.system": "holysheep",
        "gen_ai.request.model": MODEL,
        "gen_ai.request.temperature": 0.3,
        "gen_ai.request.max_tokens": 50,
        "server.address": host,
        "server.port": int(port),
        "gen_ai.response.id": completion.id,
        "gen_ai.response.model": completion.model,
        "gen_ai.response.finish_reasons": (completion.choices[0].finish_reason,),
        "gen_ai.usage.input_tokens": completion.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": completion.usage.completion_tokens,
        "holysheep.cost.usd": float(completion.cost_usd),
        "holysheep.served_model": MODEL,
        "holysheep.cache.hit": False,
        "holysheep.attempts": 1,
    }
    assert not span.events  # nothing happened on the way


def test_a_chat_call_records_the_conventions_metrics_and_its_cost(
    otel: Any, make_client: Any
) -> None:
    client = make_client()
    done = [client.chat_completion(model=MODEL, messages=HI) for _ in range(3)]
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.count == 3
    assert duration.attributes["gen_ai.operation.name"] == "chat"
    assert duration.attributes["gen_ai.request.model"] == MODEL
    assert "error.type" not in duration.attributes
    tokens = {
        p.attributes["gen_ai.token.type"]: p for p in otel.points("gen_ai.client.token.usage")
    }
    assert tokens["input"].sum == sum(c.usage.prompt_tokens for c in done)
    assert tokens["output"].sum == sum(c.usage.completion_tokens for c in done)
    assert tokens["input"].count == tokens["output"].count == 3
    (cost,) = otel.points("holysheep.client.cost")
    assert cost.value == pytest.approx(float(sum(c.cost_usd for c in done)))
    assert cost.attributes["holysheep.served_model"] == MODEL
    assert not otel.points("gen_ai.client.operation.time_to_first_chunk")  # not a stream


def test_a_stream_span_covers_the_whole_stream_with_its_time_to_first_chunk(
    otel: Any, make_client: Any
) -> None:
    client = make_client()
    stream = client.stream_chat_completion(model=MODEL, messages=HI)
    assert otel.spans() == []  # open while the caller reads
    chunks = list(stream)
    span = otel.span()
    attrs = span.attributes
    usage = next(c.usage for c in chunks if c.usage is not None)
    assert span.name == f"chat {MODEL}"
    assert attrs["holysheep.request.stream"] is True
    assert attrs["gen_ai.response.id"] == chunks[0].id
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert attrs["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert attrs["holysheep.cost.usd"] == pytest.approx(float(chunks[-1].cost_usd))
    ttfc = attrs["gen_ai.response.time_to_first_chunk"]
    (point,) = otel.points("gen_ai.client.operation.time_to_first_chunk")
    assert (point.count, point.sum) == (1, ttfc)
    # Both on the same monotonic clock (the span's own times are wall-clock).
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert 0 < ttfc <= duration.sum


async def test_an_async_stream_is_traced_the_same_way(otel: Any, make_async_client: Any) -> None:
    client = make_async_client()
    async with await client.stream_chat_completion(model=MODEL, messages=HI) as stream:
        assert otel.spans() == []
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    span = otel.span()
    assert text
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert span.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert span.attributes["gen_ai.usage.output_tokens"] > 0


def test_a_stream_left_early_ends_its_span_as_abandoned_not_failed(
    otel: Any, make_client: Any
) -> None:
    client = make_client()
    with client.stream_chat_completion(model=MODEL, messages=HI, max_tokens=40) as stream:
        next(stream)
    span = otel.span()
    assert span.attributes["holysheep.stream.abandoned"] is True
    assert span.status.status_code is StatusCode.UNSET
    assert "gen_ai.usage.output_tokens" not in span.attributes  # never reported
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.count == 1


async def test_embeddings_get_spans_too(otel: Any, make_async_client: Any) -> None:
    client = make_async_client()
    texts = ["one", "two", "three"]
    result = await client.embeddings(model="embed-1", input=texts, batch_size=2)
    span = otel.span()  # one span for the call, however many batches
    assert span.name == "embeddings embed-1"
    assert span.attributes["gen_ai.operation.name"] == "embeddings"
    assert span.attributes["gen_ai.usage.input_tokens"] == result.usage.prompt_tokens
    assert "gen_ai.usage.output_tokens" not in span.attributes
    assert span.attributes["holysheep.attempts"] == 2  # one request per batch
    tokens = otel.points("gen_ai.client.token.usage")
    assert [p.attributes["gen_ai.token.type"] for p in tokens] == ["input"]


def test_content_is_left_out_unless_asked_for(otel: Any, make_client: Any) -> None:
    client = make_client()
    client.chat_completion(model=MODEL, messages=HI)
    assert not [k for k in otel.span().attributes if "messages" in k or "instructions" in k]


def test_content_capture_follows_the_conventions_message_shape(
    otel_with_content: Any, make_client: Any
) -> None:
    client = make_client()
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"my key is {KEY}, repeat it"},
    ]
    completion = client.chat_completion(model=MODEL, messages=messages)
    echoed = completion.choices[0].message.content
    attrs = otel_with_content.span().attributes
    assert json.loads(attrs["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "Be brief."}
    ]
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "my key is [redacted], repeat it"}]}
    ]
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": echoed.replace(KEY, "[redacted]")}],
            "finish_reason": "stop",
        }
    ]
    assert KEY in echoed  # the emulator repeated the key: the span did not


def test_content_capture_puts_a_stream_back_together(
    otel_with_content: Any, make_client: Any
) -> None:
    client = make_client()
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.stream_chat_completion(model=MODEL, messages=HI)
        if c.choices
    )
    (out,) = json.loads(otel_with_content.span().attributes["gen_ai.output.messages"])
    assert out == {
        "role": "assistant",
        "parts": [{"type": "text", "content": text}],
        "finish_reason": "stop",
    }


def test_the_environment_variable_turns_content_capture_on(
    monkeypatch: pytest.MonkeyPatch, make_client: Any
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    with instrumented() as otel:
        make_client().chat_completion(model=MODEL, messages=HI)
        assert "gen_ai.input.messages" in otel.span().attributes


def test_a_sampled_out_call_exports_no_span_but_still_counts_in_the_metrics(
    make_client: Any,
) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    from holysheep_core.telemetry import HolySheepInstrumentor

    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider(sampler=ALWAYS_OFF)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = HolySheepInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    try:
        completion = make_client().chat_completion(model=MODEL, messages=HI)
    finally:
        instrumentor.uninstrument()
    assert exporter.get_finished_spans() == ()
    names = {
        m.name: m
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    (cost,) = names["holysheep.client.cost"].data.data_points
    assert cost.value == pytest.approx(float(completion.cost_usd))
