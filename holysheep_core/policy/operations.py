"""Policy decisions as data: the two operations a call asks its store to apply.

A call consults its store twice per attempt at most, each time with one frozen,
picklable operation that the store applies atomically, all or nothing:

* :class:`BeforeAttempt`: hold the call's estimated cost in its budgets, take the
  breaker's pass and the rate limiter's turn. Refused as a whole (a budget would pass its
  cap, the circuit is open, the turn is past ``max_wait``) it changes nothing.
* :class:`AfterAttempt`: the breaker's verdict, the limiter's corrections (the estimate
  less the reported usage, an unsent turn given back, the server's ``x-ratelimit-*``
  counts, a 429's back-off) and the budgets settled to the call's real cost.

Operations carry only plain fields (keys, numbers, strings, and frozen records of them);
money is in integer nano-USD (:data:`NANO_USD`) so that a store written in another
language (a Lua script on Redis) computes exactly what :func:`apply` does. The store
supplies ``now`` (its own clock, shared by every process that uses it), never the caller.

:func:`apply` is the reference implementation: pure, ``(op, state, now) -> (changes,
result)``, where ``state`` maps each of ``op.store_keys()`` to its value (absent keys read
as None; it may hold other keys, which are ignored) and
``changes`` maps the keys written to their new values (None: delete). The in-memory store
runs it inline under a lock; any other store must agree with it.

Stored values: :class:`~.breaker.Circuit` under ``breaker:<model>@<base_url>``,
:class:`~.ratelimit.Bucket` under ``limit:...`` (``at`` may lie in the future: the turn
of the last caller, GCRA-style), :class:`Spending` under ``budget:<name>``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any, Protocol, TypeVar, runtime_checkable

from .breaker import (
    Admission,
    BreakerPolicy,
    Circuit,
    Outcome,
    Refusal,
    Transition,
    admit,
    record,
    transition,
)
from .ratelimit import (
    Bucket,
    BucketSpec,
    LimiterTuning,
    ServerCount,
    clamp,
    give_back,
    penalise,
    rate_factor,
    refill,
)

__all__ = [
    "NANO_USD",
    "AfterAttempt",
    "BeforeAttempt",
    "BucketBack",
    "BucketSpec",
    "BudgetHold",
    "BudgetRefusal",
    "BudgetSettle",
    "Entered",
    "InMemoryStore",
    "LedgerEntry",
    "Left",
    "LimiterTuning",
    "ServerCount",
    "Spending",
    "StateStore",
    "apply",
    "nano_usd",
    "usd",
]

T = TypeVar("T")

NANO_USD = 10**9
"""Nano-USD per USD: budgets count in integers of these."""


def nano_usd(amount: Decimal, *, up: bool = True) -> int:
    """USD as integer nano-USD, rounded up by default (a hold or a cost must not shrink)."""
    scaled = amount * NANO_USD
    return int(scaled.to_integral_value(rounding=ROUND_CEILING) if up else scaled)


def usd(nano: int) -> Decimal:
    """Integer nano-USD as USD."""
    return Decimal(nano) / NANO_USD


def _quick_init(cls: type[T]) -> type[T]:
    """Give a frozen dataclass an ``__init__`` that sets its fields through one local
    ``object.__setattr__``: the generated one looks it up for every field, which costs
    more than the rest of an operation's trip through the in-memory store (operations are
    built on every call). Fields, defaults, immutability and the dataclass API stay."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    params, body, env = [], [], {"_set": object.__setattr__}
    for f in fields:
        if f.default is not dataclasses.MISSING:
            env[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
        else:
            params.append(f.name)
        body.append(f"    _set(self, {f.name!r}, {f.name})")
    code = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body or ["    pass"])
    exec(code, env)  # the same technique dataclasses itself uses
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[misc]
    return cls


# --- stored values --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spending:
    """A budget's state, in nano-USD."""

    spent: int = 0
    """Calls that finished (or whose cost stays unknown: their hold counts)."""
    held: int = 0
    """Estimates held by calls in flight."""


# --- parts of operations ----------------------------------------------------------------


@_quick_init
@dataclass(frozen=True, slots=True)
class BudgetHold:
    """Hold ``amount`` nano-USD in the budget at ``key`` unless spent + held + amount would
    pass ``cap``."""

    key: str
    cap: int
    amount: int


@_quick_init
@dataclass(frozen=True, slots=True)
class BudgetSettle:
    """Replace a hold of ``hold`` nano-USD by ``spent`` (0: the call spent nothing)."""

    key: str
    hold: int
    spent: int


