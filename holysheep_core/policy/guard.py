"""The breaker, the rate limiter and the budgets of one client, applied around a call.

:class:`~holysheep_core.pipeline.Pipeline` asks a :class:`Guard` for the operation to
apply before an attempt and the one to apply after it (:mod:`.operations`), and the guard
reads their results: how long to wait, or an error to raise. It never sleeps or does I/O
itself: the request flow consults the store (inline for the in-memory store, through its
driver for a networked one). With no policy configured a call gets no :class:`CallGuard`
at all, so the request path does no extra work.

A call answered at once costs two operations: one before the attempt (budget holds,
breaker pass, limiter turn) and one when its usage is known (the breaker's verdict, the
limiter's correction, the budgets settled). Only a 2xx on a closed circuit waits for that
second operation; any other verdict (a failure, a 4xx, a probe's answer) is recorded at
once, in an operation of its own.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import (
    APIConnectionError,
    APITimeoutError,
    BudgetExceededError,
    CircuitOpenError,
    InvalidRequestError,
)
from ..errors import parse_retry_after as _retry_after
from ..hooks import BreakerChanged, log_breaker_change, run_hooks
from ..transport.base import Reply
from ..types import Usage
from .breaker import Admission, CircuitBreaker, Outcome, Refusal, Transition, classify
from .budget import DEFAULT_MEDIA_TOKENS, Budget, active_budgets, prompt_bound
from .operations import (
    AfterAttempt,
    BeforeAttempt,
    BucketBack,
    BudgetHold,
    BudgetSettle,
    Entered,
    InMemoryStore,
    LedgerEntry,
    Left,
    Operation,
    ServerCount,
    StateStore,
    nano_usd,
    usd,
)
from .ratelimit import BucketSpec, RateLimiter

if TYPE_CHECKING:
    from ..config import ClientConfig
    from ..errors import HolySheepError

__all__ = ["CallGuard", "Gate", "Guard", "breaker_key"]

# An upper bound on a call's output when neither max_tokens nor the model's profile gives
# one, for budget estimates only.
UNKNOWN_OUTPUT_TOKENS = 4096

_call_ids = itertools.count(1)


def breaker_key(model: str, base_url: str) -> str:
    return f"{model}@{base_url}"


@dataclass(frozen=True, slots=True)
class Gate:
    """What the calls on one model check, worked out on the first: the breaker's key and
    its store key (empty without a breaker), and the buckets drawn from."""

    key: str
    circuit_key: str
    specs: tuple[BucketSpec, ...]
    token_specs: tuple[BucketSpec, ...]


@dataclass(slots=True)
class CallGuard:
    """What the policies hold for one call on one model: owned by that call alone."""

    model: str
    gate: Gate
    call_id: str
    tokens: int
    """Estimated tokens (prompt and output) taken from the limiter per attempt."""
    pending: tuple[BudgetHold, ...] = ()
    """Holds in the client's store, taken with the first attempt's turn."""
    holds: tuple[tuple[StateStore, BudgetHold], ...] = ()
    """Holds taken, with the store each lives in."""
    reserved: bool = False
    """The attempt about to be sent holds its turn in the limiter, until it is sent."""
    turn_at: float = 0.0
    """When that turn is, on the store's clock (as the call read the decision)."""
    admission: Admission | None = None
    """The breaker's pass of the attempt in flight."""
    succeeded: Admission | None = None
    """The pass of an attempt answered 2xx on a closed circuit: its success changes
    nothing but a failure count, so it waits for the usage, to share its operation."""
    counts: tuple[ServerCount, ...] = ()
    """The server's rate-limit counts on that answer, recorded with it."""
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


# A call that wakes this long past its turn takes a new one: the server sees each call
# at most this long after the turn it was given, so a starved process cannot send a
# second's worth of late calls at once.
LATE_TURN = 0.05

# The most a waiting call asks for its breaker pass ahead of its turn (and holds it
# before going): a pass is not held longer while waiting (it may be a probe's).
PASS_LEAD_CAP = 0.5


