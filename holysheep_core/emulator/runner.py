"""Running the emulator: in a background thread (``Emulator``) or in the foreground (``serve``)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterable
from types import TracebackType

from aiohttp import web

from .faults import Fault
from .server import bind, start_site
from .state import DEFAULT_KEEP_REQUESTS, RecordedRequest, ServerConfig, ServerState
from .wire import Quirk

__all__ = ["Emulator", "serve"]

_START_TIMEOUT = 5.0
_STOP_TIMEOUT = 5.0


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


def _state(
    api_key: str | None,
    faults: Iterable[Fault],
    latency: float,
    chunk_delay: float,
    quirks: Iterable[str],
    keep_requests: int | None,
) -> ServerState:
    config = ServerConfig(
        api_key=api_key,
        latency=latency,
        chunk_delay=chunk_delay,
        quirks=frozenset(Quirk(q) for q in quirks),
        keep_requests=keep_requests,
    )
    return ServerState(config, faults)


class Emulator:
    """The HolySheep API on a free loopback port, served by a thread with its own event loop.

    ``with Emulator() as url:`` gives ``http://127.0.0.1:<port>/v1``; ``start()``/``stop()``
    do the same by hand. Stopping closes the listening socket, every connection (in-flight
    requests get 0.1 s) and the thread.

    Args:
        api_key: the only key accepted; None accepts any non-empty bearer key.
        faults: a schedule of faults; each request takes the earliest one that matches it.
        latency: seconds to wait before each ``/v1/`` response.
        chunk_delay: seconds to wait after each stream chunk.
        quirks: ``Quirk`` names applied to every stream (see ``x-emulator-quirks``).
        host: the address to listen on.
        keep_requests: how many of the latest requests ``requests`` keeps (older ones are
            dropped, so a long run stays small); None keeps every request, 0 none.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        faults: Iterable[Fault] = (),
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        quirks: Iterable[str] = (),
        host: str = "127.0.0.1",
        keep_requests: int | None = DEFAULT_KEEP_REQUESTS,
    ) -> None:
        self._state = _state(api_key, faults, latency, chunk_delay, quirks, keep_requests)
        self._host = host
        self._url: str | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The base URL, ``http://HOST:PORT/v1``; only while started."""
        if self._url is None:
            raise RuntimeError("the emulator is not running: call start() first")
        return self._url

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the latest ``keep_requests`` requests received, oldest first."""
        return self._state.requests()

    @property
    def active_requests(self) -> int:
        """Requests the server is handling now (waiting, answering or streaming); a client
        that leaves mid-request ends its request here too, soon after."""
        return self._state.active_requests

    @property
    def open_connections(self) -> int:
        """TCP connections clients hold open to the server now (0 when it is not running)."""
        loop, runner = self._loop, self._runner
        if loop is None or runner is None or runner.server is None:
            return 0

        async def count() -> int:
            return len(runner.server.connections)

        return asyncio.run_coroutine_threadsafe(count(), loop).result(_START_TIMEOUT)

    def inject(self, fault: Fault, times: int = 1) -> None:
        """Schedule fault for the next ``times`` matching requests (after those pending)."""
        self._state.schedule.add(fault, times)

    def reset(self) -> None:
        """Forget recorded requests, pending faults, the prompt cache and rate-limit counts."""
        self._state.reset()

    def start(self) -> str:
        """Start serving; returns the base URL."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        sock = bind(self._host, 0)
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._serve, args=(sock, ready, failure), name="holysheep-emulator", daemon=True
        )
        self._thread.start()
        if not ready.wait(_START_TIMEOUT) or failure:
            self.stop()
            raise RuntimeError("the emulator did not start") from (failure[0] if failure else None)
        self._url = _url(sock)
        return self._url

    def _serve(
        self, sock: socket.socket, ready: threading.Event, failure: list[BaseException]
    ) -> None:
        loop = asyncio.new_event_loop()
        runner: web.AppRunner | None = None
        try:
            runner = loop.run_until_complete(start_site(self._state, sock))
            self._runner = runner
            self._loop = loop
            ready.set()
            loop.run_forever()
        except BaseException as exc:
            failure.append(exc)
            ready.set()
        finally:
            if runner is not None:
                loop.run_until_complete(runner.cleanup())
            # Handlers still asleep in an injected stall or slow first byte: cancel and
            # await them, so none is destroyed pending when the loop closes.
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending))
            sock.close()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def stop(self) -> None:
        """Stop serving and join the thread; a no-op when not running."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None:
            # The loop may already have closed after a failed start.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
        thread.join(_STOP_TIMEOUT)
        self._thread = self._loop = self._runner = self._url = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _announce(url: str) -> None:
    print(f"HolySheep emulator serving on {url} (Ctrl-C to stop)", flush=True)


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    *,
    faults: Iterable[Fault] = (),
    latency: float = 0.0,
    chunk_delay: float = 0.0,
    quirks: Iterable[str] = (),
    keep_requests: int | None = 0,
    on_ready: Callable[[str], None] | None = _announce,
) -> None:
    """Serve the emulator on host:port until interrupted (Ctrl-C returns normally).

    Args: as ``Emulator`` (except that ``keep_requests`` defaults to 0: nothing can read
    them here), plus ``port`` (0 picks a free one) and ``on_ready``, called with the base
    URL once the server listens (by default it prints it).
    """
    state = _state(api_key, faults, latency, chunk_delay, quirks, keep_requests)

    async def main() -> None:
        sock = bind(host, port)
        runner = await start_site(state, sock)
        try:
            if on_ready is not None:
                on_ready(_url(sock))
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
            sock.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
