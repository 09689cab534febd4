"""``HolySheepInstrumentor``: OpenTelemetry spans and metrics for every HolySheep call."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from .. import __version__, observer
from . import attributes as a
from .content import capture_enabled
from .spans import Instruments, SpanObserver

__all__ = ["HolySheepInstrumentor"]

_SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"


class HolySheepInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Traces and measures every chat, stream and embeddings call of every HolySheep
    client (and so of ``ChatHolySheep``, ``HolySheep`` and the embeddings adapters), per the
    OpenTelemetry GenAI semantic conventions, with cost and policy events of our own.

    ``HolySheepInstrumentor().instrument(tracer_provider=..., meter_provider=...)``; either
    provider defaults to the global one. ``capture_content=True`` (or the environment
    variable ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``) adds prompts and
    completions to the spans; they are left out by default. ``uninstrument()`` stops it:
    calls made after it emit nothing.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        # Instruments this very distribution: nothing else to check for.
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        tracer = trace.get_tracer(
            __name__,
            __version__,
            tracer_provider=kwargs.get("tracer_provider"),
            schema_url=_SCHEMA_URL,
        )
        meter = metrics.get_meter(
            __name__,
            __version__,
            meter_provider=kwargs.get("meter_provider"),
            schema_url=_SCHEMA_URL,
        )
        instruments = Instruments(
            duration=meter.create_histogram(
                a.METRIC_DURATION,
                unit="s",
                description="GenAI operation duration.",
                explicit_bucket_boundaries_advisory=list(a.DURATION_BUCKETS),
            ),
            tokens=meter.create_histogram(
                a.METRIC_TOKENS,
                unit="{token}",
                description="Number of input and output tokens used.",
                explicit_bucket_boundaries_advisory=list(a.TOKEN_BUCKETS),
            ),
            time_to_first_chunk=meter.create_histogram(
                a.METRIC_TTFC,
                unit="s",
                description="Time to receive the first chunk of a streamed response.",
                explicit_bucket_boundaries_advisory=list(a.DURATION_BUCKETS),
            ),
            cost=meter.create_counter(
                a.METRIC_COST,
                unit="USD",
                description="Cost of the calls, in US dollars, at the client's prices.",
            ),
        )
        capture = kwargs.get("capture_content")
        observer.install(
            SpanObserver(
                tracer,
                instruments,
                capture_content=capture_enabled() if capture is None else bool(capture),
            )
        )

    def _uninstrument(self, **kwargs: Any) -> None:
        observer.install(None)
