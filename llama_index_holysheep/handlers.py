"""Tokens and USD by model, from LlamaIndex's two observability systems.

* :class:`HolySheepCostHandler` is a ``CallbackManager`` handler (the legacy system):
  ``CallbackManager([handler])`` on an LLM, a query engine or ``Settings``.
* :class:`HolySheepUsageEventHandler` is an instrumentation event handler: use it as a
  context manager, or ``get_dispatcher().add_event_handler(handler)``.

Both read what the ``HolySheep`` LLM wrote on each call's final response (the server's usage
and the core's price, see :mod:`.usage`): neither counts tokens nor prices anything itself.
Calls of other LLMs are ignored. A call is counted once, when its final response arrives; a
stream left early or a cancelled call has no usage to count and is tallied in
``abandoned_calls`` instead (the server may still bill it).
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from typing import Any

from llama_index.core.bridge.pydantic import PrivateAttr
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

from holysheep_core import TokenUsage

from .llm import HolySheep
from .usage import usage_of

__all__ = ["HolySheepCostHandler", "HolySheepUsageEventHandler"]

_OPEN_LIMIT = 10_000


class _Tally:
    """Calls in flight and what finished ones used, by model; safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: OrderedDict[Any, str] = OrderedDict()
        self._by_model: dict[str, TokenUsage] = {}
        self.abandoned = 0

    def open(self, key: Any, model_dict: Any) -> None:
        if not isinstance(model_dict, dict) or model_dict.get("class_name") != (
            HolySheep.class_name()
        ):
            return
        with self._lock:
            self._open[key] = str(model_dict.get("model_name", ""))
            # A call that never ends (a stream nobody iterated) must not grow this forever.
            while len(self._open) > _OPEN_LIMIT:
                self._open.popitem(last=False)

    def finish(self, key: Any, response: Any, *, final_only: bool = False) -> None:
        """Count the call ``key`` once, with the usage on ``response`` (its last one)."""
        usage = usage_of(response)
        if usage is None:
            if final_only:
                return
            usage = TokenUsage.from_usage(None, None)  # ended without usage: unknown
        with self._lock:
            model = self._open.pop(key, None)
            if model is not None:
                old = self._by_model.get(model)
                self._by_model[model] = usage if old is None else old + usage

    def fail(self, key: Any, error: BaseException | None) -> None:
        with self._lock:
            if self._open.pop(key, None) is not None and isinstance(
                error, (GeneratorExit, asyncio.CancelledError)
            ):
                self.abandoned += 1

    def by_model(self) -> dict[str, TokenUsage]:
        with self._lock:
            return dict(self._by_model)

    def reset(self) -> None:
        with self._lock:
            self._open.clear()
            self._by_model.clear()
            self.abandoned = 0


class _Report:
    """What both handlers report."""

    _tally: _Tally

    @property
    def by_model(self) -> dict[str, TokenUsage]:
        """Tokens and USD (``cost_usd``, a ``Decimal``) of finished calls, by model name."""
        return self._tally.by_model()

    @property
    def usage(self) -> TokenUsage:
        """All models together."""
        return sum(self._tally.by_model().values(), TokenUsage())

    @property
    def successful_requests(self) -> int:
        return self.usage.requests

    @property
    def prompt_tokens(self) -> int:
        return self.usage.input_tokens

    @property
    def completion_tokens(self) -> int:
        return self.usage.output_tokens

    @property
    def total_tokens(self) -> int:
        return self.usage.total_tokens

    @property
    def total_cost_usd(self) -> float | None:
        """USD of the counted calls; None when none had a known price (unknown, not $0)."""
        cost = self.usage.cost_usd
        return None if cost is None else float(cost)

    @property
    def abandoned_calls(self) -> int:
        """Calls left before their usage arrived (streams closed early, cancelled tasks)."""
        return self._tally.abandoned

    def reset(self) -> None:
        self._tally.reset()


class HolySheepCostHandler(_Report, BaseCallbackHandler):
    """``CallbackManager`` handler: tokens and USD of ``HolySheep`` calls, by model.

    Example:
        ```python
        handler = HolySheepCostHandler()
        llm = HolySheep(callback_manager=CallbackManager([handler]))
        llm.complete("Hi")
        print(handler.total_tokens, handler.total_cost_usd, handler.by_model)
        ```
    """

    def __init__(self) -> None:
        super().__init__(event_starts_to_ignore=[], event_ends_to_ignore=[])
        self._tally = _Tally()

    def on_event_start(
        self,
        event_type: CBEventType,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        parent_id: str = "",
        **kwargs: Any,
    ) -> str:
        if event_type == CBEventType.LLM and payload:
            self._tally.open(event_id, payload.get(EventPayload.SERIALIZED))
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
            self._tally.fail(event_id, payload[EventPayload.EXCEPTION])
            return
        response = payload.get(EventPayload.RESPONSE, payload.get(EventPayload.COMPLETION))
        self._tally.finish(event_id, response)

    def start_trace(self, trace_id: str | None = None) -> None:
        return None

    def end_trace(
        self, trace_id: str | None = None, trace_map: dict[str, list[str]] | None = None
    ) -> None:
        return None


class HolySheepUsageEventHandler(_Report, BaseEventHandler):
    """Instrumentation handler: tokens and USD of ``HolySheep`` calls, by model.

    A stream is counted as soon as its final response is handed out, so a caller that stops
    right after it still has the call counted.

    Example:
        ```python
        with HolySheepUsageEventHandler() as usage:  # attached to the root dispatcher
            llm.complete("Hi")
        print(usage.total_tokens, usage.total_cost_usd)
        ```
    """

    _tally: _Tally = PrivateAttr(default_factory=_Tally)

    @classmethod
    def class_name(cls) -> str:
        return "HolySheepUsageEventHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, (LLMChatStartEvent, LLMCompletionStartEvent)):
            self._tally.open(event.span_id, event.model_dict)
        elif isinstance(event, (LLMChatInProgressEvent, LLMCompletionInProgressEvent)):
            self._tally.finish(event.span_id, event.response, final_only=True)
        elif isinstance(event, (LLMChatEndEvent, LLMCompletionEndEvent)):
            self._tally.finish(event.span_id, event.response)
        elif isinstance(event, ExceptionEvent):
            self._tally.fail(event.span_id, event.exception)
        elif isinstance(event, SpanDropEvent):  # a call that failed before it returned
            self._tally.fail(event.span_id, None)

    def __enter__(self) -> HolySheepUsageEventHandler:
        get_dispatcher().add_event_handler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        root = get_dispatcher()
        root.event_handlers = [h for h in root.event_handlers if h is not self]
