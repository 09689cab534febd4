"""What one emulator server holds: its settings and its thread-safe mutable state."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .faults import Fault, FaultSchedule
from .tokens import count_message_tokens
from .validation import ChatRequest
from .wire import Quirk

__all__ = ["RateWindow", "RecordedRequest", "ServerConfig", "ServerState"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerConfig:
    """Server settings: ``latency`` (before each ``/v1/`` response) and ``chunk_delay``
    (between stream chunks) are in seconds."""

    api_key: str | None = None
    latency: float = 0.0
    chunk_delay: float = 0.0
    quirks: frozenset[Quirk] = frozenset()


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
    """Recorded requests, the fault schedule, the prompt cache and the rate window."""

    def __init__(self, config: ServerConfig, faults: Iterable[Fault] = ()) -> None:
        self.config = config
        self.schedule = FaultSchedule(faults)
        self.rate = RateWindow()
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._cached_prefixes: set[tuple[str, str]] = set()

    def record(self, request: RecordedRequest) -> None:
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
            self._cached_prefixes.add(key)
        return count_message_tokens(first) if seen else 0

    def reset(self) -> None:
        """Forget recorded requests, pending faults, the prompt cache and the rate window."""
        self.schedule.clear()
        self.rate = RateWindow()
        with self._lock:
            self._requests.clear()
            self._cached_prefixes.clear()
