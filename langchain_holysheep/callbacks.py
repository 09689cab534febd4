"""Tokens and USD by model through LangChain callbacks.

``HolySheepCallbackHandler`` reads each finished chat call (``on_llm_end``): the message's
``usage_metadata`` and, for ``ChatHolySheep``, the ``cost_usd`` the core priced in
``response_metadata``. Messages from other chat models (say ``ChatOpenAI`` pointed at the
HolySheep endpoint) are priced with the core's price table by their model name. Answers
served by LangChain's LLM cache (``set_llm_cache``) sent no request: they cost nothing and
are counted apart, in ``llm_cache_hits``. A stream
ends in one ``on_llm_end`` whose merged message holds the usage once, so streams count
once; invoke, batch, sync and async all go through the same path.

``get_holysheep_callback()`` is the context-manager form, like ``get_openai_callback``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.outputs import LLMResult

from holysheep_core import PriceTable, TokenUsage, UsageTally
from holysheep_core.types import CompletionTokensDetails, PromptTokensDetails, Usage

__all__ = ["HolySheepCallbackHandler", "get_holysheep_callback"]

UNKNOWN_MODEL = "unknown"
_RECENT_RUNS = 1024


class HolySheepCallbackHandler(BaseCallbackHandler, UsageTally):
    """Adds up requests, tokens and USD of the chat calls it sees, by model. Thread-safe.

    ``usage`` is the total and ``by_model`` the breakdown, both as the core's
    :class:`~holysheep_core.TokenUsage` (``cost_usd`` a ``Decimal``, None when no call's
    price is known); the other figures come from :class:`~holysheep_core.UsageTally`. The
    float attributes follow ``get_openai_callback``'s names: ``total_cost`` is the USD of
    the calls whose price is known (0.0 when none is), ``unpriced_requests`` the calls it
    leaves out, and ``total_cost_usd`` None rather than 0.0 when no price is known.
    """

    run_inline = True  # a few dict updates under a lock: no need for an executor thread

    def __init__(
        self, *, prices: PriceTable | None = None, parent: HolySheepCallbackHandler | None = None
    ) -> None:
        super().__init__()
        self._prices = prices or PriceTable()
        self._parent = parent
        self._lock = threading.Lock()
        # Runs already counted: the same handler may be reached twice for one run (passed
        # in ``callbacks`` and inherited from an enclosing block). The same run ends at
        # every handler at once, so a short memory is enough.
        self._recent: OrderedDict[UUID, None] = OrderedDict()
        self._cache_hits = 0

    # --- reading (the rest comes from UsageTally) ----------------------------------------

    @property
    def prompt_tokens_cached(self) -> int:
        return self.usage.cached_tokens

    @property
    def reasoning_tokens(self) -> int:
        return self.usage.reasoning_tokens

    @property
    def llm_cache_hits(self) -> int:
        """Calls answered by LangChain's LLM cache (``set_llm_cache``): no request was sent,
        so they are in no other figure (not requests, tokens or cost)."""
        return self._cache_hits

    @property
    def total_cost(self) -> float:
        """USD of the calls whose price is known (see ``unpriced_requests``)."""
        return self.total_cost_usd or 0.0

    def reset(self) -> None:
        with self._lock:
            self._recent.clear()
            self._cache_hits = 0
        super().reset()

    def __repr__(self) -> str:
        u = self.usage
        unpriced = f" ({u.unpriced_requests} unpriced)" if u.unpriced_requests else ""
        return (
            f"Tokens Used: {u.total_tokens}\n"
            f"\tPrompt Tokens: {u.input_tokens}\n"
            f"\t\tPrompt Tokens Cached: {u.cached_tokens}\n"
            f"\tCompletion Tokens: {u.output_tokens}\n"
            f"\t\tReasoning Tokens: {u.reasoning_tokens}\n"
            f"Successful Requests: {u.requests}{unpriced}\n"
            f"Total Cost (USD): ${self.total_cost}"
        )

    # --- recording ----------------------------------------------------------------------

    def on_llm_end(self, response: LLMResult, *, run_id: UUID | None = None, **kwargs: Any) -> None:
        calls = []
        hits = 0
        for generations in response.generations:
            # One call's usage sits on its first generation (n > 1 shares it).
            message = getattr(generations[0], "message", None) if generations else None
            if not isinstance(message, AIMessage):
                continue
            if _from_llm_cache(message):
                hits += 1  # answered by LangChain's cache: no request, nothing billed
            elif not message.response_metadata.get("cache_hit"):
                # A ResponseCache hit (cache_hit) made no request either: not a call.
                calls.append(self._call_usage(message))
        if calls or hits:
            self._record(run_id, calls, hits)

    def _call_usage(self, message: AIMessage) -> tuple[str, TokenUsage]:
        meta = message.response_metadata
        model = str(meta.get("model_name") or UNKNOWN_MODEL)
        um = message.usage_metadata
        if not um:
            return model, TokenUsage.from_usage(None, None)
        usage = Usage(
            prompt_tokens=um.get("input_tokens", 0),
            completion_tokens=um.get("output_tokens", 0),
            total_tokens=um.get("total_tokens", 0),
            prompt_tokens_details=PromptTokensDetails(
                cached_tokens=um.get("input_token_details", {}).get("cache_read") or 0
            ),
            completion_tokens_details=CompletionTokensDetails(
                reasoning_tokens=um.get("output_token_details", {}).get("reasoning") or 0
            ),
        )
        if "cost_usd" in meta:  # priced by the core that made the call
            raw = meta["cost_usd"]
            cost = None if raw is None else Decimal(str(raw))
        else:
            cost = self._prices.cost(model, usage)
        return model, TokenUsage.from_usage(usage, cost)

    def _record(
        self, run_id: UUID | None, calls: list[tuple[str, TokenUsage]], cache_hits: int = 0
    ) -> None:
        with self._lock:
            if run_id is not None:
                if run_id in self._recent:
                    return
                self._recent[run_id] = None
                if len(self._recent) > _RECENT_RUNS:
                    self._recent.popitem(last=False)
            self._cache_hits += cache_hits
        for model, usage in calls:
            self.add(model, usage)
        if self._parent is not None:
            self._parent._record(run_id, calls, cache_hits)


def _from_llm_cache(message: AIMessage) -> bool:
    """Whether langchain-core served this message from its LLM cache (``set_llm_cache``):
    it marks each cached answer with a zero ``total_cost`` in ``usage_metadata``, a key no
    model call of ours sets."""
    usage = message.usage_metadata
    return usage is not None and usage.get("total_cost") == 0


_current: ContextVar[HolySheepCallbackHandler | None] = ContextVar(
    "holysheep_callback", default=None
)
_registered = threading.Lock()
_hooked = False


def _hook_once() -> None:
    """Register ``_current`` with langchain-core, once, on first use: every callback
    manager configured while a handler is set then gets it, including those of nested runs
    and of batch worker threads (they copy the context). Deferred because the tracing
    module it lives in pulls in langsmith's client, which would double this package's
    import time."""
    global _hooked
    with _registered:
        if not _hooked:
            from langchain_core.tracers.context import register_configure_hook

            register_configure_hook(_current, inheritable=True)
            _hooked = True


@contextmanager
def get_holysheep_callback(
    *, prices: PriceTable | None = None
) -> Iterator[HolySheepCallbackHandler]:
    """Count every chat call made inside the block.

    Example:
        ```python
        with get_holysheep_callback() as cb:
            chain.invoke({"topic": "sheep"})
        print(cb.total_cost, cb.by_model)
        ```

    Nested blocks each see their own calls, and an outer block also sees its inner
    blocks' calls.

    Args:
        prices: the table for calls that do not carry their own cost (other providers'
            chat models); the core's defaults otherwise.
    """
    _hook_once()
    handler = HolySheepCallbackHandler(prices=prices, parent=_current.get())
    token = _current.set(handler)
    try:
        yield handler
    finally:
        _current.reset(token)