class Guard:
    def __init__(self, config: ClientConfig) -> None:
        store = config.policy_store or InMemoryStore()
        self.store: StateStore = store
        self.clock = store.clock
        self.base_url = config.base_url
        self.prices = config.prices
        self.breaker = CircuitBreaker(config.breaker) if config.breaker else None
        self._breaker_policy = config.breaker
        self.limiter = RateLimiter(config.rate_limits) if config.rate_limits else None
        self._tuning = None if self.limiter is None else self.limiter.tuning
        self._adapt = bool(config.rate_limits and config.rate_limits.adapt)
        self._max_wait = config.rate_limits.max_wait if config.rate_limits else None
        cap = config.budget_usd
        # A cap given as a number lives in this client's store, so that its holds share
        # one operation with the breaker's pass and the limiter's turn.
        self.budget = cap if isinstance(cap, Budget) or cap is None else Budget(cap, store=store)
        self._on_change = (log_breaker_change, *config.on_breaker_change)
        # A store shared by processes keeps a ledger of every call: each call reports.
        self._shared_ledger = bool(getattr(store, "shares_ledger", False))
        # One per model name seen, like the store's own keys.
        self._gates: dict[str, Gate] = {}
        # How long the store has lately taken to give a pass (a moving average).
        self._pass_time = 0.0

    def gate(self, model: str) -> Gate:
        """The keys and limits of ``model``'s calls."""
        gate = self._gates.get(model)
        if gate is None:
            key = breaker_key(model, self.base_url)
            circuit = "" if self.breaker is None else self.breaker.store_key(key)
            specs = () if self.limiter is None else self.limiter.buckets(model).specs
            tokens = tuple(s for s in specs if s.kind == "tokens")
            gate = self._gates[model] = Gate(key, circuit, specs, tokens)
        return gate

    # --- per call ---------------------------------------------------------------------

    def open(
        self,
        model: str,
        prompt_tokens: int,
        max_output_tokens: int | None,
        choices: int = 1,
        *,
        body_bytes: int | None = None,
        media_parts: int = 0,
    ) -> CallGuard | None:
        """What the policies hold for a call, or None when no policy applies.

        ``prompt_tokens`` is the limiter's estimate of the prompt (usage corrects it); the
        budgets hold a true upper bound instead, from the request body's size
        (``body_bytes``) and its ``media_parts`` (:func:`~.budget.prompt_bound`).
        Each of ``choices`` may produce up to ``max_output_tokens`` (unset: the
        model's output limit, for the budget's bound; no output at all for the limiter).
        Holds in budgets kept in another store than the client's are taken here (raising
        ``BudgetExceededError`` before anything is sent); the others with the first turn.
        """
        budgets = active_budgets()
        if self.budget is not None:
            budgets = (self.budget, *budgets)
        if not (budgets or self.breaker or self.limiter or self._shared_ledger):
            return None
        profile = self.prices.profile(model) if media_parts or budgets else None
        size = prompt_tokens * 4 if body_bytes is None else body_bytes
        if media_parts:  # an image's cost is unknown until the usage: estimate it high
            per_part = profile.max_media_tokens if profile else DEFAULT_MEDIA_TOKENS
            prompt_tokens += media_parts * per_part
        tokens = prompt_tokens + (max_output_tokens or 0) * choices
        call = CallGuard(model, self.gate(model), str(next(_call_ids)), tokens)
        if budgets:
            bound = prompt_bound(size, media_parts, profile)
            estimate = self._estimate(model, bound, max_output_tokens, choices)
            pending = []
            for budget in budgets:
                hold = budget.hold(estimate)
                if budget.store is self.store:
                    pending.append(hold)
                    continue
                entered = budget.store.apply(BeforeAttempt(call.call_id, holds=(hold,)))
                if entered.budget_refusal is not None:
                    self.release(call)
                    raise self._budget_error(call, (hold,), entered)
                call.holds += ((budget.store, hold),)
            call.pending = tuple(pending)
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
        if call.settled:
            return
        if call.unanswered or call.succeeded is not None:
            self.settle(call, None, None)
            return
        call.settled = True
        settles = self._settle_holds(call, None, billed=False)
        if settles:
            self.finish(AfterAttempt(call.call_id, settles=settles))

    def settle(self, call: CallGuard, usage: Usage | None, cost: Decimal | None) -> None:
        """The server reported the call's usage (None: unknown): correct the estimates to
        it, tell the breaker of a success it has not heard yet, settle the budgets; once,
        in one operation on the client's store."""
        if call.settled:
            return
        call.settled = True
        settles = self._settle_holds(call, cost, billed=True) if call.holds else ()
        gate, succeeded = call.gate, call.succeeded
        back = 0.0
        if usage is not None and gate.token_specs:
            back = float(call.tokens - usage.total_tokens)
        ledger = _ledger_entry(call.model, usage, cost) if self._shared_ledger else None
        if not (back or succeeded or settles or call.counts or ledger):
            return
        call.succeeded = None
        op = AfterAttempt(
            call.call_id,
            gate.circuit_key,
            self._breaker_policy if succeeded is not None else None,
            succeeded,
            Outcome.SUCCESS,
            tuple(BucketBack(s, back) for s in gate.token_specs) if back else (),
            call.counts,
            (),
            None,
            self._tuning,
            settles,
            ledger,
        )
        self._announce(call, self.finish(op))

    def _settle_holds(
        self, call: CallGuard, cost: Decimal | None, *, billed: bool
    ) -> tuple[BudgetSettle, ...]:
        """Settle the holds kept in other stores at once; return those of the client's
        store, for the caller's operation. A call that may have been billed spends
        ``cost``, or its hold when the cost is unknown; one that was not spends nothing."""
        holds, call.holds = call.holds, ()
        spent = None if cost is None else nano_usd(cost)
        mine: list[BudgetSettle] = []
        for store, hold in holds:
            amount = (hold.amount if spent is None else spent) if billed else 0
            settle = BudgetSettle(hold.key, hold.amount, amount)
            if store is self.store:
                mine.append(settle)
            else:
                self._finish_on(store, AfterAttempt(call.call_id, settles=(settle,)))
        return tuple(mine)

    # --- per attempt ------------------------------------------------------------------

    def before(self, call: CallGuard, max_wait: float | None) -> BeforeAttempt | None:
        """The operation to apply before an attempt, or None when there is nothing to take.

        ``max_wait`` is the call's remaining deadline; the policy's ``max_wait`` caps it."""
        gate = call.gate
        if not (gate.specs or gate.circuit_key or call.pending):
            return None
        max_wait = self._capped(max_wait)
        return BeforeAttempt(
            call.call_id,
            call.pending,
            gate.circuit_key,
            self._breaker_policy,
            gate.specs,
            float(call.tokens),
            self._tuning,
            max_wait,
        )

    def entered(self, call: CallGuard, op: BeforeAttempt, result: Entered) -> float:
        """Read what :meth:`before`'s operation decided: the seconds to wait for the turn
        (after them, :meth:`admit` takes the breaker's pass). Raises
        ``BudgetExceededError``, ``CircuitOpenError``, or ``APITimeoutError`` when the turn
        would come only as the call's deadline (or the policy's ``max_wait``) ends;
        nothing is taken then."""
        if result.transition is not None:
            self._announce(call, result.transition)
        if result.budget_refusal is not None:
            self.release(call)
            raise self._budget_error(call, op.holds, result)
        if result.refusal is not None:
            raise self._open_error(call, result.refusal)
        if not result.granted:
            raise self._too_late(call, result.wait)
        if op.holds:
            call.holds += tuple((self.store, h) for h in op.holds)
            call.pending = ()
        call.admission = result.admission
        return self._hold_turn(call, result.wait)

    def _hold_turn(self, call: CallGuard, wait: float) -> float:
        # A turn to wait for is held until the attempt goes (:meth:`admit`); one that is
        # now is spent at once.
        call.reserved = wait > 0
        call.turn_at = self.clock() + wait
        return wait

    def _too_late(self, call: CallGuard, wait: float) -> APITimeoutError:
        return APITimeoutError(
            f"the client-side rate limit would hold this {call.model} call for "
            f"{wait:.2f}s, to or past its deadline or max_wait; nothing was sent",
            retry_after=wait,
        )

    def _capped(self, max_wait: float | None) -> float | None:
        """The call's remaining deadline, capped by the policy's ``max_wait``."""
        cap = self._max_wait
        if cap is None:
            return max_wait
        return cap if max_wait is None else min(max_wait, cap)

    def late(self, call: CallGuard, max_wait: float | None) -> BeforeAttempt | None:
        """After waiting its turn: when the call wakes more than ``LATE_TURN`` seconds
        past it (its process starved for CPU, its event loop blocked), the operation for
        a new turn; None when in time. The late turn is not given back: the calls that
        woke late with it would otherwise go out together, more in a second than the
        limit allows; its time has passed, spent."""
        if not (call.reserved and call.gate.specs):
            return None
        if self.clock() - call.turn_at <= LATE_TURN:
            return None
        call.reserved = False
        max_wait = self._capped(max_wait)
        specs = call.gate.specs
        return BeforeAttempt(
            call.call_id, (), "", None, specs, float(call.tokens), self._tuning, max_wait
        )

    def pass_lead(self, call: CallGuard) -> float:
        """How long before its turn a waiting call asks for the breaker's pass: about
        as long as the store has lately taken to give one, so that it comes by the turn
        (a networked store under load answers in tens of milliseconds)."""
        if call.admission is not None or self._breaker_policy is None:
            return 0.0
        return self._pass_time

    def pass_took(self, seconds: float) -> None:
        """Record how long the store took to give a pass."""
        self._pass_time = min(PASS_LEAD_CAP, 0.8 * self._pass_time + 0.2 * seconds)

    def until_turn(self, call: CallGuard) -> float:
        """Seconds left until the call's turn (its pass came ahead of it)."""
        return call.turn_at - self.clock()

    def late_pass(self, call: CallGuard, max_wait: float | None) -> BeforeAttempt | None:
        """After taking the breaker's pass: when that took the call more than
        ``LATE_TURN`` seconds past its turn (the store was slow to answer, as when Redis
        stops), give the pass back and return the operation for a new turn, as
        :meth:`late` does; None when the call may go. Calls held up together by a slow
        store would otherwise go out together when it answers."""
        if call.admission is None or not call.gate.specs:
            return None
        if self.clock() - call.turn_at <= LATE_TURN:
            return None
        self.abort(call)  # the pass back, without a verdict (the turn is not reserved)
        call.reserved = True  # the missed turn, spent as in :meth:`late`
        return self.late(call, max_wait)

    def relimited(self, call: CallGuard, result: Entered) -> float:
        """Read :meth:`late`'s result: the seconds to wait for the new turn, or
        ``APITimeoutError`` when it would come only as the deadline ends."""
        if not result.granted:
            raise self._too_late(call, result.wait)
        return self._hold_turn(call, result.wait)

    def admit(self, call: CallGuard) -> BeforeAttempt | None:
        """After waiting its turn: the operation that takes the breaker's pass, if any."""
        call.reserved = False  # spent: the request goes out now
        if call.admission is not None or self._breaker_policy is None:
            return None
        call.reserved = True  # until the pass is taken
        return BeforeAttempt(call.call_id, (), call.gate.circuit_key, self._breaker_policy)

    def admitted(self, call: CallGuard, result: Entered) -> None:
        """Read :meth:`admit`'s result: raise ``CircuitOpenError`` (giving the limiter its
        turn back) when refused."""
        if result.transition is not None:
            self._announce(call, result.transition)
        if result.refusal is not None:
            self.abort(call)
            raise self._open_error(call, result.refusal)
        call.admission = result.admission
        call.reserved = False

    def after(self, call: CallGuard, outcome: Reply | HolySheepError) -> AfterAttempt | None:
        """The operation telling the breaker how the attempt went and the limiter what the
        server said, or None when it can wait for the call's usage (or has nothing)."""
        admission = call.admission
        call.admission = None
        verdict = Outcome.NEUTRAL
        counts: tuple[ServerCount, ...] = ()
        backoff: tuple[BucketSpec, ...] = ()
        retry_after = None
        if isinstance(outcome, Reply):
            if self._adapt:
                assert self.limiter is not None
                if outcome.status == 429:
                    backoff, retry_after = call.gate.specs, _retry_after(outcome.headers)
                counts = self.limiter.server_counts(call.model, outcome.headers)
            if outcome.ok and (admission is None or not admission.probe):
                # A success on a closed circuit changes at most a failure count, and the
                # call's usage comes next (at once, or at the stream's end): the operation
                # that settles it records this, and the server's counts, too. A probe's
                # success may close the circuit: it is recorded at once.
                call.succeeded, call.counts, admission = admission, counts, None
                counts = ()
            elif admission is not None:
                verdict = classify(outcome)
        else:
            if isinstance(outcome, APIConnectionError):
                call.unanswered = True
            if admission is not None:
                verdict = classify(outcome)
        if admission is None and not counts and not backoff:
            return None
        return AfterAttempt(
            call.call_id,
            call.gate.circuit_key,
            self._breaker_policy,
            admission,
            verdict,
            (),
            counts,
            backoff,
            retry_after,
            self._tuning,
        )

    def left(self, call: CallGuard, result: Left) -> None:
        self._announce(call, result.transition)

    def abort(self, call: CallGuard, *, sent: bool = False) -> None:
        """The attempt will not report (cancelled, or refused before sending): free its
        probe slot without a verdict and return an unsent turn, at once (this runs where
        the flow can no longer consult the store through its driver). ``sent``: it was on
        the wire when its caller went away."""
        call.unanswered = call.unanswered or sent
        admission, call.admission = call.admission, None
        back: tuple[BucketBack, ...] = ()
        if call.reserved:
            call.reserved = False
            back = tuple(
                BucketBack(s, 1.0 if s.kind == "requests" else float(call.tokens))
                for s in call.gate.specs
            )
        if admission is None and not back:
            return
        op = AfterAttempt(
            call.call_id,
            call.gate.circuit_key,
            self._breaker_policy,
            admission,
            Outcome.NEUTRAL,
            back,
            tuning=self._tuning,
        )
        self._announce(call, self.finish(op))

    def finish(self, op: Operation) -> Any:
        """Apply an operation outside the request flow: inline, or queued on a networked
        store (no I/O here: this may run in a finaliser)."""
        return self._finish_on(self.store, op)

    @staticmethod
    def _finish_on(store: StateStore, op: Operation) -> Any:
        if store.inline:
            return store.apply(op)
        store.defer(op)
        return None

    # --- views and events -------------------------------------------------------------

    def breaker_states(self) -> dict[str, str]:
        if self.breaker is None:
            return {}
        return {k: str(v) for k, v in self.breaker.states(self.store, self.clock()).items()}

    def _budget_error(
        self, call: CallGuard, holds: tuple[BudgetHold, ...], result: Entered
    ) -> BudgetExceededError:
        refused = result.budget_refusal
        assert refused is not None
        hold = next(h for h in holds if h.key == refused.key)
        name = refused.key.removeprefix("budget:")
        cap, estimate = usd(hold.cap), usd(hold.amount)
        return BudgetExceededError(
            f"a {call.model} call estimated at up to ${estimate:.6f} would pass the "
            f"${cap} budget {name!r} (${usd(refused.spent):.6f} spent, "
            f"${usd(refused.held):.6f} held by calls in flight); nothing was sent. "
            "Set max_tokens for a tighter estimate, or raise the cap.",
            budget_usd=cap,
            spent_usd=usd(refused.spent),
            estimate_usd=estimate,
        )

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

    def _announce(self, call: CallGuard, result: Left | Transition | None) -> None:
        change = result.transition if isinstance(result, Left) else result
        if change is not None:
            event = BreakerChanged(
                key=call.key,
                model=call.model,
                old=str(change.old),
                new=str(change.new),
                failures=change.failures,
                retry_after=change.retry_after,
            )
            run_hooks(self._on_change, event)
            if call.watch is not None:
                call.watch.event(event)


def _ledger_entry(model: str, usage: Usage | None, cost: Decimal | None) -> LedgerEntry:
    """A call that may have been billed, for a shared ledger (unknown usage: a request
    with no tokens and no known cost)."""
    if usage is None:
        return LedgerEntry(model, requests=1, unpriced_requests=1)
    return LedgerEntry(
        model,
        requests=1,
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_nano=0 if cost is None else nano_usd(cost),
        unpriced_requests=int(cost is None),
    )
