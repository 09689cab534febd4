"""Fixtures of the core tests: a scripted loopback server, a fake clock, both async backends.

``scripted`` is a real HTTP server on 127.0.0.1 (aiohttp, in a thread of its own) that answers
each request with the next queued :class:`Answer`, or with a well-formed completion, stream,
embedding or model list when nothing is queued. Tests use it where they need a byte-exact
answer (an HTML 200, a given header, a drop after the n-th event, a slow first byte); the
emulator fixture serves the rest.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

import holysheep_core.client as client_module
from holysheep_core import AsyncHolySheepClient, HolySheepClient, RetryPolicy

CANARY_KEY = "hs-canary-DONOTLEAK-7f3a9c51"
"""A key the secrecy tests look for everywhere; the scripted server accepts any key."""


@pytest.fixture(scope="session")
def canary_key() -> str:
    return CANARY_KEY


MODEL = "deepseek-v3.2"
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
WORDS = ["Hello", " from", " the", " scripted", " server"]

DROP = object()
"""In ``Answer.parts``: cut the connection here, mid-body."""


@dataclass
class Answer:
    """One scripted reply. ``parts`` makes it a chunked body written piece by piece; a float
    in ``parts`` pauses that many seconds and ``DROP`` aborts the connection."""

    status: int = 200
    body: bytes | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    parts: list[Any] | None = None
    delay: float = 0.0
    """Seconds before the status line (a slow first byte)."""
    content_type: str | None = None


@dataclass
class Seen:
    """A request as the scripted server got it; header names lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def completion(content: str = "".join(WORDS), usage: dict[str, int] | None = USAGE) -> dict:
    out: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }
    if usage is not None:
        out["usage"] = usage
    return out


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": choices,
        **extra,
    }


def sse(payload: Any) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


def stream_events(words: list[str] = WORDS, usage: dict[str, int] | None = USAGE) -> list[bytes]:
    """The SSE events of a well-formed stream: role, one event per word, finish, usage, DONE."""
    events = [sse(chunk({"role": "assistant", "content": ""}))]
    events += [sse(chunk({"content": w})) for w in words]
    events.append(sse(chunk({}, "stop")))
    if usage is not None:
        events.append(sse(chunk(None, usage=usage)))
    events.append(sse("[DONE]"))
    return events


