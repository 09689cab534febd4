"""Client-side rate limits: requests per second and tokens per minute, global and per model.

Each limit is a token bucket that may go into debt. A caller takes its turn from every
bucket that applies, all at once (``BeforeAttempt`` in :mod:`.operations`): the turn is
the earliest time every bucket can pay (one request, the estimated tokens), and each bucket
is charged *at that turn*, GCRA-style, so a bucket never believes it has paid off a debt
while another bucket spaced the sends. Turns are given in arrival order, so waiting is
first come, first served: a large request queues like any other and is never overtaken by
a stream of small ones. A turn that would come as the call's deadline ends is refused at
once.

Estimates are corrected once the server reports usage, and the buckets follow the server:
``x-ratelimit-remaining-*`` caps what is left (at zero, nobody goes until
``x-ratelimit-reset-*``), and a 429 blocks the bucket for its ``Retry-After`` and cuts its
rate (``backoff``), which then climbs back linearly over ``recovery`` seconds. Every
client sharing the store backs off together.

Everything here is pure and takes ``now`` (seconds).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

__all__ = [
    "Bucket",
    "BucketSpec",
    "Buckets",
    "Limit",
    "LimiterTuning",
    "RateLimiter",
    "RateLimits",
    "ServerCount",
    "estimate_tokens",
    "parse_duration",
]

Kind = Literal["requests", "tokens"]


_ASCII = bytes(range(128))


def estimate_tokens(body: bytes | None) -> int:
    """Prompt tokens guessed from a request body before sending it: one per four ASCII
    bytes of its JSON and one per two other bytes (a CJK character, three bytes, is often
    more than one token), rounded up. Cheap and a little high for English (JSON keys count
    too); the server's reported usage corrects it after each call."""
    if not body:
        return 0
    if body.isascii():
        return (len(body) + 3) // 4
    wide = len(body.translate(None, _ASCII))
    return (len(body) - wide + 3) // 4 + (wide + 1) // 2


