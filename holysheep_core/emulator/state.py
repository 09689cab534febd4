"""What one emulator server holds: its settings and its thread-safe mutable state."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .faults import Fault, FaultSchedule
from .tokens import count_message_tokens
from .validation import ChatRequest
from .wire import Quirk

__all__ = [
    "DEFAULT_KEEP_REQUESTS",
    "PROMPT_CACHE_ENTRIES",
    "RateWindow",
    "RecordedRequest",
    "ServerConfig",
    "ServerState",
]

DEFAULT_KEEP_REQUESTS = 1000
"""How many of the latest requests an ``Emulator`` keeps for ``emu.requests`` by default."""

PROMPT_CACHE_ENTRIES = 1024
"""The prompt cache remembers this many (model, system message) pairs, least recent dropped."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerConfig:
    """Server settings: ``latency`` (before each ``/v1/`` response) and ``chunk_delay``
    (between stream chunks) are in seconds."""

    api_key: str | None = None
    latency: float = 0.0
    chunk_delay: float = 0.0
    quirks: frozenset[Quirk] = frozenset()
    keep_requests: int | None = DEFAULT_KEEP_REQUESTS

    def __post_init__(self) -> None:
        if self.keep_requests is not None and (
            isinstance(self.keep_requests, bool)
            or not isinstance(self.keep_requests, int)
            or self.keep_requests < 0
        ):
            raise ValueError(
                f"keep_requests must be a whole number >= 0 or None (keep all), "
                f"not {self.keep_requests!r}"
            )


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request as the server received it.

    ``body`` is the parsed JSON (None when empty or not JSON); ``headers`` have lower-case
    names and no ``authorization``.
    """

    method: str
    path: str
    body: Any
    headers: Mapping[str, str]


def _duration(seconds: float) -> str:
    # The API's style: "6m0s", "1.5s", "20ms".
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.2f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


class RateWindow:
    """Plausible ``x-ratelimit-*`` headers: a one-minute window that never runs out."""

    REQUESTS_LIMIT = 10_000
    TOKENS_LIMIT = 2_000_000
    WINDOW_SECONDS = 60.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._start = clock()
        self._requests = self._tokens = 0

    def charge(self, tokens: int) -> dict[str, str]:
        """Count one request of ``tokens`` tokens; the headers to send with its response."""
        with self._lock:
            now = self._clock()
            if now - self._start >= self.WINDOW_SECONDS:
                self._start, self._requests, self._tokens = now, 0, 0
            self._requests += 1
            self._tokens += tokens
            reset = _duration(self.WINDOW_SECONDS - (now - self._start))
            requests_left = max(0, self.REQUESTS_LIMIT - self._requests)
            tokens_left = max(0, self.TOKENS_LIMIT - self._tokens)
        return {
            "x-ratelimit-limit-requests": str(self.REQUESTS_LIMIT),
            "x-ratelimit-remaining-requests": str(requests_left),
            "x-ratelimit-reset-requests": reset,
            "x-ratelimit-limit-tokens": str(self.TOKENS_LIMIT),
            "x-ratelimit-remaining-tokens": str(tokens_left),
            "x-ratelimit-reset-tokens": reset,
        }


class ServerState:
    """Recorded requests, the fault schedule, the prompt cache and the rate window.

    Memory stays bounded however long the server runs: it keeps the latest
    ``config.keep_requests`` requests (None: all of them) and ``PROMPT_CACHE_ENTRIES``
    prompt-cache entries.
    """

    def __init__(self, config: ServerConfig, faults: Iterable[Fault] = ()) -> None:
        self.config = config
        self.schedule = FaultSchedule(faults)
        self.rate = RateWindow()
        self._lock = threading.Lock()
        self._requests: deque[RecordedRequest] = deque(maxlen=config.keep_requests)
        self._cached_prefixes: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._active = 0

    @contextlib.contextmanager
    def handling(self) -> Iterator[None]:
        """Count one request as in progress for the duration of the block."""
        with self._lock:
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1

    @property
    def active_requests(self) -> int:
        """Requests being handled now: waiting, answering or streaming."""
        with self._lock:
            return self._active

    def record(self, request: RecordedRequest) -> None:
        if self.config.keep_requests == 0:
            return
        with self._lock:
            self._requests.append(request)

    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def cached_tokens(self, request: ChatRequest) -> int:
        """Prompt-cache hit: the leading system message's tokens, if this model saw it before."""
        first = request.messages[0]
        if first["role"] not in ("system", "developer"):
            return 0
        key = (request.model_id, json.dumps(first.get("content")))
        with self._lock:
            seen = key in self._cached_prefixes
            self._cached_prefixes[key] = None
            self._cached_prefixes.move_to_end(key)
            if len(self._cached_prefixes) > PROMPT_CACHE_ENTRIES:
                self._cached_prefixes.popitem(last=False)
        return count_message_tokens(first) if seen else 0

    def reset(self) -> None:
        """Forget recorded requests, pending faults, the prompt cache and the rate window."""
        self.schedule.clear()
        self.rate = RateWindow()
        with self._lock:
            self._requests.clear()
            self._cached_prefixes.clear()
