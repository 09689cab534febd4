"""Where the breaker, limiter and budget keep their state: a small store interface.

The policies are pure functions from ``(old state, now)`` to ``(new state, decision)``; a
store only has to apply such a function to a few keys atomically. The in-memory store does
it under one lock held for microseconds (never across a request or an ``await``), so
threads and asyncio tasks alike see whole transitions. A store shared by many processes (Redis with
``WATCH``/``MULTI`` or a script) implements the same two methods; no policy changes.

Values are immutable records of numbers, strings and enums (frozen dataclasses, or named
tuples where every call builds some), so a networked store can serialise them field by
field. A change function may be called more than once by an optimistic store, so it must
be pure, as every policy's is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["InMemoryStore", "StateStore"]

R = TypeVar("R")

Change = Callable[[list[Any]], tuple[list[Any], R]]


@runtime_checkable
class StateStore(Protocol):
    """Keyed policy state, changed atomically.

    ``clock`` is the time base of the timestamps kept in the store (seconds): a store shared
    by several processes needs one they all agree on, such as the wall clock.
    """

    clock: Callable[[], float]

    def update(self, keys: Sequence[str], change: Change[R]) -> R:
        """Apply ``change`` to the values of ``keys`` (None where absent) atomically: it gets
        the old values in order, returns the new values (None: absent) and a result, which
        this returns. A change that returns the very list it was given changed nothing,
        and nothing is written."""
        ...

    def items(self, prefix: str) -> dict[str, Any]:
        """A snapshot of the values whose keys start with ``prefix``."""
        ...


class InMemoryStore:
    """The default store: one process, any number of threads and event loops."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        # Re-entrant: a stream's finaliser may settle its reservations while this thread
        # is inside an update (the garbage collector runs at any allocation).
        self._lock = threading.RLock()
        self._values: dict[str, Any] = {}

    def update(self, keys: Sequence[str], change: Change[R]) -> R:
        with self._lock:
            values = self._values
            old = list(map(values.get, keys))
            new, result = change(old)
            if new is not old:
                if len(new) != len(keys):
                    raise ValueError(f"a change must return one value per key, got {len(new)}")
                values.update(zip(keys, new, strict=False))
                if not all(new):  # a value may be None: that key is absent
                    for key, value in zip(keys, new, strict=False):
                        if value is None:
                            del values[key]
            return result

    def items(self, prefix: str) -> dict[str, Any]:
        with self._lock:
            return {k: v for k, v in self._values.items() if k.startswith(prefix)}

    def __repr__(self) -> str:
        return f"InMemoryStore(keys={len(self._values)})"