def _positive(name: str, value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or not value > 0):
        raise ValueError(f"{name} must be > 0 or None, got {value!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Limit:
    """Rates for one scope (all models, or one model). None = no limit on that axis."""

    requests_per_second: float | None = None
    tokens_per_minute: float | None = None
    request_burst: float | None = None
    """Requests that may start at once after a quiet spell; default one second's worth."""
    token_burst: float | None = None
    """Tokens that may start at once after a quiet spell; default one minute's worth."""

    def __post_init__(self) -> None:
        for name in ("requests_per_second", "tokens_per_minute", "request_burst", "token_burst"):
            _positive(name, getattr(self, name))


@dataclass(frozen=True, kw_only=True, slots=True)
class RateLimits:
    """Client-side limits: the global ones as fields, per-model ones in ``per_model``.

    ``max_wait`` (seconds) caps how long a call may wait for its turn; the call's deadline
    caps it too. ``max_wait=0`` is the no-wait test mode: a call that would wait fails at
    once. ``adapt`` follows the server's ``x-ratelimit-*`` headers and 429s; ``backoff``
    multiplies the rate after a 429 (never below ``min_rate_factor`` of it), and the rate
    returns to normal linearly over ``recovery`` seconds.
    """

    requests_per_second: float | None = None
    tokens_per_minute: float | None = None
    request_burst: float | None = None
    token_burst: float | None = None
    per_model: Mapping[str, Limit] | tuple[tuple[str, Limit], ...] = field(default=())
    max_wait: float | None = None
    adapt: bool = True
    backoff: float = 0.5
    min_rate_factor: float = 0.1
    recovery: float = 30.0

    def __post_init__(self) -> None:
        for name in ("requests_per_second", "tokens_per_minute", "request_burst", "token_burst"):
            _positive(name, getattr(self, name))
        per_model = self.per_model
        items = per_model.items() if isinstance(per_model, Mapping) else per_model
        pairs = tuple(sorted((str(m), lim) for m, lim in items))
        for model, lim in pairs:
            if not model or not isinstance(lim, Limit):
                raise ValueError(f"per_model maps model names to Limit, got {model!r}: {lim!r}")
        # A tuple keeps the policy hashable, so clients with equal settings can be shared.
        object.__setattr__(self, "per_model", pairs)
        if self.max_wait is not None and self.max_wait < 0:
            raise ValueError(f"max_wait must be >= 0 or None, got {self.max_wait!r}")
        if not 0 < self.backoff <= 1 or not 0 < self.min_rate_factor <= 1:
            raise ValueError("backoff and min_rate_factor must be in (0, 1]")
        if self.recovery < 0:
            raise ValueError(f"recovery must be >= 0 seconds, got {self.recovery!r}")

    @property
    def shared(self) -> Limit:
        """The limit every model shares."""
        return Limit(
            requests_per_second=self.requests_per_second,
            tokens_per_minute=self.tokens_per_minute,
            request_burst=self.request_burst,
            token_burst=self.token_burst,
        )

    def wait_cap(self, max_wait: float | None) -> float | None:
        """How long a caller may wait: the tighter of ``max_wait`` and the policy's."""
        cap = self.max_wait
        if cap is None:
            return max_wait
        return cap if max_wait is None else min(max_wait, cap)


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """One bucket's store key and limit."""

    key: str
    kind: Kind
    """``requests``: one unit per attempt; ``tokens``: the attempt's estimated tokens."""
    rate: float
    """Units per second at the full rate."""
    capacity: float


_Spec = BucketSpec


@dataclass(frozen=True, slots=True)
class LimiterTuning:
    """How the buckets follow a 429 (the fields of :class:`RateLimits` of that name)."""

    backoff: float = 0.5
    min_rate_factor: float = 0.1
    recovery: float = 30.0


def _specs(limit: Limit, scope: str) -> list[BucketSpec]:
    out = []
    if limit.requests_per_second is not None:
        rps = limit.requests_per_second
        cap = limit.request_burst or max(1.0, rps)
        out.append(BucketSpec(f"{scope}:requests", "requests", rps, cap))
    if limit.tokens_per_minute is not None:
        tpm = limit.tokens_per_minute
        cap = limit.token_burst or tpm
        out.append(BucketSpec(f"{scope}:tokens", "tokens", tpm / 60.0, cap))
    return out


def _amount(spec: BucketSpec, tokens: float) -> float:
    """What one call of ``tokens`` estimated tokens takes from ``spec``'s bucket."""
    return 1.0 if spec.kind == "requests" else tokens


class Tuning(Protocol):
    """What the bucket functions read of a policy (:class:`LimiterTuning`, :class:`RateLimits`)."""

    @property
    def backoff(self) -> float: ...
    @property
    def min_rate_factor(self) -> float: ...
    @property
    def recovery(self) -> float: ...


class Bucket(NamedTuple):
    """One bucket's state: ``level`` units free at time ``at`` (below zero: owed by
    callers already scheduled); ``factor`` of the full rate since ``factor_at``.

    A named tuple, not a frozen dataclass like the other stored values: every call builds
    a few, and a tuple takes half the time to build."""

    level: float
    at: float
    factor: float = 1.0
    factor_at: float = 0.0


def rate_factor(policy: Tuning, b: Bucket, now: float) -> float:
    """Share of the full rate at ``now``: cut by 429s, recovering linearly."""
    if b.factor >= 1.0:
        return 1.0
    if policy.recovery <= 0:
        return 1.0
    return min(1.0, b.factor + (1.0 - b.factor) * max(now - b.factor_at, 0.0) / policy.recovery)


def refill(policy: Tuning, spec: BucketSpec, b: Bucket | None, now: float) -> Bucket:
    """The bucket at ``now``; a bucket never seen starts full."""
    if b is None:
        return Bucket(spec.capacity, now)
    factor = rate_factor(policy, b, now)
    level = min(spec.capacity, b.level + max(now - b.at, 0.0) * spec.rate * factor)
    if factor >= 1.0 and b.factor < 1.0:  # recovered: forget the 429
        return Bucket(level, max(now, b.at))
    return Bucket(level, max(now, b.at), b.factor, b.factor_at)


def give_back(
    policy: Tuning, spec: BucketSpec, b: Bucket | None, amount: float, now: float
) -> Bucket:
    """Return ``amount`` (a cancelled reservation, an over-estimate); negative takes more."""
    if b is not None and b.factor >= 1.0 and now > b.at:
        level = min(spec.capacity, b.level + (now - b.at) * spec.rate)
        return Bucket(min(spec.capacity, level + amount), now, b.factor, b.factor_at)
    b = refill(policy, spec, b, now)
    return Bucket(min(spec.capacity, b.level + amount), b.at, b.factor, b.factor_at)


def clamp(
    policy: Tuning,
    spec: BucketSpec,
    b: Bucket | None,
    remaining: float,
    reset: float | None,
    now: float,
) -> Bucket:
    """Follow the server's count: no more than ``remaining`` left, and at zero nothing
    until ``reset`` seconds from now."""
    b = refill(policy, spec, b, now)
    level = min(b.level, remaining)
    if remaining <= 0 and reset:
        level = min(level, -reset * spec.rate * rate_factor(policy, b, now))
    return Bucket(level, b.at, b.factor, b.factor_at)


def penalise(
    policy: Tuning, spec: BucketSpec, b: Bucket | None, retry_after: float | None, now: float
) -> Bucket:
    """After a 429: cut the rate by ``backoff`` and let nobody go for ``retry_after``."""
    b = refill(policy, spec, b, now)
    factor = max(policy.min_rate_factor, rate_factor(policy, b, now) * policy.backoff)
    level = b.level
    if retry_after:
        level = min(level, -retry_after * spec.rate * factor)
    return Bucket(level, b.at, factor, now)


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|h|m|s)")


