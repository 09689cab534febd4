"""The request lifecycle shared by the sync and async clients, written once.

:meth:`Pipeline.attempts` is a generator that yields what to do next, a
:class:`~holysheep_core.transport.base.Send` (make this HTTP attempt, send back the
:class:`Reply` or the error), a :class:`Wait` (sleep this long) or a :class:`Consult`
(apply this policy operation on a networked store, send back its result), and returns the
successful reply. The clients only drive it: ``time.sleep`` or ``asyncio.sleep``, a sync
or an async transport. Every decision lives here or in :mod:`holysheep_core.policy`.

:meth:`Pipeline.call` wraps it for a whole call: fallback models in order, each guarded by
the client's policies (:mod:`holysheep_core.policy.guard`): before an attempt, the rate
limiter's wait (a :class:`Wait` like any other) and the breaker's pass; after it, the
breaker's verdict and the server's rate-limit headers. A driver that stops early (a
cancelled task, Ctrl-C) closes the generator, which gives back what the attempt held.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .accounting import Ledger
from .config import ClientConfig
from .errors import APIResponseValidationError, APITimeoutError, HolySheepError, error_from_response
from .hooks import (
    FallbackUsed,
    RetryScheduled,
    log_fallback,
    log_retry,
    logger,
    run_hooks,
)
from .observer import CallWatch, RateLimitWait
from .policy.fallback import falls_back
from .policy.guard import CallGuard, Guard
from .policy.operations import Operation, StateStore
from .policy.retry import GiveUp, decide
from .record import CallRecord
from .transport.base import Reply, Send
from .types import Usage

__all__ = ["CallFlow", "Consult", "Effect", "Flow", "Pipeline", "Plan", "Served", "Wait"]

M = TypeVar("M", bound=BaseModel)


# Times a call that woke past its turn takes a new one before it goes anyway (a process
# starved that long sends late whatever it does).
_LATE_TRIES = 3
# Less than this ahead of its turn, a call with its pass goes (a wait that short costs
# more than it keeps).
_EARLY = 0.001


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float


@dataclass(frozen=True, slots=True)
class Consult:
    """Apply ``op`` on ``store`` and send back its result. Only a store that is not
    ``inline`` (a networked one) is consulted through the driver, so the async driver can
    await it; the in-memory store is applied inline by the flow itself."""

    store: StateStore
    op: Operation


Effect = Send | Wait | Consult
Flow = Generator[Effect, Any, tuple[Reply, int]]


# Plan and Served are made on every call: plain slotted classes, since a frozen dataclass
# costs a microsecond more to build, which the hot path notices.
@dataclass(slots=True)
class Plan:
    """One call to make: its attempt for the first model, how to build it for each fallback
    model, and the estimated size the policies reserve for it."""

    send: Send
    models: tuple[str, ...]
    resend: Callable[[str], Send] | None = None
    prompt_tokens: int = 0
    """Estimated prompt tokens (``policy.ratelimit.estimate_tokens``), for the limiter."""
    max_output_tokens: int | None = None
    """``max_tokens`` when the call set it."""
    choices: int = 1
    """``n``: each choice may take ``max_output_tokens``."""
    media_parts: int = 0
    """Non-text content parts (images): the budgets bound each by the model's profile."""
    watch: CallWatch | None = None
    """The call's telemetry (:mod:`holysheep_core.observer`); None when not instrumented."""


@dataclass(slots=True)
class Served:
    """A call's successful answer: the model that gave it and the attempts made in all."""

    reply: Reply
    attempts: int
    model: str
    guard: CallGuard | None = None
    """What the policies hold until the call's usage is known."""


CallFlow = Generator[Effect, Any, Served]


