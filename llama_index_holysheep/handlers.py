"""Tokens and USD by model, from LlamaIndex's two observability systems.

* :class:`HolySheepCostHandler` is a ``CallbackManager`` handler (the legacy system):
  ``CallbackManager([handler])`` on an LLM, a query engine or ``Settings``.
* :class:`HolySheepUsageEventHandler` is an instrumentation event handler: use it as a
  context manager, or ``get_dispatcher().add_event_handler(handler)``.

Both read what the ``HolySheep`` LLM wrote on each call's final response (the server's usage
and the core's price, see :mod:`.usage`): neither counts tokens nor prices anything itself.
Calls of other LLMs are ignored. A call is counted once, when its final response arrives,
under the model that served it; a stream left early or a cancelled call has no usage to
count and is tallied in ``abandoned_calls`` instead (the server may still bill it).

``HolySheepEmbedding`` requests are counted too, one per request, under the embedding
model: ``by_model`` tells them from chat calls, and the totals (``total_tokens``,
``total_cost_usd``, ``successful_requests``) include them. An embedding model with no
price in the client's table leaves its cost unknown (``unpriced_requests``), never $0.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from typing import Any

from llama_index.core.callbacks import CallbackManager
from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.callbacks.schema import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionInProgressEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.instrumentation.events.span import SpanDropEvent

from holysheep_core import TokenUsage, UsageTally

from .usage import LLM_CLASS_NAME, HolySheepEmbeddingUsageEvent, cache_hit, served_model, usage_of

__all__ = ["HolySheepCostHandler", "HolySheepUsageEventHandler", "keep_cost_handlers"]

_OPEN_LIMIT = 10_000


class _CallTally(UsageTally):
    """A :class:`~holysheep_core.UsageTally` that also follows ``HolySheep`` calls in
    flight, to count each once when its final response arrives."""

    def __init__(self) -> None:
        super().__init__()
        self._calls_lock = threading.Lock()
        self._open: OrderedDict[Any, str] = OrderedDict()
        self._abandoned = 0

    def _open_call(self, key: Any, model_dict: Any) -> None:
        if not isinstance(model_dict, dict) or model_dict.get("class_name") != LLM_CLASS_NAME:
            return
        with self._calls_lock:
            self._open[key] = str(model_dict.get("model_name", ""))
            # A call that never ends (a stream nobody iterated) must not grow this forever.
            while len(self._open) > _OPEN_LIMIT:
                self._open.popitem(last=False)

    def _finish_call(self, key: Any, response: Any, *, final_only: bool = False) -> None:
        """Count the call ``key`` once, with the usage on ``response`` (its last one),
        under the model that served it (a fallback model, when the call fell back). A call
        a ``ResponseCache`` answered made no request: it is closed, not counted."""
        if cache_hit(response):
            with self._calls_lock:
                self._open.pop(key, None)
            return
        usage = usage_of(response)
        if usage is None:
            if final_only:
                return
            usage = TokenUsage.from_usage(None, None)  # ended without usage: unknown
        with self._calls_lock:
            model = self._open.pop(key, None)
        if model is not None:
            self.add(served_model(response) or model, usage)

    def _fail_call(self, key: Any, error: BaseException | None) -> None:
        with self._calls_lock:
            if self._open.pop(key, None) is not None and isinstance(
                error, (GeneratorExit, asyncio.CancelledError)
            ):
                self._abandoned += 1

    @property
    def abandoned_calls(self) -> int:
        """Calls left before their usage arrived (streams closed early, cancelled tasks)."""
        return self._abandoned

    def reset(self) -> None:
        with self._calls_lock:
            self._open.clear()
            self._abandoned = 0
        super().reset()


class HolySheepCostHandler(BaseCallbackHandler, _CallTally):
    """``CallbackManager`` handler: tokens and USD of ``HolySheep`` calls and
    ``HolySheepEmbedding`` requests, by model (see :class:`~holysheep_core.UsageTally`).

    Attach it to the models, or to ``Settings.callback_manager`` for everything. Once
    attached to a ``HolySheep`` or ``HolySheepEmbedding``, it stays attached when LlamaIndex
    replaces the model's callback manager (``VectorStoreIndex``, query engines and agents
    do, through ``resolve_llm`` / ``resolve_embed_model`` and ``Settings``): the new manager
    gets it too. To stop counting, ``model.callback_manager.remove_handler(handler)``.
    For everything in a block regardless of managers, :class:`HolySheepUsageEventHandler`
    listens on the instrumentation dispatcher instead.

    Example:
        ```python
        handler = HolySheepCostHandler()
        llm = HolySheep(callback_manager=CallbackManager([handler]))
        index.as_query_engine(llm=llm).query("...")  # still counted
        print(handler.total_tokens, handler.total_cost_usd, handler.by_model)
        ```
    """

    def __init__(self) -> None:
        BaseCallbackHandler.__init__(self, event_starts_to_ignore=[], event_ends_to_ignore=[])
        _CallTally.__init__(self)

    def on_event_start(
        self,
        event_type: CBEventType,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        parent_id: str = "",
        **kwargs: Any,
    ) -> str:
        if event_type == CBEventType.LLM and payload:
            self._open_call(event_id, payload.get(EventPayload.SERIALIZED))
        return event_id

    def on_event_end(
        self,
        event_type: CBEventType,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        **kwargs: Any,
    ) -> None:
        if event_type != CBEventType.LLM:
            return
        payload = payload or {}
        if EventPayload.EXCEPTION in payload:
            self._fail_call(event_id, payload[EventPayload.EXCEPTION])
            return
        response = payload.get(EventPayload.RESPONSE, payload.get(EventPayload.COMPLETION))
        self._finish_call(event_id, response)

    def start_trace(self, trace_id: str | None = None) -> None:
        return None

    def end_trace(
        self, trace_id: str | None = None, trace_map: dict[str, list[str]] | None = None
    ) -> None:
        return None


class HolySheepUsageEventHandler(BaseEventHandler, _CallTally):
    """Instrumentation handler: tokens and USD of ``HolySheep`` calls and
    ``HolySheepEmbedding`` requests, by model (see :class:`~holysheep_core.UsageTally`).

    A stream is counted as soon as its final response is handed out, so a caller that stops
    right after it still has the call counted.

    Example:
        ```python
        with HolySheepUsageEventHandler() as usage:  # attached to the root dispatcher
            llm.complete("Hi")
        print(usage.total_tokens, usage.total_cost_usd)
        ```
    """

    def model_post_init(self, context: Any, /) -> None:
        # pydantic's __init__ does not chain to the tally's.
        _CallTally.__init__(self)

    @classmethod
    def class_name(cls) -> str:
        return "HolySheepUsageEventHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, (LLMChatStartEvent, LLMCompletionStartEvent)):
            self._open_call(event.span_id, event.model_dict)
        elif isinstance(event, (LLMChatInProgressEvent, LLMCompletionInProgressEvent)):
            self._finish_call(event.span_id, event.response, final_only=True)
        elif isinstance(event, (LLMChatEndEvent, LLMCompletionEndEvent)):
            self._finish_call(event.span_id, event.response)
        elif isinstance(event, ExceptionEvent):
            self._fail_call(event.span_id, event.exception)
        elif isinstance(event, SpanDropEvent):  # a call that failed before it returned
            self._fail_call(event.span_id, None)
        elif isinstance(event, HolySheepEmbeddingUsageEvent):
            self.add(event.model, event.usage)

    def __enter__(self) -> HolySheepUsageEventHandler:
        get_dispatcher().add_event_handler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        root = get_dispatcher()
        root.event_handlers = [h for h in root.event_handlers if h is not self]


def keep_cost_handlers(old: CallbackManager | None, new: Any) -> Any:
    """The callback manager to give a model that had ``old`` and is being given ``new``:
    ``new`` itself, or, when ``old`` held cost handlers ``new`` lacks, a manager with
    ``new``'s handlers and those (``new`` is often ``Settings.callback_manager``, shared by
    every model: it is not changed)."""
    if old is None or not isinstance(new, CallbackManager) or old is new:
        return new
    missing = [
        h for h in old.handlers if isinstance(h, HolySheepCostHandler) and h not in new.handlers
    ]
    if not missing:
        return new
    return CallbackManager([*new.handlers, *missing])
