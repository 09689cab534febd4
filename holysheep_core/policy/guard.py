"""The breaker, the rate limiter and the budgets of one client, applied around a call.

:class:`~holysheep_core.pipeline.Pipeline` asks a :class:`Guard` before and after each
attempt and the guard answers with data: how long to wait, or an error to raise. It reads
the store's clock and announces breaker changes to the client's hooks, but never sleeps:
both drivers wait the same way for every other reason. With no policy configured a call
gets no :class:`CallGuard` at all, so the request path does no extra work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

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
from .ratelimit import RateLimiter, Reservation
from .store import InMemoryStore

if TYPE_CHECKING:
    from ..config import ClientConfig

__all__ = ["CallGuard", "Guard", "breaker_key"]

# An upper bound on a call's output when neither max_tokens nor the model's profile gives
# one, for budget estimates only.
UNKNOWN_OUTPUT_TOKENS = 4096


def breaker_key(model: str, base_url: str) -> str:
    return f"{model}@{base_url}"


@dataclass(slots=True)
class CallGuard:
    """What the policies hold for one call on one model: owned by that call alone."""

    model: str
    key: str
    tokens: int
    """Estimated tokens (prompt and output) reserved from the limiter per attempt."""
    holds: list[tuple[Budget, Decimal]] = field(default_factory=list)
    reservation: Reservation | None = None
    """The limiter reservation of the attempt about to be sent, until it is sent."""
    admission: Admission | None = None
    """The breaker's pass of the attempt in flight."""
    settled: bool = False
    unanswered: bool = False
    """An attempt went out and no answer came back (timeout, dropped, cancelled): the
    server may have done the work and billed it."""


class Guard:
    def __init__(self, config: ClientConfig) -> None:
        store = config.policy_store or InMemoryStore()
        self.clock = store.clock
        self.base_url = config.base_url
        self.prices = config.prices
        self.breaker = CircuitBreaker(config.breaker, store) if config.breaker else None
        self.limiter = RateLimiter(config.rate_limits, store) if config.rate_limits else None
        self._adapt = bool(config.rate_limits and config.rate_limits.adapt)
        cap = config.budget_usd
        self.budget = cap if isinstance(cap, Budget) or cap is None else Budget(cap)
        self._on_change = (log_breaker_change, *config.on_breaker_change)

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
        call = CallGuard(model, breaker_key(model, self.base_url), tokens)
        if budgets:
            estimate = self._estimate(model, prompt_tokens, max_output_tokens, choices)
            try:
                for budget in budgets:
                    call.holds.append((budget, budget.hold(estimate, model=model)))
            except HolySheepError:
                self.release(call)
                raise
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
        if call.unanswered:
            self.settle(call, None, None)
            return
        holds, call.holds = call.holds, []
        for budget, hold in holds:
            budget.release(hold)

    def settle(self, call: CallGuard, usage: Usage | None, cost: Decimal | None) -> None:
        """The server reported the call's usage: correct the estimates to it (once)."""
        if call.settled:
            return
        call.settled = True
        holds, call.holds = call.holds, []
        for budget, hold in holds:
            budget.settle(hold, cost)
        if self.limiter is not None and usage is not None:
            self.limiter.correct(call.model, call.tokens, usage.total_tokens, self.clock())

    # --- per attempt ------------------------------------------------------------------

    def before_attempt(self, call: CallGuard, max_wait: float | None) -> float:
        """Seconds to wait for the limiter before this attempt. Raises ``CircuitOpenError``
        when the breaker would refuse it anyway, and ``APITimeoutError`` when the wait
        would pass ``max_wait`` (the call's remaining deadline)."""
        if self.limiter is None:
            return 0.0
        now = self.clock()
        if self.breaker is not None:
            refusal = self.breaker.peek(call.key, now)
            if refusal is not None:
                raise self._open_error(call, refusal)
        reservation = self.limiter.reserve(call.model, call.tokens, now, max_wait)
        if not reservation.granted:
            raise APITimeoutError(
                f"the client-side rate limit would hold this {call.model} call for "
                f"{reservation.wait:.2f}s, past its deadline or max_wait; nothing was sent",
                retry_after=reservation.wait,
            )
        call.reservation = reservation
        return reservation.wait

    def admit(self, call: CallGuard) -> None:
        """The attempt is about to go: take the breaker's pass, or raise
        ``CircuitOpenError`` (giving the limiter its reservation back)."""
        if self.breaker is not None:
            now = self.clock()
            verdict, change = self.breaker.admit(call.key, now)
            self._announce(call, change)
            if isinstance(verdict, Refusal):
                self.abort(call)
                raise self._open_error(call, verdict)
            call.admission = verdict
        call.reservation = None  # spent: the request goes out now

    def after_attempt(self, call: CallGuard, outcome: Reply | HolySheepError) -> None:
        """Tell the breaker how the attempt went, and the limiter what the server said."""
        if isinstance(outcome, APIConnectionError):
            call.unanswered = True
        if call.admission is not None:
            admission, call.admission = call.admission, None
            assert self.breaker is not None
            self._announce(
                call, self.breaker.record(call.key, admission, classify(outcome), self.clock())
            )
        if self._adapt and isinstance(outcome, Reply):
            assert self.limiter is not None
            now = self.clock()
            if outcome.status == 429:
                self.limiter.back_off(call.model, _retry_after(outcome.headers), now)
            self.limiter.observe(call.model, outcome.headers, now)

    def abort(self, call: CallGuard, *, sent: bool = False) -> None:
        """The attempt will not report (cancelled, or refused before sending): free its
        probe slot without a verdict and return an unsent reservation. ``sent``: it was
        on the wire when its caller went away."""
        call.unanswered = call.unanswered or sent
        if call.admission is not None:
            admission, call.admission = call.admission, None
            assert self.breaker is not None
            self._announce(
                call, self.breaker.record(call.key, admission, Outcome.NEUTRAL, self.clock())
            )
        if call.reservation is not None:
            reservation, call.reservation = call.reservation, None
            assert self.limiter is not None
            self.limiter.refund(reservation, self.clock())

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
            run_hooks(
                self._on_change,
                BreakerChanged(
                    key=change.key,
                    model=call.model,
                    old=str(change.old),
                    new=str(change.new),
                    failures=change.failures,
                    retry_after=change.retry_after,
                ),
            )