def parse_duration(text: str | None) -> float | None:
    """Seconds from ``x-ratelimit-reset-*``: a number, or Go-style ``1m30s``, ``20ms``."""
    if not text:
        return None
    text = text.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    total, pos = 0.0, 0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * scale[m.group(2)]
        pos = m.end()
    return total if pos == len(text) and pos else None


@dataclass(frozen=True, slots=True)
class ServerCount:
    """The server's ``x-ratelimit-remaining-*`` (and ``-reset-*``, seconds) for a bucket."""

    spec: BucketSpec
    remaining: float
    reset: float | None


@dataclass(frozen=True, slots=True)
class Buckets:
    """The buckets one model draws from (its own, then the shared ones) and their store
    keys, in the same order; the token buckets apart, for usage corrections."""

    specs: tuple[BucketSpec, ...]
    keys: tuple[str, ...]
    token_specs: tuple[BucketSpec, ...]
    token_keys: tuple[str, ...]


_HEADERS: tuple[tuple[Kind, str, str], ...] = (
    ("requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
    ("tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
)


class RateLimiter:
    """Which buckets each model draws from under one :class:`RateLimits`. The buckets
    live in the client's store and change only through its operations
    (:mod:`.operations`)."""

    PREFIX = "limit:"

    def __init__(self, policy: RateLimits) -> None:
        self.policy = policy
        self.tuning = LimiterTuning(policy.backoff, policy.min_rate_factor, policy.recovery)
        self._shared = tuple(_specs(policy.shared, self.PREFIX + "*"))
        self._models = {
            m: tuple(_specs(lim, f"{self.PREFIX}model:{m}"))
            for m, lim in policy.per_model  # type: ignore[misc]
        }
        # One entry per model name seen, like the store's own keys.
        self._buckets: dict[str, Buckets] = {}

    def buckets(self, model: str) -> Buckets:
        found = self._buckets.get(model)
        if found is None:
            specs = self._models.get(model, ()) + self._shared
            tokens = tuple(s for s in specs if s.kind == "tokens")
            found = Buckets(
                specs, tuple(s.key for s in specs), tokens, tuple(s.key for s in tokens)
            )
            self._buckets[model] = found
        return found

    def specs(self, model: str) -> tuple[BucketSpec, ...]:
        return self.buckets(model).specs

    def _target(self, model: str, kind: Kind) -> BucketSpec | None:
        # The server's counts describe the narrowest limit we keep for them.
        for spec in self.specs(model):
            if spec.kind == kind:
                return spec
        return None

    def server_counts(self, model: str, headers: Mapping[str, str]) -> tuple[ServerCount, ...]:
        """What ``x-ratelimit-remaining-*`` / ``x-ratelimit-reset-*`` of an answer tell the
        buckets of ``model`` (nothing when plenty is left)."""
        counts: list[ServerCount] = []
        for kind, remaining_header, reset_header in _HEADERS:
            raw = headers.get(remaining_header)
            if raw is None:
                continue
            spec = self._target(model, kind)
            if spec is None:
                continue
            try:
                remaining = float(raw)
            except ValueError:
                continue
            if remaining >= spec.capacity:
                continue  # plenty left: nothing to follow
            counts.append(ServerCount(spec, remaining, parse_duration(headers.get(reset_header))))
        return tuple(counts)
