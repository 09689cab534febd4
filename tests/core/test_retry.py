"""Retry decisions: pure functions of the policy, the attempt, the error and the time spent."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holysheep_core import errors as E
from holysheep_core.errors import error_from_response
from holysheep_core.policy.retry import GiveUp, Retry, RetryPolicy, backoff, decide

POLICY = RetryPolicy(
    max_retries=5,
    initial_delay=0.5,
    max_delay=8.0,
    multiplier=2.0,
    jitter=0.25,
    max_retry_after=60.0,
    deadline=120.0,
)


def status(code: int, **headers: str) -> E.APIStatusError:
    return error_from_response(code, headers, b'{"error": {"message": "x"}}')


# --- backoff ------------------------------------------------------------------------------


def test_backoff_doubles_from_the_initial_delay_then_stays_at_the_cap() -> None:
    delays = [backoff(POLICY, attempt, 0.0) for attempt in range(1, 8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_jitter_only_shortens_the_wait() -> None:
    assert backoff(POLICY, 3, 0.0) == 2.0
    assert backoff(POLICY, 3, 0.5) == 2.0 * (1 - 0.25 * 0.5)
    assert backoff(POLICY, 3, 0.999) > 2.0 * 0.75


def test_no_jitter_means_the_same_wait_whatever_rand_is() -> None:
    policy = dataclasses.replace(POLICY, jitter=0.0)
    assert {backoff(policy, 2, r) for r in (0.0, 0.3, 0.9)} == {1.0}


@settings(max_examples=300, deadline=None, database=None)
@given(
    attempt=st.integers(1, 60),
    rand=st.floats(0, 1, exclude_max=True),
    initial=st.floats(0, 10),
    cap=st.floats(0, 30),
    multiplier=st.floats(1, 4),
    jitter=st.floats(0, 1),
)
def test_backoff_stays_within_the_jitter_band_and_under_the_cap(
    attempt: int, rand: float, initial: float, cap: float, multiplier: float, jitter: float
) -> None:
    policy = RetryPolicy(initial_delay=initial, max_delay=cap, multiplier=multiplier, jitter=jitter)
    base = min(cap, initial * multiplier ** (attempt - 1))
    delay = backoff(policy, attempt, rand)
    assert 0 <= delay <= cap
    assert base * (1 - jitter) - 1e-9 <= delay <= base + 1e-9


def test_no_wait_policy_keeps_decisions_and_drops_waits() -> None:
    policy = RetryPolicy.no_wait(max_retries=3)
    assert policy.max_retries == 3
    assert decide(policy, 1, status(503), 0.0, 0.7) == Retry(0.0)


@pytest.mark.parametrize(
    "changes",
    [
        {"max_retries": -1},
        {"initial_delay": -1},
        {"max_delay": -0.1},
        {"multiplier": 0.5},
        {"jitter": 1.5},
        {"jitter": -0.1},
        {"deadline": 0},
    ],
)
def test_policy_refuses_nonsense(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**changes)


# --- what is retried ------------------------------------------------------------------------


@pytest.mark.parametrize("code", [408, 409, 429, 500, 502, 503, 504, 520])
def test_retry_on_timeouts_conflicts_rate_limits_and_server_errors(code: int) -> None:
    assert decide(POLICY, 1, status(code), 0.0, 0.0) == Retry(0.5)


@pytest.mark.parametrize("code", [400, 401, 403, 404, 405, 413, 418, 422])
def test_never_retry_other_client_errors(code: int) -> None:
    assert decide(POLICY, 1, status(code), 0.0, 0.0) == GiveUp("not retryable")


@pytest.mark.parametrize(
    "error", [E.APIConnectionError("reset"), E.APITimeoutError("read timed out")]
)
def test_retry_on_connection_errors_and_timeouts(error: E.HolySheepError) -> None:
    assert isinstance(decide(POLICY, 1, error, 0.0, 0.0), Retry)


@pytest.mark.parametrize(
    "error",
    [
        E.InvalidRequestError("bad"),
        E.ConfigurationError("bad key"),
        E.StreamError("cut mid-stream"),
        E.APIResponseValidationError("not json"),
        E.BudgetExceededError(
            "over", budget_usd=Decimal(1), spent_usd=Decimal(1), estimate_usd=Decimal(1)
        ),
        ValueError("not ours"),
        KeyError("not ours"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_never_retry_local_stream_or_foreign_errors(error: BaseException) -> None:
    assert isinstance(decide(POLICY, 1, error, 0.0, 0.0), GiveUp)


def test_should_retry_header_wins_both_ways() -> None:
    assert isinstance(decide(POLICY, 1, status(400, **{"x-should-retry": "true"}), 0, 0), Retry)
    assert isinstance(decide(POLICY, 1, status(503, **{"x-should-retry": "false"}), 0, 0), GiveUp)


# --- how long, and how many times -----------------------------------------------------------


def test_gives_up_after_max_retries_attempts_plus_one() -> None:
    policy = dataclasses.replace(POLICY, max_retries=2)
    assert isinstance(decide(policy, 1, status(503), 0, 0), Retry)
    assert isinstance(decide(policy, 2, status(503), 0, 0), Retry)
    verdict = decide(policy, 3, status(503), 0, 0)
    assert isinstance(verdict, GiveUp)
    assert "3 attempts" in verdict.reason and "max_retries=2" in verdict.reason


def test_zero_retries_means_one_attempt() -> None:
    policy = dataclasses.replace(POLICY, max_retries=0)
    assert isinstance(decide(policy, 1, status(503), 0, 0), GiveUp)
    # Even when the server says when to come back: 0 turns retries off.
    assert isinstance(decide(policy, 1, status(429, **{"retry-after": "1"}), 0, 0), GiveUp)


def test_a_burst_of_timed_429s_is_ridden_out_past_max_retries() -> None:
    policy = dataclasses.replace(POLICY, max_retries=2, max_server_retries=10)
    timed = status(429, **{"retry-after": "0.05"})
    for attempt in range(1, 11):
        assert decide(policy, attempt, timed, attempt * 0.05, 0) == Retry(0.05)
    verdict = decide(policy, 11, timed, 0.55, 0)
    assert isinstance(verdict, GiveUp) and "max_server_retries=10" in verdict.reason
    # Untimed failures still stop at max_retries.
    assert isinstance(decide(policy, 3, status(429), 0.1, 0), GiveUp)


def test_timed_retries_still_stop_at_the_deadline() -> None:
    policy = dataclasses.replace(POLICY, max_server_retries=100, deadline=2.0)
    verdict = decide(policy, 30, status(429, **{"retry-after": "0.1"}), 1.95, 0)
    assert isinstance(verdict, GiveUp) and "deadline" in verdict.reason


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "60"}, 60.0),  # at the cap is still honoured
    ],
)
def test_retry_after_replaces_the_backoff_exactly(headers: dict[str, str], wait: float) -> None:
    # No jitter on a server's explicit wait: rand=0.9 would shorten a backoff.
    assert decide(POLICY, 1, status(429, **headers), 0.0, 0.9) == Retry(wait)


def test_retry_after_is_honoured_even_above_max_delay() -> None:
    assert decide(POLICY, 1, status(503, **{"retry-after": "20"}), 0.0, 0.0) == Retry(20.0)


@pytest.mark.parametrize("value", ["61", "3600"])
def test_retry_after_above_the_cap_fails_fast_and_says_why(value: str) -> None:
    verdict = decide(POLICY, 1, status(429, **{"retry-after": value}), 0.0, 0.0)
    assert isinstance(verdict, GiveUp)
    assert "max_retry_after=60s" in verdict.reason
    assert "retry after" in verdict.reason


def test_deadline_stops_a_retry_that_would_end_past_it() -> None:
    policy = dataclasses.replace(POLICY, deadline=10.0)
    assert decide(policy, 1, status(503), 9.0, 0.0) == Retry(0.5)
    verdict = decide(policy, 1, status(503), 9.6, 0.0)
    assert isinstance(verdict, GiveUp)
    assert "deadline of 10s" in verdict.reason


def test_deadline_applies_to_retry_after_too() -> None:
    policy = dataclasses.replace(POLICY, deadline=10.0)
    verdict = decide(policy, 1, status(429, **{"retry-after": "5"}), 6.0, 0.0)
    assert isinstance(verdict, GiveUp)
    assert "deadline" in verdict.reason


def test_no_deadline_means_no_time_cap() -> None:
    policy = dataclasses.replace(POLICY, deadline=None)
    assert decide(policy, 1, status(503), 1e9, 0.0) == Retry(0.5)


@settings(max_examples=300, deadline=None, database=None)
@given(
    attempt=st.integers(1, 10),
    elapsed=st.floats(0, 200),
    rand=st.floats(0, 1, exclude_max=True),
    retry_after=st.one_of(st.none(), st.floats(0, 100)),
    code=st.sampled_from([408, 409, 429, 500, 503]),
)
def test_a_retry_never_crosses_the_deadline_or_the_caps(
    attempt: int, elapsed: float, rand: float, retry_after: float | None, code: int
) -> None:
    headers = {} if retry_after is None else {"retry-after": repr(retry_after)}
    verdict = decide(POLICY, attempt, status(code, **headers), elapsed, rand)
    if isinstance(verdict, Retry):
        if retry_after is None:
            assert attempt <= POLICY.max_retries
        else:
            assert attempt <= POLICY.max_server_retries
        assert elapsed + verdict.delay < POLICY.deadline
        assert verdict.delay <= max(POLICY.max_delay, POLICY.max_retry_after)
        if retry_after is not None:
            assert verdict.delay == retry_after
