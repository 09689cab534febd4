"""Where call spans go: under the caller's span, across threads, tasks and processes; and
nowhere at all unless instrumented."""

from __future__ import annotations

import asyncio
import contextvars
import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opentelemetry import trace
from opentelemetry.propagate import inject

from holysheep_core.telemetry import HolySheepInstrumentor

MODEL = "deepseek-v3.2"
HI = [{"role": "user", "content": "hello there"}]


def children_of(otel: Any, parent: Any) -> list[Any]:
    return [s for s in otel.spans("chat") if s.parent is not None and s.parent.span_id == parent]


def test_a_call_span_nests_under_the_callers_span(otel: Any, make_client: Any) -> None:
    client = make_client()
    with otel.tracer.start_as_current_span("handle request") as parent:
        client.chat_completion(model=MODEL, messages=HI)
        for _ in client.stream_chat_completion(model=MODEL, messages=HI):
            pass
    (root,) = otel.spans("handle request")
    calls = children_of(otel, parent.get_span_context().span_id)
    assert len(calls) == 2
    assert {s.context.trace_id for s in calls} == {root.context.trace_id}


def test_context_follows_calls_into_threads(otel: Any, make_client: Any) -> None:
    client = make_client()
    with (
        otel.tracer.start_as_current_span("fan out") as parent,
        ThreadPoolExecutor(4) as pool,
    ):
        # Threads start with an empty context: a copy carries the caller's (as
        # LangChain's executors and OpenTelemetry's threading instrumentation do).
        futures = [
            pool.submit(
                contextvars.copy_context().run, client.chat_completion, model=MODEL, messages=HI
            )
            for _ in range(6)
        ]
        for f in futures:
            f.result()
    assert len(children_of(otel, parent.get_span_context().span_id)) == 6


async def test_context_follows_calls_into_tasks(otel: Any, make_async_client: Any) -> None:
    client = make_async_client()

    async def one(i: int) -> None:
        with otel.tracer.start_as_current_span(f"task {i}"):
            await client.chat_completion(model=MODEL, messages=HI)
            await asyncio.sleep(0)
            async with await client.stream_chat_completion(model=MODEL, messages=HI) as s:
                async for _ in s:
                    pass

    await asyncio.gather(*(one(i) for i in range(5)))
    for i in range(5):
        (task,) = otel.spans(f"task {i}")
        # Each task's calls sit under that task's span, not a sibling's.
        assert len(children_of(otel, task.context.span_id)) == 2


def test_context_crosses_processes_when_the_caller_passes_it(otel: Any, emulator: Any, api_key):
    child = textwrap.dedent(
        """
        import json, sys
        from opentelemetry import context
        from opentelemetry.propagate import extract
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from holysheep_core import HolySheepClient
        from holysheep_core.telemetry import HolySheepInstrumentor

        carrier, url, key = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        HolySheepInstrumentor().instrument(tracer_provider=provider)
        token = context.attach(extract(carrier))
        with HolySheepClient(api_key=key, base_url=url) as client:
            hi = [{"role": "user", "content": "hi"}]
            client.chat_completion(model="deepseek-v3.2", messages=hi)
        context.detach(token)
        (span,) = exporter.get_finished_spans()
        print(json.dumps([span.context.trace_id, span.parent.span_id, span.parent.is_remote]))
        """
    )
    with otel.tracer.start_as_current_span("dispatch") as parent:
        carrier: dict[str, str] = {}
        inject(carrier)
        out = subprocess.run(
            [sys.executable, "-c", child, json.dumps(carrier), emulator.url, api_key],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    ctx = parent.get_span_context()
    assert json.loads(out.stdout) == [ctx.trace_id, ctx.span_id, True]


def test_uninstrument_stops_the_spans(make_client: Any) -> None:
    from otel_helpers import instrumented

    client = make_client()
    with instrumented() as otel:
        client.chat_completion(model=MODEL, messages=HI)
    client.chat_completion(model=MODEL, messages=HI)  # after uninstrument()
    assert len(otel.spans()) == 1
    with instrumented() as again:  # and instrumenting again works
        client.chat_completion(model=MODEL, messages=HI)
        assert len(again.spans()) == 1


def test_instrumenting_twice_does_not_double_the_spans(otel: Any, make_client: Any) -> None:
    HolySheepInstrumentor().instrument()  # already instrumented: a warning, no second observer
    make_client().chat_completion(model=MODEL, messages=HI)
    assert len(otel.spans()) == 1


def test_without_instrumenting_nothing_from_opentelemetry_is_imported(
    emulator: Any, api_key: str
) -> None:
    code = textwrap.dedent(
        """
        import asyncio, sys
        from holysheep_core import AsyncHolySheepClient, HolySheepClient
        url, key = sys.argv[1], sys.argv[2]
        hi = [{"role": "user", "content": "hi"}]
        with HolySheepClient(api_key=key, base_url=url) as client:
            client.chat_completion(model="deepseek-v3.2", messages=hi)
            for _ in client.stream_chat_completion(model="deepseek-v3.2", messages=hi):
                pass
            client.embeddings(model="embed-1", input=["a", "b"])

        async def main():
            async with AsyncHolySheepClient(api_key=key, base_url=url) as client:
                await client.chat_completion(model="deepseek-v3.2", messages=hi)

        asyncio.run(main())
        import holysheep_core.observer as observer
        assert observer.observer is None
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, emulator.url, api_key],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "[]"
    assert len(emulator.requests) == 4  # the calls were made


def test_a_call_never_makes_its_span_current_for_the_caller(otel: Any, make_client: Any) -> None:
    # The span is the call's, not the caller's: code after a call (or between a stream's
    # chunks) still runs in the caller's own context.
    client = make_client()
    before = trace.get_current_span()
    stream = client.stream_chat_completion(model=MODEL, messages=HI)
    next(stream)
    assert trace.get_current_span() is before
    stream.close()
