"""When to retry a failed attempt and how long to wait: pure decisions, no clock, no sleep.

Both the sync and the async client ask :func:`decide` after each failed attempt and do what
it says; neither holds retry logic of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import (
    APIConnectionError,
    APIStatusError,
    HolySheepError,
)

__all__ = ["GiveUp", "Retry", "RetryPolicy", "backoff", "decide"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How a client retries. Frozen data, one per client; override per call with ``replace``.

    ``max_retries`` counts retries, so a call makes at most ``max_retries + 1`` attempts,
    except when the server says when to come back: an answer with ``Retry-After`` (at most
    ``max_retry_after``) is retried up to ``max_server_retries`` times, as long as the
    deadline allows, so a burst of 429s is ridden out rather than failed after two quick
    retries. ``max_retries=0`` turns every retry off.
    ``deadline`` caps the whole call, attempts and waits together, however slowly the
    server sends its bytes (seconds, None = no cap); for a stream it caps everything up to
    the answer's headers, after which each read is timed by ``Timeouts.read``.
    ``stream_deadline`` caps a stream from the call's start to its last byte (seconds,
    None = no cap: a long reasoning stream may legitimately take minutes).
    A ``Retry-After`` above ``max_retry_after`` fails fast instead of parking the caller.
    """

    max_retries: int = 2
    max_server_retries: int = 20
    initial_delay: float = 0.5
    max_delay: float = 8.0
    multiplier: float = 2.0
    jitter: float = 0.25
    max_retry_after: float = 60.0
    deadline: float | None = 120.0
    stream_deadline: float | None = None

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.max_server_retries < 0:
            raise ValueError("max_retries and max_server_retries must be >= 0")
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("delays must be >= 0 and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        if self.deadline is not None and self.deadline <= 0:
            raise ValueError("deadline must be > 0 or None")
        if self.stream_deadline is not None and self.stream_deadline <= 0:
            raise ValueError("stream_deadline must be > 0 or None")

    @classmethod
    def no_wait(cls, max_retries: int = 2) -> RetryPolicy:
        """Test mode: the same decisions, with every backoff zero."""
        return cls(max_retries=max_retries, initial_delay=0.0, max_delay=0.0, jitter=0.0)


@dataclass(frozen=True, slots=True)
class Retry:
    delay: float
    """Seconds to wait before the next attempt."""


@dataclass(frozen=True, slots=True)
class GiveUp:
    reason: str
    """Why no further attempt is made, for the error's notes and the logs."""


def backoff(policy: RetryPolicy, attempt: int, rand: float) -> float:
    """Delay after failed attempt ``attempt`` (1-based), with ``rand`` drawn from [0, 1).

    ``d = min(max_delay, initial_delay * multiplier ** (attempt - 1))``, then
    ``d * (1 - jitter * rand)``: jitter only ever shortens the wait, so the cap holds and a
    herd of callers spreads out over ``[d * (1 - jitter), d]``.
    """
    base = min(policy.max_delay, policy.initial_delay * policy.multiplier ** (attempt - 1))
    return base * (1.0 - policy.jitter * rand)


def is_retryable(error: BaseException) -> bool:
    """Whether an error may succeed on a new attempt (``x-should-retry`` wins when sent)."""
    if isinstance(error, APIStatusError):
        return error.is_retryable
    return isinstance(error, APIConnectionError)


def decide(
    policy: RetryPolicy, attempt: int, error: BaseException, elapsed: float, rand: float
) -> Retry | GiveUp:
    """Retry or give up after failed attempt ``attempt``, ``elapsed`` seconds into the call."""
    if not isinstance(error, HolySheepError) or not is_retryable(error):
        return GiveUp("not retryable")
    server_wait = getattr(error, "retry_after", None)
    if server_wait is None or policy.max_retries == 0:
        if attempt > policy.max_retries:
            return GiveUp(f"gave up after {attempt} attempts (max_retries={policy.max_retries})")
    elif attempt > max(policy.max_retries, policy.max_server_retries):
        return GiveUp(
            f"gave up after {attempt} attempts, each answered with Retry-After "
            f"(max_server_retries={policy.max_server_retries})"
        )
    if server_wait is not None:
        if server_wait > policy.max_retry_after:
            return GiveUp(
                f"server asked to retry after {server_wait:.1f}s, above "
                f"max_retry_after={policy.max_retry_after:g}s"
            )
        delay = server_wait
    else:
        delay = backoff(policy, attempt, rand)
    if policy.deadline is not None and elapsed + delay >= policy.deadline:
        return GiveUp(
            f"a retry in {delay:.2f}s would pass the call's deadline of {policy.deadline:g}s"
        )
    return Retry(delay)
