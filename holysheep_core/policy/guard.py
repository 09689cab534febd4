"""The breaker, the rate limiter and the budgets of one client, applied around a call.

:class:`~holysheep_core.pipeline.Pipeline` asks a :class:`Guard` before and after each
attempt and the guard answers with data: how long to wait, or an error to raise. It reads
the store's clock and announces breaker changes to the client's hooks, but never sleeps:
both drivers wait the same way for every other reason. With no policy configured a call
gets no :class:`CallGuard` at all, so the request path does no extra work.

With policies, a call answered at once costs two store updates, each changing the
breaker's circuit and the limiter's buckets together: one before the attempt (the
breaker's pass and the limiter's turn) and one when the usage is known (the breaker's
verdict and the limiter's correction). Only a 2xx on a closed circuit waits for that
second update; any other verdict (a failure, a 4xx, a probe's answer) is recorded at
once, in an update of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

from ..errors import (
    APIConnectionError,
    APITimeoutError,
    CircuitOpenError,
    HolySheepError,
    InvalidRequestError,
)
from ..errors import parse_retry_after as _retry_after
from ..hooks import BreakerChanged, log_breaker_change, run_hooks
from ..transport.base import Reply
from ..types import Usage
from .breaker import Admission, CircuitBreaker, Outcome, Refusal, Transition, classify
from .budget import Budget, active_budgets
from .ratelimit import Buckets, RateLimiter, RateLimits, give_back, reserve
from .store import InMemoryStore

if TYPE_CHECKING:
    from ..config import ClientConfig
    from .ratelimit import _Spec

__all__ = ["CallGuard", "Gate", "Guard", "breaker_key"]

# What the update before an attempt decides: the breaker's verdict (None: no pass taken
# yet), the wait, whether the limiter granted the turn, and the breaker's transition.
_Entry = tuple["Admission | Refusal | None", float, bool, "Transition | None"]

# An upper bound on a call's output when neither max_tokens nor the model's profile gives
# one, for budget estimates only.
UNKNOWN_OUTPUT_TOKENS = 4096

_NO_BUCKETS = Buckets((), (), (), ())
_NO_LIMITS = RateLimits()


def breaker_key(model: str, base_url: str) -> str:
    return f"{model}@{base_url}"


@dataclass(frozen=True, slots=True)
class Gate:
    """What the calls on one model check, worked out on the first: the breaker's key, and
    the store keys of its circuit and buckets (each tuple lists the circuit first, with a
    breaker), with the limits of those buckets in the same order."""

    key: str
    keys: tuple[str, ...]
    """Changed before an attempt: the circuit and every bucket."""
    specs: tuple[_Spec, ...]
    usage_keys: tuple[str, ...]
    """Changed when the usage is known: the circuit and the token buckets."""
    token_specs: tuple[_Spec, ...]
    token_keys: tuple[str, ...]
    circuit_keys: tuple[str, ...]


@dataclass(slots=True)
class CallGuard:
    """What the policies hold for one call on one model: owned by that call alone."""

    model: str
    gate: Gate
    tokens: int
    """Estimated tokens (prompt and output) reserved from the limiter per attempt."""
    holds: tuple[tuple[Budget, Decimal], ...] = ()
    reserved: bool = False
    """The attempt about to be sent holds its turn in the limiter, until it is sent."""
    admission: Admission | None = None
    """The breaker's pass of the attempt in flight."""
    succeeded: Admission | None = None
    """The pass of an attempt answered 2xx on a closed circuit: its success changes
    nothing but a failure count, so it waits for the usage, to share its update."""
    settled: bool = False
    unanswered: bool = False
    """An attempt went out and no answer came back (timeout, dropped, cancelled): the
    server may have done the work and billed it."""
    watch: Any = None
    """The call's telemetry (:mod:`holysheep_core.observer`), told of breaker changes."""

    @property
    def key(self) -> str:
        """The breaker's key: model and base URL."""
        return self.gate.key


