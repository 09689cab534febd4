"""One connection pool per event loop, closed when its loop shuts down.

An aiohttp session or httpx async client belongs to the loop it was opened in. Apps that
call ``asyncio.run`` again and again (scripts, notebooks, sync LangChain code calling async
tools) would otherwise leave a pool, and its sockets, behind on every dead loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["PerLoop"]

P = TypeVar("P")


class PerLoop(Generic[P]):
    def __init__(
        self,
        open: Callable[[], P],
        aclose: Callable[[P], Awaitable[object]],
        close_dead: Callable[[P], None],
    ) -> None:
        self._open = open
        self._aclose = aclose
        self._close_dead = close_dead
        self._pools: dict[asyncio.AbstractEventLoop, P] = {}
        self._guards: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}

    def current(self) -> P | None:
        """The running loop's pool, if it has one (the hot path: one dict lookup)."""
        return self._pools.get(asyncio.get_running_loop())

    async def open(self) -> P:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is not None:
            return pool
        self._drop_dead()
        pool = self._pools[loop] = self._open()
        # asyncio.run() (and every Runner) finalises live async generators before it closes
        # the loop: this one closes the pool then, while awaiting is still possible.
        guard = self._guard(loop, pool)
        await guard.__anext__()
        self._guards[loop] = guard
        return pool

    async def _guard(self, loop: asyncio.AbstractEventLoop, pool: P) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if self._pools.get(loop) is pool:
                del self._pools[loop]
                self._guards.pop(loop, None)
            await self._aclose(pool)

    def _drop_dead(self) -> None:
        for loop in [lp for lp in self._pools if lp.is_closed()]:
            self._guards.pop(loop, None)
            self._close_dead(self._pools.pop(loop))

    async def aclose(self) -> None:
        """Close the running loop's pool now, and forget those of loops already closed."""
        loop = asyncio.get_running_loop()
        guard = self._guards.pop(loop, None)
        pool = self._pools.pop(loop, None)
        if guard is not None:
            await guard.aclose()  # runs the guard's finally: closes the pool
        elif pool is not None:
            await self._aclose(pool)
        self._drop_dead()
