"""Waiting for a condition another thread or process makes true, with a generous bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

# A bound for a busy machine, not an expectation: a passing check returns at once.
TIMEOUT = 10.0


def eventually(condition: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    """Whether condition holds within timeout seconds (polled)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


async def eventually_async(condition: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    """``eventually`` for a coroutine: polls without blocking the running loop."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True