# The two changes a call makes in the store, as functions of the values read (the last
# argument; the others are bound with functools.partial, which builds less per call than a
# closure does).


def _enter(
    breaker: CircuitBreaker | None,
    limits: RateLimits,
    gate: Gate,
    tokens: float,
    now: float,
    max_wait: float | None,
    values: list[Any],
) -> tuple[list[Any], _Entry]:
    """Before an attempt, on the values of ``gate.keys``: the breaker's pass, then the
    limiter's turn. The pass is kept only when the turn is now: no pass (it may be a
    probe's) is held while waiting; the breaker is asked again when the turn comes."""
    if breaker is None:
        taken, wait, granted = reserve(limits, gate.specs, tokens, values, now, max_wait)
        return taken, (None, wait, granted, None)
    old = values[0]
    circuit, verdict, transition = breaker.admit_value(gate.key, old, now)
    if isinstance(verdict, Refusal):
        return values, (verdict, 0.0, True, None)
    if not gate.specs:
        return [circuit], (verdict, 0.0, True, transition)
    taken, wait, granted = reserve(limits, gate.specs, tokens, values[1:], now, max_wait)
    if wait > 0 or not granted:
        return [old, *taken], (None, wait, granted, None)
    return [circuit, *taken], (verdict, wait, granted, transition)


def _leave(
    breaker: CircuitBreaker | None,
    limits: RateLimits,
    gate: Gate,
    succeeded: Admission | None,
    back: float,
    now: float,
    values: list[Any],
) -> tuple[list[Any], Transition | None]:
    """When the usage is known, on the circuit (with ``succeeded``, the pass of a success
    not recorded yet) and the token buckets (when ``back``, the estimate less the usage,
    is not 0)."""
    transition = None
    new = []
    if succeeded is not None:
        assert breaker is not None
        circuit, transition = breaker.record_value(
            gate.key, values[0], succeeded, Outcome.SUCCESS, now
        )
        if not back:
            return [circuit], transition
        new.append(circuit)
        values = values[1:]
    for spec, b in zip(gate.token_specs, values, strict=True):
        new.append(give_back(limits, spec, b, back, now))
    return new, transition