class Pipeline:
    """Config, ledger and the retry flow of one client."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.ledger = Ledger()
        self.prices = config.prices
        self.clock = clock
        self._rand = rand
        self._on_retry = (log_retry, *config.on_retry)
        self._on_fallback = (log_fallback, *config.on_fallback)
        self.policies = Guard(config)
        self._warned_unpriced: set[str] = set()

    def call(self, plan: Plan) -> CallFlow:
        """The attempts of one call: its model, then each fallback model while the failure
        is one the next model may not share (``policy.fallback.falls_back``). The call's
        deadline covers them all."""
        start = self.clock()
        made = 0
        failed: list[str] = []
        last = len(plan.models) - 1
        watch = plan.watch
        for i, model in enumerate(plan.models):
            send = plan.send if i == 0 or plan.resend is None else plan.resend(model)
            guard = None
            try:
                guard = self.policies.open(
                    model,
                    plan.prompt_tokens,
                    plan.max_output_tokens,
                    plan.choices,
                    body_bytes=len(send.body or b""),
                    media_parts=plan.media_parts,
                )
                if guard is not None:
                    guard.watch = watch
                reply, attempts = yield from self.attempts(
                    send, model=model, guard=guard, start=start, watch=watch
                )
            except HolySheepError as exc:
                if guard is not None:
                    self.policies.release(guard)
                made += exc.attempts
                if i == last or not falls_back(exc):
                    exc.attempts = made
                    if failed:
                        exc.add_note(f"tried before {model}: " + "; ".join(failed))
                    raise  # the call's record ends it, and tells its watch
                failed.append(f"{model} ({type(exc).__name__})")
                moved = FallbackUsed(
                    model=model,
                    next_model=plan.models[i + 1],
                    error_type=type(exc).__name__,
                    message=exc.message,
                    status_code=exc.status_code,
                )
                run_hooks(self._on_fallback, moved)
                if watch is not None:
                    watch.event(moved)
                continue
            except BaseException as exc:
                if guard is not None:
                    self.policies.release(guard)
                if watch is not None:
                    # Closed by a driver whose caller went away: a call cancelled before
                    # anything was sent has no record to end its watch.
                    watch.failed(exc)
                raise
            return Served(reply, made + attempts, model, guard)
        raise AssertionError("a plan names at least one model")

    def attempts(
        self,
        send: Send,
        *,
        model: str,
        guard: CallGuard | None = None,
        start: float | None = None,
        watch: CallWatch | None = None,
    ) -> Flow:
        """Yield attempts and waits until a 2xx reply; raise the last error otherwise.

        With a ``guard``, each attempt first waits its turn in the rate limiter and takes
        the breaker's pass. ``start`` is when the call began (default: now).
        """
        policy = self.config.retry
        policies = self.policies
        clock = self.clock
        start = clock() if start is None else start
        attempt = 0
        previous: HolySheepError | None = None
        while True:
            attempt += 1
            request = send
            if guard is not None:
                try:
                    # Budget holds, the limiter's turn and the breaker's pass, in one
                    # operation; a Wait only when the turn is not yet (most calls have it
                    # at once).
                    left = None if policy.deadline is None else policy.deadline - (clock() - start)
                    op = policies.before(guard, left)
                    if op is not None:
                        result = yield from self._consult(op)
                        wait = policies.entered(guard, op, result)
                        if wait > 0:
                            if watch is not None:
                                watch.event(RateLimitWait(model, wait))
                            yield from self._wait_turn(guard, wait, policy.deadline, start, watch)
                except HolySheepError as shed:
                    shed.attempts = attempt - 1  # this attempt never went out
                    if previous is not None:
                        raise shed from previous
                    raise
            deadline = policy.deadline
            stream_deadline = policy.stream_deadline if send.stream else None
            if stream_deadline is not None and (deadline is None or stream_deadline < deadline):
                deadline = stream_deadline
            if deadline is not None:
                elapsed = clock() - start
                remaining = deadline - elapsed
                if remaining <= 0:
                    if guard is not None:
                        self.policies.abort(guard)
                    raise APITimeoutError(
                        f"the call's deadline of {deadline:g}s passed", attempts=attempt
                    )
                # The transport bounds the whole attempt by it, not just each read.
                request = replace(
                    send,
                    timeout=remaining,
                    stream_timeout=None if stream_deadline is None else stream_deadline - elapsed,
                )
            try:
                outcome = yield request
            except BaseException:
                # The caller went away (cancelled, interrupted): no verdict on the server.
                if guard is not None:
                    self.policies.abort(guard, sent=True)
                raise
            if guard is not None:
                after = policies.after(guard, outcome)
                if after is not None:
                    done = yield from self._consult(after)
                    policies.left(guard, done)
            if isinstance(outcome, Reply):
                if outcome.ok:
                    return outcome, attempt
                error: HolySheepError = error_from_response(
                    outcome.status,
                    outcome.headers,
                    outcome.body,
                    method=send.method,
                    url=self.config.base_url + send.path,
                    secret=self.config.api_key.get_secret_value(),
                )
            elif isinstance(outcome, HolySheepError):
                error = outcome
            else:  # pragma: no cover - a driver bug, not a remote failure
                raise TypeError(f"driver sent {outcome!r}")
            decision = decide(policy, attempt, error, clock() - start, self._rand())
            if isinstance(decision, GiveUp):
                error.attempts = attempt
                if attempt > 1 or decision.reason != "not retryable":
                    error.add_note(decision.reason)
                raise error
            retry = RetryScheduled(
                model=model,
                attempt=attempt,
                wait_for=decision.delay,
                error_type=type(error).__name__,
                message=error.message,
                status_code=error.status_code,
                request_id=error.request_id,
            )
            run_hooks(self._on_retry, retry)
            if watch is not None:
                watch.event(retry)
            previous = error
            yield Wait(decision.delay)

    def _consult(self, op: Operation) -> Generator[Effect, Any, Any]:
        """Apply ``op`` in the policies' store: here when it answers in memory, else through
        the flow's driver (:class:`Consult`)."""
        store = self.policies.store
        return store.apply(op) if store.inline else (yield Consult(store, op))

    def _wait_turn(
        self,
        guard: CallGuard,
        wait: float,
        deadline: float | None,
        start: float,
        watch: CallWatch | None,
    ) -> Generator[Effect, Any, None]:
        """Wait this attempt's turn in the rate limiter and take the breaker's pass (asked
        for as long ahead of the turn as the store takes to give it), then go at the
        turn. A call that woke too late for its turn, or got the pass too late, takes a
        new one."""
        policies = self.policies
        clock = self.clock
        try:
            yield Wait(max(wait - policies.pass_lead(guard), 0.0))
            for tries_left in range(_LATE_TRIES, -1, -1):
                left = None if deadline is None else deadline - (clock() - start)
                op = policies.late(guard, left) if tries_left else None
                if op is None:
                    op = policies.admit(guard)
                    if op is not None:
                        asked = clock()
                        policies.admitted(guard, (yield from self._consult(op)))
                        policies.pass_took(clock() - asked)
                        op = policies.late_pass(guard, left) if tries_left else None
                    if op is None:
                        early = policies.until_turn(guard)
                        if early > _EARLY:
                            yield Wait(early)
                        return
                wait = policies.relimited(guard, (yield from self._consult(op)))
                if wait > 0:
                    if watch is not None:
                        watch.event(RateLimitWait(guard.model, wait))
                    yield Wait(max(wait - policies.pass_lead(guard), 0.0))
        except BaseException:
            policies.abort(guard)
            raise

    # --- after the flow: parse, price; a CallRecord books ------------------------------

    def record(
        self, model: str, *, stream: bool = False, watch: CallWatch | None = None
    ) -> CallRecord:
        """The books of a call starting now (``watch``: its telemetry, if instrumented)."""
        return CallRecord(self, model, stream=stream, watch=watch)

    def parse(self, reply: Reply, model_type: type[M]) -> M:
        """The answer's body as ``model_type``; ``APIResponseValidationError`` when it is
        not the wire format (nothing is booked here: the call's record does that)."""
        try:
            return model_type.model_validate_json(reply.body)
        except ValidationError as exc:
            raise APIResponseValidationError(
                f"the server's {model_type.__name__} does not match the wire format: "
                f"{_summarise(exc)}; content-type {reply.headers.get('content-type')!r}",
                request_id=reply.request_id,
            ) from None

    def cost(self, model: str, served: str | None, usage: Usage | None) -> Decimal | None:
        cost = self.prices.cost(model, usage)
        if cost is None and served and served != model:
            cost = self.prices.cost(served, usage)
        if cost is None and usage is not None and model not in self._warned_unpriced:
            self._warned_unpriced.add(model)
            logger.warning(
                "no price for model %r: its cost is reported as unknown, not $0 "
                "(add it with prices= or ClientConfig(prices=...))",
                model,
            )
        return cost

    def fail(self, error: BaseException) -> None:
        """Count a failed request that has no record (``models()``)."""
        attempts = getattr(error, "attempts", 1)
        self.ledger.record_failure(error, retries=max(attempts - 1, 0))


def _summarise(exc: ValidationError) -> str:
    errs = exc.errors(include_url=False, include_input=False)
    parts = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in errs[:3]]
    return "; ".join(parts)