@_quick_init
@dataclass(frozen=True, slots=True)
class BucketBack:
    """Give ``amount`` units back to a bucket (negative: take more)."""

    spec: BucketSpec
    amount: float


# --- the operations -----------------------------------------------------------------------


@_quick_init
@dataclass(frozen=True, slots=True)
class BeforeAttempt:
    """Budget holds, breaker pass and limiter turn for one attempt, all or nothing.

    The limiter's turn is the earliest time every bucket can pay for the attempt (one unit
    from request buckets, ``tokens`` from token buckets), and every bucket is charged *at
    that turn*, so no bucket believes it paid a debt while another bucket spaced the sends.
    A turn ``max_wait`` seconds away or more is refused (it would start as the call's
    deadline ends). The breaker's pass is taken only when the turn is now; after waiting
    for a later turn the caller sends a ``BeforeAttempt`` with no buckets and no holds to
    take it.
    """

    call_id: str
    """Unique per call (a networked store may make holds idempotent per call)."""
    holds: tuple[BudgetHold, ...] = ()
    breaker_key: str = ""
    breaker: BreakerPolicy | None = None
    buckets: tuple[BucketSpec, ...] = ()
    tokens: float = 0.0
    tuning: LimiterTuning | None = None
    max_wait: float | None = None

    def store_keys(self) -> list[str]:
        keys = [h.key for h in self.holds] if self.holds else []
        if self.breaker is not None:
            keys.append(self.breaker_key)
        for spec in self.buckets:
            keys.append(spec.key)
        return keys


@dataclass(frozen=True, slots=True)
class BudgetRefusal:
    key: str
    spent: int
    held: int


@_quick_init
@dataclass(frozen=True, slots=True)
class Entered:
    """What :class:`BeforeAttempt` decided. Anything refused means nothing was taken."""

    wait: float = 0.0
    """Seconds until the turn; the breaker's pass is taken only at 0."""
    granted: bool = True
    """False: the turn was past ``max_wait``."""
    admission: Admission | None = None
    refusal: Refusal | None = None
    budget_refusal: BudgetRefusal | None = None
    transition: Transition | None = None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """A finished call's counts for a ledger kept in the store, shared by every process
    that uses it (``store.shares_ledger``); stores without one ignore it (each client
    keeps its own ledger). Cost in nano-USD; an unpriced call counts in
    ``unpriced_requests`` instead."""

    model: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nano: int = 0
    unpriced_requests: int = 0


@_quick_init
@dataclass(frozen=True, slots=True)
class AfterAttempt:
    """What one attempt (or the call's end) tells the policies; every part is optional.

    Applied in this order: the breaker's verdict on ``admission`` (``outcome``), units
    given back to buckets (``give_back``: an over-estimate, an unsent turn; negative for
    an under-estimate), the server's counts, a 429's back-off of ``backoff`` buckets for
    ``retry_after`` seconds, and budget settlements.
    """

    call_id: str
    breaker_key: str = ""
    breaker: BreakerPolicy | None = None
    admission: Admission | None = None
    outcome: Outcome = Outcome.NEUTRAL
    give_back: tuple[BucketBack, ...] = ()
    server_counts: tuple[ServerCount, ...] = ()
    backoff: tuple[BucketSpec, ...] = ()
    retry_after: float | None = None
    tuning: LimiterTuning | None = None
    settles: tuple[BudgetSettle, ...] = ()
    ledger: LedgerEntry | None = None
    """The call's counts for a shared ledger (see :class:`LedgerEntry`)."""

    def store_keys(self) -> list[str]:
        keys = [self.breaker_key] if self.breaker is not None and self.admission else []
        for back in self.give_back:
            keys.append(back.spec.key)
        for count in self.server_counts:
            keys.append(count.spec.key)
        for spec in self.backoff:
            keys.append(spec.key)
        for settle in self.settles:
            keys.append(settle.key)
        return keys


@dataclass(frozen=True, slots=True)
class Left:
    transition: Transition | None = None


Operation = BeforeAttempt | AfterAttempt

_NEW_CIRCUIT = Circuit()
_DEFAULT_TUNING = LimiterTuning()


# --- the reference implementation ---------------------------------------------------------


