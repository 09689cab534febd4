"""A circuit breaker per (base URL, model): closed, open, half-open with bounded probes.

The state machine is pure: :func:`admit` and :func:`record` take a :class:`Circuit` and
``now`` and return the next one, never reading a clock, sleeping or logging.
:mod:`.operations` applies them in a store, with the limiter's and the budgets' changes, so
every change is atomic across threads, tasks and (with a shared store) processes, and
returns the transitions for the client to announce.

* closed: every attempt goes; ``failure_threshold`` consecutive countable failures open it.
* open: attempts are refused with the time left until ``cool_down`` ends.
* half-open (after the cool-down): at most ``half_open_probes`` attempts in flight; the
  others are refused. A probe failure reopens it; ``success_threshold`` probe successes
  close it; a probe that ends without a verdict (a cancelled caller, a 429) frees its slot.

Countable failures are 5xx answers, timeouts and connection errors. A 4xx answer proves the
server is up (a success for the breaker), except 408 and 429, which say "later" and count
neither way, like a caller's cancellation. Every admission carries the circuit's epoch,
bumped at each transition, so an attempt that started before the circuit changed (a slow
failure arriving while it is already open) cannot move the new state.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from ..errors import APIConnectionError, HolySheepError, PoolTimeoutError
from ..transport.base import Reply

if TYPE_CHECKING:
    from .operations import StateStore

__all__ = [
    "Admission",
    "BreakerPolicy",
    "Circuit",
    "CircuitBreaker",
    "CircuitState",
    "Outcome",
    "Refusal",
    "Transition",
    "admit",
    "classify",
    "record",
    "transition",
]


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Outcome(StrEnum):
    """What one attempt tells the breaker about the server's health."""

    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"


