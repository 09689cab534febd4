"""The one seam between a call and its telemetry.

:data:`observer` is None unless an instrumentation (``holysheep_core.telemetry``) installs
one, so an uninstrumented call pays a single ``is None`` check. With one installed, each
chat, stream or embeddings call gets a :class:`CallWatch` when it starts, hands it the
call's policy events as they happen (the hook records of :mod:`holysheep_core.hooks`, and
:class:`RateLimitWait`), its streamed chunks, and its end, exactly once: ``finished``,
``failed`` or ``abandoned``. A watch must never raise into the call; the instrumentation
guards itself.

This module imports nothing from OpenTelemetry, nor anything heavy: it is the core's side
of the contract, and what a new call path must call to stay traced.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

__all__ = [
    "CallEnd",
    "CallObserver",
    "CallStart",
    "CallWatch",
    "RateLimitWait",
    "framework_run",
    "install",
    "observer",
    "watch_call",
]


@dataclass(frozen=True, slots=True)
class CallStart:
    """A call about to make its first attempt (its arguments already checked)."""

    operation: str
    """``"chat"`` or ``"embeddings"`` (the GenAI conventions' operation names)."""
    model: str
    """The model asked for (a fallback may serve another)."""
    base_url: str
    stream: bool
    body: Mapping[str, Any]
    """The wire body of the first attempt; it never holds the key, which travels in a header."""
    secret: str = field(repr=False)
    """The key, only so what is emitted can be scrubbed of it; never emitted itself."""
    framework_run: Any = None
    """The framework run the call belongs to (see :func:`framework_run`), if any."""


@dataclass(frozen=True, slots=True)
class CallEnd:
    """A call that succeeded. ``response`` is the parsed answer (None for a stream, whose
    chunks the watch has seen already)."""

    served_model: str
    """The model that answered: the one asked for, or a fallback."""
    usage: Any
    """The reported :class:`~holysheep_core.types.Usage`, or None."""
    cost_usd: Decimal | None
    attempts: int
    response: Any = None
    request_id: str | None = None
    cache_hit: bool = False
    """Answered from a response cache, with no request."""


@dataclass(frozen=True, slots=True)
class RateLimitWait:
    """An attempt waits its turn in the client-side rate limiter before it goes."""

    model: str
    seconds: float


class CallWatch(Protocol):
    """What the core tells an instrumentation about one call."""

    def event(self, record: object) -> None: ...

    def chunks(self, chunks: Sequence[Any]) -> None:
        """Stream chunks as they arrive (the first ones mark the time to first token)."""

    def finished(self, end: CallEnd) -> None: ...

    def failed(self, error: BaseException) -> None: ...

    def abandoned(self) -> None:
        """The caller left a stream before its end."""


class CallObserver(Protocol):
    def start(self, call: CallStart) -> CallWatch: ...

    def current_parent(self) -> Any:
        """What a call starting now would go under (its parent span), to carry to a call
        made later on the caller's behalf (a stream sent on its first iteration)."""
        ...


observer: CallObserver | None = None
"""The installed instrumentation; None = nothing observed."""


def install(new: CallObserver | None) -> None:
    """Install an observer (None removes it). Calls already started keep their watch."""
    global observer
    observer = new


_framework_run: ContextVar[Any] = ContextVar("holysheep_framework_run", default=None)


@contextmanager
def framework_run(run: Any) -> Iterator[None]:
    """Adapters name the framework run a call starts under (LangChain's run manager), so an
    instrumentation can put the call's span under that run's span when the framework's
    tracer does not make its span current. Free when nothing observes calls."""
    if observer is None or run is None:
        yield
        return
    token = _framework_run.set(run)
    try:
        yield
    finally:
        _framework_run.reset(token)


def current_parent() -> Any:
    """The observer's :meth:`~CallObserver.current_parent`, or None when nothing observes
    calls: pass it to :func:`framework_run` around the later call."""
    obs = observer
    return None if obs is None else obs.current_parent()


def watch_call(
    operation: str,
    model: str,
    config: Any,
    body: Mapping[str, Any],
    stream: bool = False,
) -> CallWatch | None:
    """A watch for a call starting now, or None when nothing observes calls."""
    obs = observer
    if obs is None:
        return None
    return obs.start(
        CallStart(
            operation,
            model,
            config.base_url,
            stream,
            body,
            config.api_key.get_secret_value(),
            _framework_run.get(),
        )
    )
