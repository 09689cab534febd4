"""The books of one call: :class:`CallRecord`.

A call (a chat completion, a stream, an embeddings call) gets one record when it starts.
The record owns what the call leaves behind: its attempts, its timing, the settlement of
what its policies hold (budgets, limiter estimate, breaker verdict), its ledger entry and
its ``on_usage`` hooks. It ends exactly once, whichever way the call goes:

* :meth:`finished`: the server answered and reported its usage (or not);
* :meth:`failed`: an error, with whatever usage the server had reported before it (a
  stream that broke after its usage chunk was billed for it);
* :meth:`abandoned`: the caller left a stream before its end;
* :meth:`cancelled`: the caller went away (a cancelled task, Ctrl-C) while an attempt was
  on the wire, so the server may bill it.

Later calls to any of them do nothing, so the code around a call never has to know whether
another path already booked it. Parsing an answer stays pure: the record books it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from .accounting import TokenUsage
from .hooks import UsageRecorded, run_hooks

if TYPE_CHECKING:
    from .pipeline import Pipeline, Served
    from .policy.guard import CallGuard
    from .types import Usage

__all__ = ["CallRecord"]


class CallRecord:
    """The books of one call, closed exactly once (see the module docstring)."""

    __slots__ = (
        "attempts",
        "ended",
        "guard",
        "model",
        "pipeline",
        "request_id",
        "started",
        "stream",
        "ttft",
    )

    def __init__(self, pipeline: Pipeline, model: str, *, stream: bool = False) -> None:
        self.pipeline = pipeline
        self.model = model
        """The model booked: the requested one, then the one that answered."""
        self.stream = stream
        self.started = pipeline.clock()
        self.attempts = 0
        """HTTP attempts sent so far (every model of a fallback chain), counted by the
        client's driver."""
        self.guard: CallGuard | None = None
        """What the policies hold once the flow handed the call over (a 2xx answer)."""
        self.request_id: str | None = None
        self.ttft: float | None = None
        self.ended = False

    def served(self, served: Served) -> None:
        """The flow ended with a 2xx answer: the record takes over what it held."""
        self.model = served.model
        self.guard = served.guard
        self.request_id = served.reply.request_id

    def first_token(self) -> None:
        if self.ttft is None:
            self.ttft = self.pipeline.clock() - self.started

    # --- the four ends ------------------------------------------------------------------

    def finished(self, usage: Usage | None, served_model: str | None = None) -> Decimal | None:
        """The call succeeded: book its usage (None: not reported) and return its cost
        (None: unknown, never 0)."""
        if self.ended:
            return None
        self.ended = True
        p = self.pipeline
        cost = self._cost(usage, served_model)
        self._settle(usage, cost, answered=True)
        tokens = TokenUsage.from_usage(usage, cost)
        latency = p.clock() - self.started
        p.ledger.record_success(
            self.model, tokens, latency, retries=self._retries(), ttft=self.ttft
        )
        if p.config.on_usage:
            run_hooks(
                p.config.on_usage,
                UsageRecorded(
                    model=self.model,
                    usage=tokens,
                    latency=latency,
                    stream=self.stream,
                    request_id=self.request_id,
                ),
            )
        return cost

    def failed(
        self, error: BaseException, usage: Usage | None = None, *, answered: bool = False
    ) -> None:
        """The call failed. ``usage`` is what the server reported before it failed (booked
        to the ledger and the budgets); ``answered``: a 2xx came back (an answer that does
        not parse, a stream that broke), so the server may bill it even without usage."""
        if self.ended:
            return
        self.ended = True
        attempts = getattr(error, "attempts", None)
        if not self.attempts and isinstance(attempts, int):
            self.attempts = attempts
        cost = self._cost(usage, None) if usage is not None else None
        self._settle(usage, cost, answered=answered)
        tokens = None if usage is None else TokenUsage.from_usage(usage, cost)
        self.pipeline.ledger.record_failure(
            error, retries=self._retries(), model=self.model, usage=tokens
        )

    def abandoned(self) -> None:
        """The caller left a stream before its end: the server may bill all of it."""
        if self.ended:
            return
        self.ended = True
        self._settle(None, None, answered=True)
        self.pipeline.ledger.record_abandoned(
            self.model, None, retries=self._retries(), ttft=self.ttft
        )

    def cancelled(self) -> None:
        """The caller went away with an attempt on the wire (the flow has given back what
        its policies held; the budget keeps the estimate, since the server may bill it)."""
        if self.ended:
            return
        self.ended = True
        self.pipeline.ledger.record_cancelled(self.model, retries=self._retries())

    # --- helpers ------------------------------------------------------------------------

    def _retries(self) -> int:
        return max(self.attempts - 1, 0)

    def _cost(self, usage: Usage | None, served_model: str | None) -> Decimal | None:
        if usage is not None and usage.unreported:
            return None  # part of it is unknown: so is its cost
        return self.pipeline.cost(self.model, served_model, usage)

    def _settle(self, usage: Usage | None, cost: Decimal | None, *, answered: bool) -> None:
        guard, self.guard = self.guard, None
        if guard is None:
            return
        policies = self.pipeline.policies
        if usage is not None and usage.unreported:
            usage = None  # its total is a lower bound: no correction from it
        if usage is not None or answered:
            policies.settle(guard, usage, cost)
        else:
            policies.release(guard)