def _earliest(
    tuning: LimiterTuning, spec: BucketSpec, b: Bucket | None, amount: float, now: float
) -> float:
    """When ``b`` can pay ``amount``.

    ``b`` holds the level at ``b.at``, after every charge so far, including charges at
    turns still to come. Between now and ``b.at`` the level is at least ``level - (at -
    t) * rate``, so a caller may go before ``b.at`` only when that bound already pays for
    it: safe, and first come, first served behind a queue. An amount above the capacity
    waits until the refill since the last turn covers it (nobody goes in between)."""
    b = refill(tuning, spec, b, now)  # at max(now, b.at)
    if b.level >= amount and b.at <= now:
        return now
    return max(now, b.at + (amount - b.level) / (spec.rate * rate_factor(tuning, b, b.at)))


def _charge(
    tuning: LimiterTuning, spec: BucketSpec, b: Bucket, amount: float, turn: float
) -> Bucket:
    """``b`` after paying ``amount`` at ``turn`` (kept at the latest turn charged). While
    a call larger than the capacity waits, the refill it waits for is its own."""
    if amount > spec.capacity and turn > b.at:
        rate = spec.rate * rate_factor(tuning, b, b.at)
        level = min(amount, b.level + (turn - b.at) * rate)
        return Bucket(level - amount, turn, b.factor, b.factor_at)
    b = refill(tuning, spec, b, turn)  # at max(turn, b.at)
    return Bucket(b.level - amount, b.at, b.factor, b.factor_at)


def before_attempt(
    op: BeforeAttempt, state: Mapping[str, Any], now: float
) -> tuple[dict[str, Any], Entered]:
    """The reference :class:`BeforeAttempt`."""
    changes: dict[str, Any] = {}
    for h in op.holds:
        s = state.get(h.key) or Spending()
        if s.spent + s.held + h.amount > h.cap:
            return {}, Entered(budget_refusal=BudgetRefusal(h.key, s.spent, s.held))
        changes[h.key] = Spending(s.spent, s.held + h.amount)
    admission = new_circuit = old_circuit = None
    if op.breaker is not None:
        old_circuit = state.get(op.breaker_key)
        new_circuit, verdict = admit(op.breaker, old_circuit or _NEW_CIRCUIT, now)
        if isinstance(verdict, Refusal):
            return {}, Entered(refusal=verdict)
        admission = verdict
    wait = 0.0
    if op.buckets:
        tuning = op.tuning or _DEFAULT_TUNING
        tokens = op.tokens
        turn = now
        # The usual case, spelt out (it runs on every call): a bucket with no 429 to
        # recover from, last charged before now, that can pay at once; ``levels`` keeps
        # its level now, or None where the general path decides.
        levels: list[float | None] = []
        buckets = []
        for spec in op.buckets:
            b = state.get(spec.key) or Bucket(spec.capacity, now)  # never seen: full
            buckets.append(b)
            amount = 1.0 if spec.kind == "requests" else tokens
            if b.factor >= 1.0 and b.at <= now:
                level = b.level + (now - b.at) * spec.rate
                if level > spec.capacity:
                    level = spec.capacity
                if level >= amount:
                    levels.append(level)
                    continue
            levels.append(None)
            t = _earliest(tuning, spec, b, amount, now)
            if t > turn:
                turn = t
        wait = turn - now
        if wait > 0 and op.max_wait is not None and wait >= op.max_wait:
            return {}, Entered(wait=wait, granted=False)
        for spec, b, level in zip(op.buckets, buckets, levels, strict=True):
            amount = 1.0 if spec.kind == "requests" else tokens
            if level is not None and not wait:
                changes[spec.key] = Bucket(level - amount, now, b.factor, b.factor_at)
            else:
                changes[spec.key] = _charge(tuning, spec, b, amount, turn)
    change = None
    if wait > 0:
        admission = None  # no pass (it may be a probe's) is held while waiting
    elif op.breaker is not None and new_circuit is not old_circuit:
        changes[op.breaker_key] = new_circuit
        change = transition(op.breaker, op.breaker_key, old_circuit, new_circuit)
    if not wait and change is None:
        return changes, _entered_now(admission)
    return changes, Entered(wait, True, admission, None, None, change)


_GO = Entered()
_ENTERED: dict[int, Entered] = {}


def _entered_now(admission: Admission | None) -> Entered:
    """The usual result: go now. Passes are values, so the calls of one epoch share one."""
    if admission is None:
        return _GO
    if admission.probe:
        return Entered(0.0, True, admission)
    entered = _ENTERED.get(admission.epoch)
    if entered is None or entered.admission is not admission:
        if len(_ENTERED) > 1024:
            _ENTERED.clear()
        entered = _ENTERED[admission.epoch] = Entered(0.0, True, admission)
    return entered