class Guard:
    def __init__(self, config: ClientConfig) -> None:
        store = config.policy_store or InMemoryStore()
        self.store = store
        self.clock = store.clock
        self.base_url = config.base_url
        self.prices = config.prices
        self.breaker = CircuitBreaker(config.breaker, store) if config.breaker else None
        self.limiter = RateLimiter(config.rate_limits, store) if config.rate_limits else None
        # The limits the buckets follow; none (and no buckets) without a limiter.
        self._limits = config.rate_limits or _NO_LIMITS
        self._adapt = bool(config.rate_limits and config.rate_limits.adapt)
        cap = config.budget_usd
        self.budget = cap if isinstance(cap, Budget) or cap is None else Budget(cap)
        self._on_change = (log_breaker_change, *config.on_breaker_change)
        # One per model name seen, like the store's own keys.
        self._gates: dict[str, Gate] = {}

    def gate(self, model: str) -> Gate:
        """The keys and limits of ``model``'s calls."""
        gate = self._gates.get(model)
        if gate is None:
            key = breaker_key(model, self.base_url)
            first = () if self.breaker is None else (self.breaker.store_key(key),)
            b = _NO_BUCKETS if self.limiter is None else self.limiter.buckets(model)
            gate = Gate(
                key,
                first + b.keys,
                b.specs,
                first + b.token_keys,
                b.token_specs,
                b.token_keys,
                first,
            )
            self._gates[model] = gate
        return gate

    # --- per call ---------------------------------------------------------------------

    def open(
        self, model: str, prompt_tokens: int, max_output_tokens: int | None, choices: int = 1
    ) -> CallGuard | None:
        """Hold the call's estimated cost in every budget that applies (raising
        ``BudgetExceededError`` before anything is sent), or None when no policy applies.

        ``prompt_tokens`` is the body's estimate; each of ``choices`` may produce up to
        ``max_output_tokens`` (unset: the model's output limit, for the budget's bound; no
        output at all for the limiter, whose estimate the reported usage corrects)."""
        budgets = active_budgets()
        if self.budget is not None:
            budgets = (self.budget, *budgets)
        if not budgets and self.breaker is None and self.limiter is None:
            return None
        tokens = prompt_tokens + (max_output_tokens or 0) * choices
        call = CallGuard(model, self.gate(model), tokens)
        if budgets:
            estimate = self._estimate(model, prompt_tokens, max_output_tokens, choices)
            for budget in budgets:
                try:
                    hold = budget.hold(estimate, model=model)
                except HolySheepError:
                    self.release(call)
                    raise
                call.holds += ((budget, hold),)
        return call

    def _estimate(
        self, model: str, prompt_tokens: int, max_output_tokens: int | None, choices: int
    ) -> Decimal:
        if max_output_tokens is None:
            profile = self.prices.profile(model)
            max_output_tokens = profile.max_output_tokens if profile else UNKNOWN_OUTPUT_TOKENS
        estimate = self.prices.estimate(model, prompt_tokens, max_output_tokens * choices)
        if estimate is None:
            raise InvalidRequestError(
                f"model {model!r} has no price, so a budget cannot bound its cost: add its "
                "price (prices=PriceTable().with_prices(...)) or call it without a budget",
                param="model",
            )
        return estimate

    def release(self, call: CallGuard) -> None:
        """The call failed on this model. Its estimate is dropped when every attempt was
        answered (an error status bills nothing), and counts as spent when one was not."""
        if call.unanswered or call.succeeded is not None:
            self.settle(call, None, None)
            return
        holds, call.holds = call.holds, ()
        for budget, hold in holds:
            budget.release(hold)

    def settle(self, call: CallGuard, usage: Usage | None, cost: Decimal | None) -> None:
        """The server reported the call's usage: correct the estimates to it, and tell the
        breaker of a success it has not heard yet; once, in one store update."""
        if call.settled:
            return
        call.settled = True
        if call.holds:
            holds, call.holds = call.holds, ()
            for budget, hold in holds:
                budget.settle(hold, cost)
        gate, succeeded = call.gate, call.succeeded
        token_specs = gate.token_specs
        back = 0.0
        if usage is not None and token_specs:
            back = float(call.tokens - usage.total_tokens)
        if not back:
            if succeeded is None:
                return
            keys = gate.circuit_keys
        else:
            keys = gate.token_keys if succeeded is None else gate.usage_keys
        call.succeeded = None
        change = partial(_leave, self.breaker, self._limits, gate, succeeded, back, self.clock())
        transition = self.store.update(keys, change)
        if transition is not None:
            self._announce(call, transition)

    # --- per attempt ------------------------------------------------------------------

    def before_attempt(self, call: CallGuard, max_wait: float | None) -> float:
        """Take this attempt's turn in the rate limiter and, unless it must wait for it,
        the breaker's pass, in one store update. Returns the seconds to wait first: after
        them, :meth:`admit` takes the pass (at 0 the attempt may go at once). Raises
        ``CircuitOpenError`` when the breaker refuses the attempt, and ``APITimeoutError``
        when the wait would pass ``max_wait`` (the call's remaining deadline); neither
        takes anything."""
        gate = call.gate
        if not gate.keys:
            return 0.0
        limits = self._limits
        if limits.max_wait is not None:
            max_wait = limits.wait_cap(max_wait)
        now = self.clock()
        change = partial(_enter, self.breaker, limits, gate, float(call.tokens), now, max_wait)
        verdict, wait, granted, transition = self.store.update(gate.keys, change)
        if transition is not None:
            self._announce(call, transition)
        if isinstance(verdict, Refusal):
            raise self._open_error(call, verdict)
        if not granted:
            raise APITimeoutError(
                f"the client-side rate limit would hold this {call.model} call for "
                f"{wait:.2f}s, past its deadline or max_wait; nothing was sent",
                retry_after=wait,
            )
        call.admission = verdict
        # A turn to wait for is held until the attempt goes (:meth:`admit`); one that is
        # now is spent at once.
        call.reserved = wait > 0
        return wait

    def admit(self, call: CallGuard) -> None:
        """The attempt waited its turn and is about to go: take the breaker's pass, or
        raise ``CircuitOpenError`` (giving the limiter its turn back)."""
        if call.admission is None and self.breaker is not None:
            verdict, change = self.breaker.admit(call.key, self.clock())
            self._announce(call, change)
            if isinstance(verdict, Refusal):
                self.abort(call)
                raise self._open_error(call, verdict)
            call.admission = verdict
        call.reserved = False  # spent: the request goes out now

    def after_attempt(self, call: CallGuard, outcome: Reply | HolySheepError) -> None:
        """Tell the breaker how the attempt went, and the limiter what the server said."""
        admission = call.admission
        if isinstance(outcome, Reply):
            if admission is not None:
                call.admission = None
                if outcome.ok and not admission.probe:
                    # A success on a closed circuit changes at most a failure count, and the
                    # call's usage comes next (at once, or at the stream's end): the update
                    # that settles it records this too. A probe's may close the circuit.
                    call.succeeded = admission
                else:
                    self._record(call, admission, classify(outcome))
            if self._adapt:
                limiter, now = self.limiter, self.clock()
                assert limiter is not None
                if outcome.status == 429:
                    limiter.back_off(call.model, _retry_after(outcome.headers), now)
                limiter.observe(call.model, outcome.headers, now)
            return
        if isinstance(outcome, APIConnectionError):
            call.unanswered = True
        if admission is not None:
            call.admission = None
            self._record(call, admission, classify(outcome))

    def abort(self, call: CallGuard, *, sent: bool = False) -> None:
        """The attempt will not report (cancelled, or refused before sending): free its
        probe slot without a verdict and return an unsent reservation. ``sent``: it was
        on the wire when its caller went away."""
        call.unanswered = call.unanswered or sent
        if call.admission is not None:
            admission, call.admission = call.admission, None
            self._record(call, admission, Outcome.NEUTRAL)
        if call.reserved:
            call.reserved = False
            assert self.limiter is not None
            self.limiter.return_turn(call.model, call.tokens, self.clock())

    def _record(self, call: CallGuard, admission: Admission, verdict: Outcome) -> None:
        assert self.breaker is not None
        self._announce(call, self.breaker.record(call.key, admission, verdict, self.clock()))

    # --- views and events -------------------------------------------------------------

    def breaker_states(self) -> dict[str, str]:
        if self.breaker is None:
            return {}
        return {k: str(v) for k, v in self.breaker.states(self.clock()).items()}

    def _open_error(self, call: CallGuard, refusal: Refusal) -> CircuitOpenError:
        if refusal.state == "open":
            why = (
                f"open after {refusal.failures} consecutive failures; "
                f"next probe in {refusal.retry_after:.2f}s"
            )
        else:
            why = f"half-open with {refusal.probes} probe(s) in flight"
        return CircuitOpenError(
            f"the circuit for {call.key} is {why}; no request was sent",
            key=call.key,
            retry_after=refusal.retry_after,
        )

    def _announce(self, call: CallGuard, change: Transition | None) -> None:
        if change is not None:
            event = BreakerChanged(
                key=change.key,
                model=call.model,
                old=str(change.old),
                new=str(change.new),
                failures=change.failures,
                retry_after=change.retry_after,
            )
            run_hooks(self._on_change, event)
            if call.watch is not None:
                call.watch.event(event)
