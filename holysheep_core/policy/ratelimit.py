"""Client-side rate limits: requests per second and tokens per minute, global and per model.

Each limit is a token bucket that may go into debt. A caller *reserves* its request and its
estimated tokens from every bucket that applies, all at once, and is told how long to wait
until the debt ahead of it is paid. Reservations are made in arrival order under the
store's lock, so waiting is first come, first served: a large request queues like any
other and is never overtaken by a stream of small ones. A reservation whose wait would
pass the call's deadline is not made at all.

Estimates are corrected once the server reports usage, and the buckets follow the server:
``x-ratelimit-remaining-*`` caps what is left (at zero, nobody goes until
``x-ratelimit-reset-*``), and a 429 blocks the bucket for its ``Retry-After`` and cuts its
rate (``backoff``), which then climbs back linearly over ``recovery`` seconds. Every
client sharing the store backs off together.

Everything here but :class:`RateLimiter` is pure and takes ``now`` (seconds).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from .store import StateStore

__all__ = [
    "Bucket",
    "Buckets",
    "Limit",
    "RateLimiter",
    "RateLimits",
    "Reservation",
    "estimate_tokens",
    "parse_duration",
]

Kind = Literal["requests", "tokens"]


def estimate_tokens(body: bytes | None) -> int:
    """Prompt tokens guessed from a request body before sending it: one per four bytes of
    its JSON, rounded up. Cheap and a little high for English (JSON keys count too), low for
    dense scripts; the server's reported usage corrects it after each call."""
    return (len(body) + 3) // 4 if body else 0


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
class _Spec:
    key: str
    kind: Kind
    rate: float
    """Units per second at the full rate."""
    capacity: float


def _specs(limit: Limit, scope: str) -> list[_Spec]:
    out = []
    if limit.requests_per_second is not None:
        rps = limit.requests_per_second
        cap = limit.request_burst or max(1.0, rps)
        out.append(_Spec(f"{scope}:requests", "requests", rps, cap))
    if limit.tokens_per_minute is not None:
        tpm = limit.tokens_per_minute
        cap = limit.token_burst or tpm
        out.append(_Spec(f"{scope}:tokens", "tokens", tpm / 60.0, cap))
    return out


def _amount(spec: _Spec, tokens: float) -> float:
    """What one call of ``tokens`` estimated tokens takes from ``spec``'s bucket."""
    return 1.0 if spec.kind == "requests" else tokens


class Bucket(NamedTuple):
    """One bucket's state: ``level`` units free at time ``at`` (below zero: owed by
    callers already scheduled); ``factor`` of the full rate since ``factor_at``.

    A named tuple, not a frozen dataclass like the other stored values: every call builds
    a few, and a tuple takes half the time to build."""

    level: float
    at: float
    factor: float = 1.0
    factor_at: float = 0.0


def rate_factor(policy: RateLimits, b: Bucket, now: float) -> float:
    """Share of the full rate at ``now``: cut by 429s, recovering linearly."""
    if b.factor >= 1.0:
        return 1.0
    if policy.recovery <= 0:
        return 1.0
    return min(1.0, b.factor + (1.0 - b.factor) * max(now - b.factor_at, 0.0) / policy.recovery)


def refill(policy: RateLimits, spec: _Spec, b: Bucket | None, now: float) -> Bucket:
    """The bucket at ``now``; a bucket never seen starts full."""
    if b is None:
        return Bucket(spec.capacity, now)
    factor = rate_factor(policy, b, now)
    level = min(spec.capacity, b.level + max(now - b.at, 0.0) * spec.rate * factor)
    if factor >= 1.0 and b.factor < 1.0:  # recovered: forget the 429
        return Bucket(level, max(now, b.at))
    return Bucket(level, max(now, b.at), b.factor, b.factor_at)


# reserve() and give_back() run on every call, so they spell out the usual case (a bucket
# with no 429 to recover from, last changed before ``now``) rather than building the
# refilled bucket first: one Bucket built per bucket changed.


def reserve(
    policy: RateLimits,
    specs: Sequence[_Spec],
    tokens: float,
    buckets: Sequence[Bucket | None],
    now: float,
    max_wait: float | None,
) -> tuple[list[Bucket], float, bool]:
    """Take one request and ``tokens`` tokens from each bucket (as its kind says): the new
    buckets, the wait, and whether it was granted (a wait above ``max_wait`` takes nothing)."""
    taken = []
    wait = 0.0
    for spec, b in zip(specs, buckets, strict=True):
        amount = 1.0 if spec.kind == "requests" else tokens  # _amount(), spelt out too
        if b is not None and b.factor >= 1.0 and now > b.at:
            level = min(spec.capacity, b.level + (now - b.at) * spec.rate) - amount
            if level < 0:
                wait = max(wait, -level / spec.rate)
            taken.append(Bucket(level, now, b.factor, b.factor_at))
            continue
        b = refill(policy, spec, b, now)
        level = b.level - amount
        if level < 0:
            wait = max(wait, -level / (spec.rate * rate_factor(policy, b, now)))
        taken.append(Bucket(level, b.at, b.factor, b.factor_at))
    if max_wait is not None and wait > max_wait:
        refilled = [refill(policy, spec, b, now) for spec, b in zip(specs, buckets, strict=True)]
        return refilled, wait, False
    return taken, wait, True


