"""The request lifecycle shared by the sync and async clients, written once.

:meth:`Pipeline.attempts` is a generator that yields what to do next, a
:class:`~holysheep_core.transport.base.Send` (make this HTTP attempt, send back the
:class:`Reply` or the error) or a :class:`Wait` (sleep this long), and returns the
successful reply. The clients only drive it: ``time.sleep`` or ``asyncio.sleep``, a sync
or an async transport. Every decision lives here or in :mod:`holysheep_core.policy`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from .accounting import Ledger, TokenUsage
from .config import ClientConfig
from .errors import APIResponseValidationError, APITimeoutError, HolySheepError, error_from_response
from .hooks import RetryScheduled, UsageRecorded, log_retry, logger, run_hooks
from .policy.retry import GiveUp, decide
from .transport.base import Reply, Send
from .types import Usage

__all__ = ["Flow", "Pipeline", "Wait"]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float


Flow = Generator["Send | Wait", "Reply | HolySheepError | None", tuple[Reply, int]]


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
        self._warned_unpriced: set[str] = set()

    def attempts(self, send: Send, *, model: str) -> Flow:
        """Yield attempts and waits until a 2xx reply; raise the last error otherwise."""
        policy = self.config.retry
        read_timeout = self.config.timeout.read
        clock = self.clock
        start = clock()
        attempt = 0
        while True:
            attempt += 1
            request = send
            if policy.deadline is not None:
                remaining = policy.deadline - (clock() - start)
                if remaining <= 0:
                    raise APITimeoutError(
                        f"the call's deadline of {policy.deadline:g}s passed", attempts=attempt
                    )
                if remaining < read_timeout:
                    request = replace(send, timeout=remaining)
            outcome = yield request
            if isinstance(outcome, Reply):
                if outcome.ok:
                    return outcome, attempt
                error: HolySheepError = error_from_response(
                    outcome.status,
                    outcome.headers,
                    outcome.body,
                    method=send.method,
                    url=self.config.base_url + send.path,
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
            run_hooks(
                self._on_retry,
                RetryScheduled(
                    model=model,
                    attempt=attempt,
                    wait_for=decision.delay,
                    error_type=type(error).__name__,
                    message=error.message,
                    status_code=error.status_code,
                    request_id=error.request_id,
                ),
            )
            yield Wait(decision.delay)

    # --- after the flow: parse, price, book ------------------------------------------

    def parse(self, reply: Reply, model_type: type[M]) -> M:
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

    def book(
        self,
        model: str,
        served: str | None,
        usage: Usage | None,
        *,
        started: float,
        attempts: int,
        request_id: str | None,
        stream: bool = False,
        ttft: float | None = None,
    ) -> Decimal | None:
        """Record one successful call once, and return its cost."""
        cost = self.cost(model, served, usage)
        tokens = TokenUsage.from_usage(usage, cost)
        latency = self.clock() - started
        self.ledger.record_success(model, tokens, latency, retries=attempts - 1, ttft=ttft)
        if self.config.on_usage:
            run_hooks(
                self.config.on_usage,
                UsageRecorded(
                    model=model,
                    usage=tokens,
                    latency=latency,
                    stream=stream,
                    request_id=request_id,
                ),
            )
        return cost

    def fail(self, error: BaseException) -> None:
        attempts = getattr(error, "attempts", 1)
        self.ledger.record_failure(error, retries=max(attempts - 1, 0))


def _summarise(exc: ValidationError) -> str:
    errs = exc.errors(include_url=False, include_input=False)
    parts = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in errs[:3]]
    return "; ".join(parts)
