"""Frozen records handed to a client's hooks, and the default hook that logs them.

Hooks are plain callables kept on each client (``on_retry=``, ``on_usage=``): logging,
metrics or tracing are ordinary hooks, and nothing is configured process-wide. A hook that
raises is logged and ignored: observability must never fail a call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .accounting import TokenUsage

__all__ = [
    "BreakerChanged",
    "FallbackUsed",
    "RetryScheduled",
    "UsageRecorded",
    "log_breaker_change",
    "log_fallback",
    "log_retry",
    "logger",
    "run_hooks",
]

logger = logging.getLogger("holysheep")


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    model: str
    attempt: int
    """The attempt that failed (1 = the first)."""
    wait_for: float
    """Seconds until the next attempt."""
    error_type: str
    message: str
    status_code: int | None
    request_id: str | None


@dataclass(frozen=True, slots=True)
class UsageRecorded:
    model: str
    usage: TokenUsage
    latency: float
    """Seconds from the call to its last byte."""
    stream: bool
    request_id: str | None


@dataclass(frozen=True, slots=True)
class BreakerChanged:
    """A circuit breaker moved between ``closed``, ``open`` and ``half_open``."""

    key: str
    """``model@base_url``, the breaker's key."""
    model: str
    old: str
    new: str
    failures: int
    """Consecutive failures that opened it (0 for other transitions)."""
    retry_after: float | None
    """Seconds until it lets a probe through, when it just opened."""


@dataclass(frozen=True, slots=True)
class FallbackUsed:
    """A call gave up on ``model`` and moves on to ``next_model``."""

    model: str
    next_model: str
    error_type: str
    message: str
    status_code: int | None


def log_breaker_change(event: BreakerChanged) -> None:
    if event.new == "open":
        logger.warning(
            "circuit for %s opened after %d consecutive failures; probing again in %.1fs",
            event.key,
            event.failures,
            event.retry_after or 0.0,
        )
    else:
        logger.info("circuit for %s: %s -> %s", event.key, event.old, event.new)


def log_fallback(event: FallbackUsed) -> None:
    logger.warning(
        "%s failed (%s: %s); falling back to %s",
        event.model,
        event.error_type,
        event.message,
        event.next_model,
    )


def log_retry(event: RetryScheduled) -> None:
    logger.info(
        "retrying %s in %.2fs after attempt %d failed: %s %s (request_id=%s)",
        event.model,
        event.wait_for,
        event.attempt,
        event.error_type,
        event.message,
        event.request_id,
    )


def run_hooks(hooks: Iterable[Callable[[Any], None]], event: Any) -> None:
    for hook in hooks:
        try:
            hook(event)
        except Exception:
            logger.exception("a holysheep hook raised; ignored")