def give_back(
    policy: RateLimits, spec: _Spec, b: Bucket | None, amount: float, now: float
) -> Bucket:
    """Return ``amount`` (a cancelled reservation, an over-estimate); negative takes more."""
    if b is not None and b.factor >= 1.0 and now > b.at:
        level = min(spec.capacity, b.level + (now - b.at) * spec.rate)
        return Bucket(min(spec.capacity, level + amount), now, b.factor, b.factor_at)
    b = refill(policy, spec, b, now)
    return Bucket(min(spec.capacity, b.level + amount), b.at, b.factor, b.factor_at)


def clamp(
    policy: RateLimits,
    spec: _Spec,
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
    policy: RateLimits, spec: _Spec, b: Bucket | None, retry_after: float | None, now: float
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
class Reservation:
    specs: tuple[_Spec, ...]
    """The buckets it took from (none when it was not granted)."""
    tokens: float
    wait: float
    """Seconds the caller must wait before sending."""
    granted: bool


@dataclass(frozen=True, slots=True)
class Buckets:
    """The buckets one model draws from (its own, then the shared ones) and their store
    keys, in the same order; the token buckets apart, for usage corrections."""

    specs: tuple[_Spec, ...]
    keys: tuple[str, ...]
    token_specs: tuple[_Spec, ...]
    token_keys: tuple[str, ...]


_HEADERS: tuple[tuple[Kind, str, str], ...] = (
    ("requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
    ("tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
)


class RateLimiter:
    """The buckets of one :class:`RateLimits` in a store. Each method is one atomic update;
    none waits: :meth:`reserve` says how long to."""

    PREFIX = "limit:"

    def __init__(self, policy: RateLimits, store: StateStore) -> None:
        self.policy = policy
        self.store = store
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

    def specs(self, model: str) -> tuple[_Spec, ...]:
        return self.buckets(model).specs

    def _target(self, model: str, kind: Kind) -> _Spec | None:
        # The server's counts describe the narrowest limit we keep for them.
        for spec in self.specs(model):
            if spec.kind == kind:
                return spec
        return None

    def reserve(self, model: str, tokens: int, now: float, max_wait: float | None) -> Reservation:
        """Reserve one request and ``tokens`` tokens; ``granted`` False means the wait
        would exceed ``max_wait`` (the tighter of it and the policy's) and nothing was taken."""
        max_wait = self.policy.wait_cap(max_wait)
        b = self.buckets(model)
        if not b.specs:
            return Reservation((), 0.0, 0.0, True)
        policy, specs, amount = self.policy, b.specs, float(tokens)

        def change(values: list[Bucket | None]) -> tuple[list[Bucket], tuple[float, bool]]:
            new, wait, granted = reserve(policy, specs, amount, values, now, max_wait)
            return new, (wait, granted)

        wait, granted = self.store.update(b.keys, change)
        return Reservation(specs if granted else (), amount, wait, granted)

    def _adjust(
        self, specs: tuple[_Spec, ...], keys: Sequence[str], amount: float, now: float
    ) -> None:
        policy = self.policy

        def change(values: list[Bucket | None]) -> tuple[list[Bucket], None]:
            return [
                give_back(policy, s, b, _amount(s, amount), now)
                for s, b in zip(specs, values, strict=True)
            ], None

        self.store.update(keys, change)

    def refund(self, reservation: Reservation, now: float) -> None:
        """Give back a reservation whose request was never sent."""
        if reservation.specs:
            keys = [s.key for s in reservation.specs]
            self._adjust(reservation.specs, keys, reservation.tokens, now)

    def return_turn(self, model: str, tokens: int, now: float) -> None:
        """Give back the turn of a call on ``model`` (one request, ``tokens`` tokens) that
        was reserved and never sent."""
        b = self.buckets(model)
        if b.specs:
            self._adjust(b.specs, b.keys, float(tokens), now)

    def correct(self, model: str, estimated: int, actual: int, now: float) -> None:
        """Replace a call's token estimate by the usage the server reported."""
        if estimated != actual:
            b = self.buckets(model)
            if b.token_specs:
                self._adjust(b.token_specs, b.token_keys, float(estimated - actual), now)

    def observe(self, model: str, headers: Mapping[str, str], now: float) -> None:
        """Follow ``x-ratelimit-remaining-*`` / ``x-ratelimit-reset-*`` of an answer."""
        updates: list[tuple[_Spec, float, float | None]] = []
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
                continue  # plenty left: nothing to follow, and no lock to take
            reset = parse_duration(headers.get(reset_header))
            updates.append((spec, remaining, reset))
        if not updates:
            return
        policy = self.policy

        def change(values: list[Bucket | None]) -> tuple[list[Bucket], None]:
            return [
                clamp(policy, s, b, remaining, reset, now)
                for (s, remaining, reset), b in zip(updates, values, strict=True)
            ], None

        self.store.update([s.key for s, _, _ in updates], change)

    def back_off(self, model: str, retry_after: float | None, now: float) -> None:
        """A 429 answered this model: slow every bucket it draws from."""
        b = self.buckets(model)
        if not b.specs:
            return
        policy = self.policy

        def change(values: list[Bucket | None]) -> tuple[list[Bucket], None]:
            return [
                penalise(policy, s, v, retry_after, now)
                for s, v in zip(b.specs, values, strict=True)
            ], None

        self.store.update(b.keys, change)
