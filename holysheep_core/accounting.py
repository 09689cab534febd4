"""Usage as an addable value, and the ledger behind ``client.stats()``.

The ledger is safe from threads and tasks alike: every update is a few dictionary
operations under one ``threading.Lock`` with no await inside, so an event loop never
blocks on it for long and threads never see a half-updated record.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, computed_field

from .types import Usage

__all__ = ["Ledger", "ModelStats", "Stats", "TokenUsage", "UsageTally"]


def _sum_known(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


class TokenUsage(BaseModel):
    """Tokens and USD of one or more calls; ``a + b`` adds them.

    ``cost_usd`` is None only when no part of it is known (an unpriced model), never 0 for
    "unknown"; ``unpriced_requests`` says how many calls the cost leaves out.
    """

    model_config = ConfigDict(frozen=True)

    requests: int = 0
    input_tokens: int = 0
    """Prompt tokens, cached ones included."""
    output_tokens: int = 0
    """Completion tokens, reasoning ones included."""
    cached_tokens: int = 0
    """Prompt tokens read from the provider's cache (part of ``input_tokens``)."""
    reasoning_tokens: int = 0
    """Completion tokens spent thinking (part of ``output_tokens``)."""
    cost_usd: Decimal | None = None
    unpriced_requests: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def from_usage(cls, usage: Usage | None, cost: Decimal | None) -> TokenUsage:
        if usage is None:
            return cls(requests=1, cost_usd=cost, unpriced_requests=int(cost is None))
        return cls(
            requests=1,
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_usd=cost,
            unpriced_requests=int(cost is None),
        )

    def __add__(self, other: TokenUsage) -> TokenUsage:
        if not isinstance(other, TokenUsage):
            return NotImplemented
        return TokenUsage(
            requests=self.requests + other.requests,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cost_usd=_sum_known(self.cost_usd, other.cost_usd),
            unpriced_requests=self.unpriced_requests + other.unpriced_requests,
        )


class UsageTally:
    """Tokens and USD of calls by model, added up from any number of threads and tasks.

    What the frameworks' cost callbacks report: each finished call is ``add``-ed under the
    model that served it, and the totals read back. ``usage`` and ``by_model`` keep the
    exact :class:`TokenUsage` (``cost_usd`` a ``Decimal``); ``total_cost_usd`` is a float,
    the frameworks' convention, and None while no counted call had a known price (unknown,
    not $0). ``unpriced_requests`` counts the calls a known total leaves out.

    Callback handlers may inherit from it: its state lives in ``_tally_*`` attributes.
    """

    def __init__(self) -> None:
        self._tally_lock = threading.Lock()
        self._tally_by_model: dict[str, TokenUsage] = {}

    def add(self, model: str, usage: TokenUsage) -> None:
        """Count ``usage`` (one call or several) under ``model``."""
        with self._tally_lock:
            old = self._tally_by_model.get(model)
            self._tally_by_model[model] = usage if old is None else old + usage

    def reset(self) -> None:
        with self._tally_lock:
            self._tally_by_model.clear()

    @property
    def by_model(self) -> dict[str, TokenUsage]:
        """A copy of the usage so far, by model name."""
        with self._tally_lock:
            return dict(self._tally_by_model)

    @property
    def usage(self) -> TokenUsage:
        """All models together."""
        return sum(self.by_model.values(), TokenUsage())

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
        """USD of the calls whose price is known; None when no call's is."""
        cost = self.usage.cost_usd
        return None if cost is None else float(cost)

    @property
    def unpriced_requests(self) -> int:
        """Calls left out of the cost: an unpriced model, or no usage reported."""
        return self.usage.unpriced_requests


class ModelStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    usage: TokenUsage
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None


class Stats(BaseModel):
    """A snapshot of a client's ledger. Latencies in seconds."""

    model_config = ConfigDict(frozen=True)

    requests: int
    """Calls made (a call with retries counts once)."""
    successes: int
    errors: dict[str, int]
    """Failed calls by error class name."""
    retries: int
    """Extra attempts across all calls."""
    streams_abandoned: int
    """Streams the caller left before the end (the server may still bill them)."""
    calls_cancelled: int = 0
    """Calls whose caller went away (a cancelled task, Ctrl-C) while an attempt was on the
    wire: the server may still bill them, and budgets keep their estimates."""
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    ttft_p50: float | None
    """Time to first token of streams."""
    ttft_p95: float | None
    ttft_p99: float | None
    usage: TokenUsage
    by_model: dict[str, ModelStats]
    breakers: dict[str, str] = {}
    """Circuit breaker state by key."""

    @property
    def cost_usd(self) -> Decimal | None:
        return self.usage.cost_usd


