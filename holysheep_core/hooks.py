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

__all__ = ["RetryScheduled", "UsageRecorded", "log_retry", "logger", "run_hooks"]

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