class ScriptedServer:
    """A loopback HTTP server answering from a queue; see the module docstring.

    Test modules cannot import this conftest, so the wire helpers ride along as attributes.
    """

    Answer = Answer
    DROP = DROP
    MODEL = MODEL
    USAGE = USAGE
    WORDS = WORDS
    completion = staticmethod(completion)
    chunk = staticmethod(chunk)
    sse = staticmethod(sse)
    stream_events = staticmethod(stream_events)

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self._queue: deque[Answer] = deque()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="scripted-server", daemon=True)
        self.url = ""

    # --- test side ----------------------------------------------------------------------

    def queue(self, *answers: Answer) -> None:
        self._queue.extend(answers)

    def reset(self) -> None:
        self.requests.clear()
        self._queue.clear()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("scripted server did not start")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _shutdown(self) -> None:
        await self._runner.cleanup()
        # Handlers still sleeping in a scripted pause: end them rather than leave them pending.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- server side --------------------------------------------------------------------

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.1
        )
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/v1"
        self._ready.set()
        self._loop.run_forever()

    def _default(self, seen: Seen) -> Answer:
        path = seen.path.removeprefix("/v1")
        if path == "/models":
            return Answer(body={"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        if path == "/embeddings":
            texts = seen.json["input"]
            texts = [texts] if isinstance(texts, str) else texts
            data = [
                {"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0]}
                for i, t in enumerate(texts)
            ]
            n = sum(len(t.split()) for t in texts)
            return Answer(
                body={
                    "object": "list",
                    "data": data,
                    "model": seen.json["model"],
                    "usage": {"prompt_tokens": n, "total_tokens": n},
                }
            )
        if path == "/chat/completions" and (seen.json or {}).get("stream"):
            return Answer(parts=stream_events())
        if path == "/chat/completions":
            return Answer(body=completion())
        return Answer(404, {"error": {"message": f"no route {path}", "type": "not_found"}})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        headers = {name.lower(): value for name, value in request.headers.items()}
        seen = Seen(request.method, request.path, headers, await request.read())
        self.requests.append(seen)
        answer = self._queue.popleft() if self._queue else self._default(seen)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.parts and answer.parts[0] is DROP:  # no status line at all
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        headers = {"x-request-id": f"req-{len(self.requests)}", **answer.headers}
        if answer.parts is None:
            body = answer.body
            if isinstance(body, dict):
                body = json.dumps(body).encode()
            ctype = answer.content_type or (
                "application/json" if isinstance(answer.body, dict) else "text/plain"
            )
            headers.setdefault("Content-Type", ctype)
            return web.Response(status=answer.status, body=body or b"", headers=headers)
        headers.setdefault("Content-Type", answer.content_type or "text/event-stream")
        response = web.StreamResponse(status=answer.status, headers=headers)
        await response.prepare(request)
        for part in answer.parts:
            if part is DROP:
                assert request.transport is not None
                request.transport.abort()
                return response
            if isinstance(part, float):
                await asyncio.sleep(part)
            else:
                await response.write(part)
        await response.write_eof()
        return response


@pytest.fixture(scope="session")
def _scripted_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def scripted(_scripted_server: ScriptedServer) -> ScriptedServer:
    """The session's scripted server, with its queue and request log cleared."""
    _scripted_server.reset()
    return _scripted_server


# --- time without waiting ---------------------------------------------------------------


class FakeTime:
    """A clock that only moves when the client sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def store_clock() -> FakeTime:
    """A clock for a policy store (``InMemoryStore(clock=store_clock.monotonic)``) that
    moves only when the test moves ``.now``: breaker cool-downs pass without waiting."""
    return FakeTime()


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], FakeTime]:
    """``fake_time(client)``: the client's sleeps are recorded, not slept, and its call
    clock advances only by them. Patches the client module's view of ``time`` and
    ``asyncio`` alone, so servers and the event loop keep real time."""

    def install(client: Any) -> FakeTime:
        fake = FakeTime()
        client._pipeline.clock = fake.monotonic
        monkeypatch.setattr(
            client_module, "time", SimpleNamespace(sleep=fake.sleep, monotonic=fake.monotonic)
        )
        monkeypatch.setattr(client_module, "asyncio", _AsyncioWithSleep(fake.async_sleep))
        return fake

    return install


class _AsyncioWithSleep:
    def __init__(self, sleep: Callable[[float], Any]) -> None:
        self.sleep = sleep

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


# --- clients ------------------------------------------------------------------------------


FAST_RETRY = RetryPolicy(max_retries=2, initial_delay=0.01, max_delay=0.05, jitter=0.0)


@pytest.fixture(params=["aiohttp", "httpx"])
def async_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs once per async transport."""
    return request.param


def _defaults(settings: dict[str, Any], emulator: Any, api_key: str) -> dict[str, Any]:
    return {"api_key": api_key, "base_url": emulator.url, "retry": FAST_RETRY, **settings}


@pytest.fixture
def make_client(emulator: Any, api_key: str) -> Iterator[Callable[..., HolySheepClient]]:
    """Sync clients (on the emulator unless ``base_url=`` says otherwise), closed after."""
    made: list[HolySheepClient] = []

    def make(**settings: Any) -> HolySheepClient:
        client = HolySheepClient(**_defaults(settings, emulator, api_key))
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
async def make_async_client(emulator: Any, api_key: str, async_backend: str) -> Any:
    """Async clients with this test's backend (on the emulator unless ``base_url=`` says
    otherwise), closed after the test."""
    made: list[AsyncHolySheepClient] = []

    def make(**settings: Any) -> AsyncHolySheepClient:
        settings = {"async_backend": async_backend, **settings}
        client = AsyncHolySheepClient(**_defaults(settings, emulator, api_key))
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()
