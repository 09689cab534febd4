"""Fixtures for the LlamaIndex adapter: models pointed at the emulator, and event counters.

Every object gets ``base_url`` and ``api_key`` explicitly (never ``Settings``, which would
leak between tests), so the same tests can run against a recorded cassette's URL.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from llama_index.core.callbacks import CallbackManager
from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.callbacks.schema import CBEventType
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent

from llama_index_holysheep import HolySheep, HolySheepEmbedding


@pytest.fixture
async def opened() -> AsyncIterator[list[HolySheep | HolySheepEmbedding]]:
    """Objects a test made; their async pools are closed in the test's own event loop.

    The shared async client keeps one pool per event loop, and each test runs in a new
    loop: closing here keeps sockets from outliving the loop that opened them.
    """
    objects: list[HolySheep | HolySheepEmbedding] = []
    yield objects
    for obj in objects:
        await obj._clients.asynchronous().aclose()


@pytest.fixture
def make_llm(base_url: str, api_key: str, opened: list[Any]) -> Callable[..., HolySheep]:
    def make(**kwargs: Any) -> HolySheep:
        settings = {"model": "deepseek-v3.2", "api_key": api_key, "api_base": base_url}
        llm = HolySheep(**{**settings, **kwargs})
        opened.append(llm)
        return llm

    return make


@pytest.fixture
def llm(make_llm: Callable[..., HolySheep]) -> HolySheep:
    return make_llm()


@pytest.fixture
def make_embedding(base_url: str, api_key: str, opened: list[Any]) -> Callable[..., Any]:
    def make(**kwargs: Any) -> HolySheepEmbedding:
        settings = {"api_key": api_key, "api_base": base_url}
        model = HolySheepEmbedding(**{**settings, **kwargs})
        opened.append(model)
        return model

    return make


@pytest.fixture
def embed_model(make_embedding: Callable[..., HolySheepEmbedding]) -> HolySheepEmbedding:
    return make_embedding()


class CallbackLog(BaseCallbackHandler):
    """Keeps every LLM start and end payload of a CallbackManager."""

    def __init__(self) -> None:
        super().__init__(event_starts_to_ignore=[], event_ends_to_ignore=[])
        self.starts: list[dict[str, Any]] = []
        self.ends: list[dict[str, Any]] = []

    def on_event_start(
        self,
        event_type: CBEventType,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        parent_id: str = "",
        **kwargs: Any,
    ) -> str:
        if event_type == CBEventType.LLM:
            self.starts.append(payload or {})
        return event_id

    def on_event_end(
        self,
        event_type: CBEventType,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        **kwargs: Any,
    ) -> None:
        if event_type == CBEventType.LLM:
            self.ends.append(payload or {})

    def start_trace(self, trace_id: str | None = None) -> None:
        return None

    def end_trace(self, trace_id: str | None = None, trace_map: Any = None) -> None:
        return None


class EventLog(BaseEventHandler):
    """Keeps every instrumentation event."""

    events: list[BaseEvent] = []

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)

    def count(self) -> Counter[str]:
        return Counter(type(e).__name__ for e in self.events)


@pytest.fixture
def callback_log() -> CallbackLog:
    return CallbackLog()


@pytest.fixture
def callback_manager(callback_log: CallbackLog) -> CallbackManager:
    return CallbackManager([callback_log])


@pytest.fixture
def event_log() -> Iterator[EventLog]:
    log = EventLog(events=[])
    attach(log)
    try:
        yield log
    finally:
        detach(log)


def attach(handler: BaseEventHandler) -> None:
    get_dispatcher().add_event_handler(handler)


def detach(handler: BaseEventHandler) -> None:
    root = get_dispatcher()
    root.event_handlers = [h for h in root.event_handlers if h is not handler]