def after_attempt(
    op: AfterAttempt, state: Mapping[str, Any], now: float
) -> tuple[dict[str, Any], Left]:
    """The reference :class:`AfterAttempt`."""
    changes: dict[str, Any] = {}
    change = None
    if op.breaker is not None and op.admission is not None:
        old = state.get(op.breaker_key)
        new = record(op.breaker, old or _NEW_CIRCUIT, op.admission, op.outcome, now)
        if new is not old:
            changes[op.breaker_key] = new
            change = transition(op.breaker, op.breaker_key, old, new)
    tuning = op.tuning or _DEFAULT_TUNING
    # Several parts may change one key: each reads what the one before wrote.
    for back in op.give_back:
        key = back.spec.key
        b = changes[key] if key in changes else state.get(key)
        changes[key] = give_back(tuning, back.spec, b, back.amount, now)
    for count in op.server_counts:
        key = count.spec.key
        b = changes[key] if key in changes else state.get(key)
        changes[key] = clamp(tuning, count.spec, b, count.remaining, count.reset, now)
    for spec in op.backoff:
        key = spec.key
        b = changes[key] if key in changes else state.get(key)
        changes[key] = penalise(tuning, spec, b, op.retry_after, now)
    for s in op.settles:
        key = s.key
        old_spending = (changes[key] if key in changes else state.get(key)) or _NO_SPENDING
        changes[key] = Spending(old_spending.spent + s.spent, max(old_spending.held - s.hold, 0))
    return changes, (_LEFT if change is None else Left(change))


_LEFT = Left()
_NO_SPENDING = Spending()


def apply(op: Operation, state: Mapping[str, Any], now: float) -> tuple[dict[str, Any], Any]:
    """Apply ``op`` to ``state`` (the values of ``op.store_keys()``) at ``now``: the changed
    values (None: delete the key) and the operation's result."""
    kind = type(op)
    if kind is BeforeAttempt:
        return before_attempt(op, state, now)  # type: ignore[arg-type]
    if kind is AfterAttempt:
        return after_attempt(op, state, now)  # type: ignore[arg-type]
    raise TypeError(f"not a policy operation: {op!r}")


# --- stores ---------------------------------------------------------------------------------


@runtime_checkable
class StateStore(Protocol):
    """Keyed policy state, changed only by operations, each applied atomically.

    ``clock`` is the time base of the timestamps kept in the store (seconds); the store
    reads it itself when it applies an operation. ``inline`` says :meth:`apply` answers
    without I/O: the request flow then calls it directly, and otherwise yields it to the
    driver, which awaits :meth:`apply_async` in async code. :meth:`defer` queues an
    operation whose result nobody waits for (a stream settled from a finaliser, where no
    I/O may happen).
    """

    clock: Callable[[], float]
    inline: bool

    def apply(self, op: Operation) -> Any:
        """Apply ``op`` atomically and return its result (see :func:`apply`)."""
        ...

    async def apply_async(self, op: Operation) -> Any:
        """:meth:`apply`, for an event loop."""
        ...

    def defer(self, op: Operation) -> None:
        """Apply ``op`` soon, without blocking on I/O now; its result is dropped."""
        ...

    def items(self, prefix: str) -> dict[str, Any]:
        """A snapshot of the values whose keys start with ``prefix``."""
        ...


class InMemoryStore:
    """The default store: one process, any number of threads and event loops. Applies
    each operation inline under one lock held for microseconds (never across a request
    or an ``await``)."""

    inline = True

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        """``values``: the stored values to start from (by key, as :meth:`items` gives them)."""
        self.clock = clock
        # Re-entrant: a stream's finaliser may settle its call while this thread is inside
        # an operation (the garbage collector runs at any allocation).
        self._lock = threading.RLock()
        self._values: dict[str, Any] = dict(values or {})

    def apply(self, op: Operation) -> Any:
        with self._lock:
            values = self._values
            # The reference functions only read the keys they name (``.get``), so the
            # whole table serves as their state, without copying those keys out.
            changes, result = apply(op, values, self.clock())
            for key, value in changes.items():
                if value is None:
                    values.pop(key, None)
                else:
                    values[key] = value
            return result

    async def apply_async(self, op: Operation) -> Any:
        return self.apply(op)

    def defer(self, op: Operation) -> None:
        self.apply(op)

    def items(self, prefix: str) -> dict[str, Any]:
        with self._lock:
            return {k: v for k, v in self._values.items() if k.startswith(prefix)}

    def __repr__(self) -> str:
        return f"InMemoryStore(keys={len(self._values)})"
