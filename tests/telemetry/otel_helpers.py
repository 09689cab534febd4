"""Helpers of the telemetry tests: the real OpenTelemetry SDK, in memory.

``instrumented()`` instruments HolySheep with a tracer provider whose spans go to an in-memory
exporter (through the SDK's simple processor, so each span is there as soon as it ends)
and a meter provider read by an in-memory reader; it uninstruments on the way out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from holysheep_core import RetryPolicy
from holysheep_core.telemetry import HolySheepInstrumentor

KEY = "hs-test-0123456789abcdef"
"""The key the session emulator accepts (tests/conftest.py); the secrecy tests look for it."""
NO_WAIT = RetryPolicy.no_wait(max_retries=2)


@dataclass
class Otel:
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider

    @property
    def tracer(self) -> Any:
        return self.tracer_provider.get_tracer("tests")

    def spans(self, name_prefix: str = "") -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(name_prefix)]

    def span(self) -> ReadableSpan:
        """The one call span this test made."""
        calls = [s for s in self.spans() if s.instrumentation_scope.name.startswith("holysheep")]
        assert len(calls) == 1, [s.name for s in calls]
        return calls[0]

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        out: list[Any] = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == metric:
                        out.extend(m.data.data_points)
        return out


@contextmanager
def instrumented(capture_content: bool | None = None) -> Iterator[Otel]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentor = HolySheepInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        capture_content=capture_content,
    )
    try:
        yield Otel(exporter, reader, tracer_provider)
    finally:
        instrumentor.uninstrument()
        tracer_provider.shutdown()
        meter_provider.shutdown()
