"""Single flight: while one call for a key is out, others with the same key wait for its
answer instead of sending their own (the same prompt arriving 100 times at once is sent
once). Per process; the Redis backend shares answers, not flights, across processes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["AsyncFlights", "Flights"]

T = TypeVar("T")


class _Flight:
    __slots__ = ("done", "error", "gave_up", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: Exception | None = None
        self.gave_up = False
        """The leader was interrupted (not failed): followers try again themselves."""


class Flights:
    """For threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}

    def run(self, key: str, call: Callable[[], T]) -> tuple[T, bool]:
        """``call()``'s result, and whether it was shared from another caller's flight.
        The leader's error is raised to its followers too: they asked the same question at
        the same moment."""
        while True:
            with self._lock:
                flight = self._flights.get(key)
                if flight is None:
                    flight = self._flights[key] = _Flight()
                    break
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            if not flight.gave_up:
                return flight.result, True
        try:
            flight.result = call()
            return flight.result, False
        except Exception as exc:
            flight.error = exc
            raise
        except BaseException:
            flight.gave_up = True
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()


def _retrieve(future: asyncio.Future[Any]) -> None:
    # Followers may all have gone: mark the error seen so asyncio does not log it.
    if not future.cancelled():
        future.exception()


class AsyncFlights:
    """For tasks, one table per event loop (a future belongs to its loop)."""

    def __init__(self) -> None:
        self._by_loop: dict[asyncio.AbstractEventLoop, dict[str, asyncio.Future[Any]]] = {}

    async def run(self, key: str, call: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        loop = asyncio.get_running_loop()
        flights = self._by_loop.get(loop)
        if flights is None:
            for dead in [lp for lp in self._by_loop if lp.is_closed()]:
                del self._by_loop[dead]
            flights = self._by_loop[loop] = {}
        while (flight := flights.get(key)) is not None:
            try:
                # shield: a follower cancelled while waiting must not cancel the leader.
                return await asyncio.shield(flight), True
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not flight.cancelled() or (task is not None and task.cancelling()):
                    raise
                # The leader was cancelled, not this task: try again, maybe as the leader.
        flight = flights[key] = loop.create_future()
        flight.add_done_callback(_retrieve)
        try:
            result = await call()
        except Exception as exc:
            flight.set_exception(exc)
            raise
        except BaseException:
            flight.cancel()
            raise
        else:
            flight.set_result(result)
            return result, False
        finally:
            del flights[key]