@dataclass(frozen=True, kw_only=True, slots=True)
class BreakerPolicy:
    """When a circuit opens, how long it rests, and how it probes. Frozen, one per client.

    ``cool_down`` is in seconds. A probe that has not reported after ``probe_timeout``
    seconds is presumed lost (a crashed process sharing the store) and its slot is freed.
    """

    failure_threshold: int = 5
    cool_down: float = 30.0
    half_open_probes: int = 1
    success_threshold: int = 1
    probe_timeout: float = 300.0

    def __post_init__(self) -> None:
        for name in ("failure_threshold", "half_open_probes", "success_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.cool_down < 0:
            raise ValueError(f"cool_down must be >= 0 seconds, got {self.cool_down!r}")
        if self.probe_timeout <= 0:
            raise ValueError(f"probe_timeout must be > 0 seconds, got {self.probe_timeout!r}")

    @classmethod
    def no_wait(cls, failure_threshold: int = 5, **fields: object) -> BreakerPolicy:
        """Test mode: the same decisions, with no cool-down (open goes half-open at once)."""
        return cls(failure_threshold=failure_threshold, cool_down=0.0, **fields)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Circuit:
    """The state of one breaker key. Times are in the store's clock."""

    state: CircuitState = CircuitState.CLOSED
    epoch: int = 0
    failures: int = 0
    """Consecutive countable failures (the count that opened it, while open)."""
    opened_at: float = 0.0
    probes: int = 0
    """Probe attempts in flight (half-open)."""
    successes: int = 0
    """Probe successes so far (half-open)."""
    probe_at: float = 0.0
    """When the last probe was admitted."""


_NEW = Circuit()
"""A key's circuit before anything happened to it (frozen, so one serves all)."""


@dataclass(frozen=True, slots=True)
class Admission:
    """A pass for one attempt, to hand back with its outcome."""

    epoch: int
    probe: bool


@dataclass(frozen=True, slots=True)
class Refusal:
    state: CircuitState
    retry_after: float
    """Seconds until the circuit may admit again (a guess while probes are in flight)."""
    failures: int
    probes: int


@dataclass(frozen=True, slots=True)
class Transition:
    key: str
    old: CircuitState
    new: CircuitState
    failures: int
    """Consecutive failures behind an opening; 0 otherwise."""
    retry_after: float | None
    """Seconds until probing starts, when the circuit just opened."""


def classify(outcome: Reply | BaseException) -> Outcome:
    """Success, failure or neither, for the answer or error of one attempt."""
    if isinstance(outcome, Reply):
        status = outcome.status
        if status >= 500:
            return Outcome.FAILURE
        if status in (408, 429):
            return Outcome.NEUTRAL
        return Outcome.SUCCESS
    if isinstance(outcome, PoolTimeoutError):
        return Outcome.NEUTRAL  # our own pool was full: says nothing about the server
    if isinstance(outcome, APIConnectionError):
        return Outcome.FAILURE
    if isinstance(outcome, HolySheepError) and outcome.status_code is not None:
        return classify(Reply(outcome.status_code, {}))
    return Outcome.NEUTRAL


def _settle(policy: BreakerPolicy, c: Circuit, now: float) -> Circuit:
    """The circuit as time has moved it: a rested open circuit is half-open; lost probes
    are forgotten (a new epoch, so their late reports are ignored)."""
    if c.state is CircuitState.OPEN and now >= c.opened_at + policy.cool_down:
        return Circuit(CircuitState.HALF_OPEN, c.epoch + 1, c.failures, c.opened_at)
    if c.state is CircuitState.HALF_OPEN and c.probes and now >= c.probe_at + policy.probe_timeout:
        return Circuit(c.state, c.epoch + 1, c.failures, c.opened_at, 0, c.successes, c.probe_at)
    return c


def _refusal(policy: BreakerPolicy, c: Circuit, now: float) -> Refusal | None:
    if c.state is CircuitState.OPEN:
        left = max(c.opened_at + policy.cool_down - now, 0.0)
        return Refusal(c.state, left, c.failures, c.probes)
    if c.state is CircuitState.HALF_OPEN and c.probes >= policy.half_open_probes:
        return Refusal(c.state, policy.cool_down, c.failures, c.probes)
    return None


_PASSES: dict[int, Admission] = {}


def _closed_pass(epoch: int) -> Admission:
    """A closed circuit's pass: values, so the calls of one epoch share one."""
    passed = _PASSES.get(epoch)
    if passed is None:
        if len(_PASSES) > 1024:
            _PASSES.clear()
        passed = _PASSES[epoch] = Admission(epoch, False)
    return passed


def admit(policy: BreakerPolicy, c: Circuit, now: float) -> tuple[Circuit, Admission | Refusal]:
    """Let one attempt through (taking a probe slot when half-open) or refuse it."""
    if c.state is CircuitState.CLOSED:  # the usual case: nothing to settle or refuse
        return c, _closed_pass(c.epoch)
    c = _settle(policy, c, now)
    refusal = _refusal(policy, c, now)
    if refusal is not None:
        return c, refusal
    if c.state is CircuitState.HALF_OPEN:
        probing = Circuit(c.state, c.epoch, c.failures, c.opened_at, c.probes + 1, c.successes, now)
        return probing, Admission(c.epoch, True)
    return c, Admission(c.epoch, False)


def record(
    policy: BreakerPolicy, c: Circuit, admission: Admission, outcome: Outcome, now: float
) -> Circuit:
    """The circuit after an admitted attempt ended with ``outcome``."""
    if c.state is CircuitState.CLOSED and outcome is Outcome.SUCCESS and not c.failures:
        return c  # the usual case: nothing to count (a probe's pass is of an older epoch)
    c = _settle(policy, c, now)
    if admission.epoch != c.epoch:
        return c  # the circuit changed since this attempt started: its news is stale
    # Circuits are built directly, not with dataclasses.replace: this runs on every call.
    if admission.probe:
        if outcome is Outcome.FAILURE:
            return Circuit(CircuitState.OPEN, c.epoch + 1, c.failures, now)
        successes = c.successes
        if outcome is Outcome.SUCCESS:
            successes += 1
            if successes >= policy.success_threshold:
                return Circuit(CircuitState.CLOSED, c.epoch + 1)
        probes = max(c.probes - 1, 0)
        return Circuit(c.state, c.epoch, c.failures, c.opened_at, probes, successes, c.probe_at)
    if outcome is Outcome.SUCCESS:
        if not c.failures:
            return c
        return Circuit(c.state, c.epoch, 0, c.opened_at, c.probes, c.successes, c.probe_at)
    if outcome is Outcome.FAILURE:
        failures = c.failures + 1
        if failures >= policy.failure_threshold:
            return Circuit(CircuitState.OPEN, c.epoch + 1, failures, now)
        return Circuit(c.state, c.epoch, failures, c.opened_at, c.probes, c.successes, c.probe_at)
    return c


def transition(
    policy: BreakerPolicy, key: str, old: Circuit | None, new: Circuit
) -> Transition | None:
    before = old.state if old is not None else CircuitState.CLOSED
    if before is new.state:
        return None
    opened = new.state is CircuitState.OPEN
    return Transition(
        key,
        before,
        new.state,
        new.failures if opened else 0,
        policy.cool_down if opened else None,
    )


class CircuitBreaker:
    """The policy and store keys of a client's circuits. The circuits live in the client's
    store and change only through its operations (:mod:`.operations`)."""

    PREFIX = "breaker:"

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy

    def store_key(self, key: str) -> str:
        return self.PREFIX + key

    def states(self, store: StateStore, now: float) -> dict[str, CircuitState]:
        """Each known key's state as of ``now`` (an open circuit past its cool-down shows
        as half-open)."""
        n = len(self.PREFIX)
        return {
            key[n:]: _settle(self.policy, c, now).state
            for key, c in store.items(self.PREFIX).items()
        }
