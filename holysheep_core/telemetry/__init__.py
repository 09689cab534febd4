"""OpenTelemetry for HolySheep calls: GenAI spans and metrics, with cost and policy events.

Needs the ``otel`` extra (``pip install "holysheep-integrations[otel]"``). Importing
``holysheep_core`` alone imports nothing from OpenTelemetry and emits nothing: only
``HolySheepInstrumentor().instrument()`` does.
"""

from __future__ import annotations

try:
    from .instrumentor import HolySheepInstrumentor
except ImportError as exc:  # pragma: no cover - depends on what is installed
    if exc.name is None or not exc.name.startswith("opentelemetry"):
        raise
    raise ImportError(
        'HolySheep telemetry needs OpenTelemetry: pip install "holysheep-integrations[otel]"'
    ) from exc

__all__ = ["HolySheepInstrumentor"]