def quantile(samples: Iterable[float], q: float) -> float | None:
    """Nearest-rank quantile (the ``ceil(q * n)``-th smallest); None for no samples."""
    ordered = sorted(samples)
    if not ordered:
        return None
    # The epsilon keeps float noise (0.07 * 100 = 7.000000000000001) from moving a rank up.
    rank = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered) - 1e-9) - 1))
    return ordered[rank]


@dataclass
class _ModelRecord:
    usage: TokenUsage = field(default_factory=TokenUsage)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))


class Ledger:
    """Counts calls, errors, retries, latencies, tokens and cost. One per client."""

    def __init__(self, *, window: int = 10_000) -> None:
        # Re-entrant: a stream left early books itself from __del__, which the garbage
        # collector may run on a thread that is inside a ledger update already.
        self._lock = threading.RLock()
        self._window = window
        self.reset()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self._requests = 0
            self._successes = 0
            self._errors: dict[str, int] = {}
            self._retries = 0
            self._abandoned = 0
            self._cancelled = 0
            self._latency: deque[float] = deque(maxlen=self._window)
            self._ttft: deque[float] = deque(maxlen=self._window)
            self._models: dict[str, _ModelRecord] = {}

    def record_success(
        self,
        model: str,
        usage: TokenUsage | None,
        latency: float,
        *,
        retries: int = 0,
        ttft: float | None = None,
    ) -> None:
        with self._lock:
            self._requests += 1
            self._successes += 1
            self._retries += retries
            self._latency.append(latency)
            if ttft is not None:
                self._ttft.append(ttft)
            rec = self._models.get(model)
            if rec is None:
                rec = self._models[model] = _ModelRecord()
            rec.latencies.append(latency)
            if usage is not None:
                rec.usage = rec.usage + usage

    def record_failure(
        self,
        error: BaseException,
        *,
        retries: int = 0,
        model: str | None = None,
        usage: TokenUsage | None = None,
    ) -> None:
        name = type(error).__name__
        with self._lock:
            self._requests += 1
            self._retries += retries
            self._errors[name] = self._errors.get(name, 0) + 1
            if model is not None and usage is not None:
                rec = self._models.setdefault(model, _ModelRecord())
                rec.usage = rec.usage + usage

    def record_abandoned(
        self, model: str, usage: TokenUsage | None, *, retries: int = 0, ttft: float | None = None
    ) -> None:
        with self._lock:
            self._requests += 1
            self._abandoned += 1
            self._retries += retries
            if ttft is not None:
                self._ttft.append(ttft)
            if usage is not None:
                rec = self._models.setdefault(model, _ModelRecord())
                rec.usage = rec.usage + usage

    def record_cancelled(self, model: str, *, retries: int = 0) -> None:
        """A call whose caller went away while an attempt was on the wire."""
        with self._lock:
            self._requests += 1
            self._cancelled += 1
            self._retries += retries
            self._models.setdefault(model, _ModelRecord())

    def add_usage(self, model: str, usage: TokenUsage) -> None:
        """Usage of a call already counted as failed: the parts the server did answer (and
        bill), such as the batches of an embeddings call that finished before one failed."""
        with self._lock:
            rec = self._models.setdefault(model, _ModelRecord())
            rec.usage = rec.usage + usage

    def snapshot(self, *, breakers: dict[str, str] | None = None) -> Stats:
        with self._lock:
            latency = list(self._latency)
            ttft = list(self._ttft)
            models = {m: (r.usage, list(r.latencies)) for m, r in self._models.items()}
            counts: dict[str, Any] = {
                "requests": self._requests,
                "successes": self._successes,
                "errors": dict(self._errors),
                "retries": self._retries,
                "streams_abandoned": self._abandoned,
                "calls_cancelled": self._cancelled,
            }
        # Sorting happens outside the lock so a stats() call never stalls the hot path.
        total = TokenUsage()
        by_model = {}
        for m, (usage, lat) in models.items():
            total = total + usage
            by_model[m] = ModelStats(
                usage=usage,
                latency_p50=quantile(lat, 0.5),
                latency_p95=quantile(lat, 0.95),
                latency_p99=quantile(lat, 0.99),
            )
        return Stats(
            **counts,
            latency_p50=quantile(latency, 0.5),
            latency_p95=quantile(latency, 0.95),
            latency_p99=quantile(latency, 0.99),
            ttft_p50=quantile(ttft, 0.5),
            ttft_p95=quantile(ttft, 0.95),
            ttft_p99=quantile(ttft, 0.99),
            usage=total,
            by_model=by_model,
            breakers=breakers or {},
        )
