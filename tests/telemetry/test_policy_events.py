"""Failures and policy decisions as the span shows them: error type and status, and one span
event, with its reason, per retry, fallback, breaker change, rate-limit wait or refusal."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.trace import StatusCode
from otel_helpers import KEY

from holysheep_core import (
    APIResponseValidationError,
    BadRequestError,
    BreakerPolicy,
    BudgetExceededError,
    CircuitOpenError,
    RateLimits,
    RetryPolicy,
    StreamError,
)
from holysheep_core.emulator import Fault

MODEL, BACKUP = "gpt-4.1", "deepseek-v3.2"
HI = [{"role": "user", "content": "hello there"}]


def events(span: Any, name: str) -> list[dict[str, Any]]:
    return [dict(e.attributes) for e in span.events if e.name == name]


def test_an_error_sets_the_span_status_and_error_type(otel: Any, make_client: Any, emulator: Any):
    client = make_client()
    emulator.inject(Fault.status(400))
    with pytest.raises(BadRequestError) as raised:
        client.chat_completion(model=MODEL, messages=HI)
    span = otel.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "BadRequestError"
    assert span.attributes["http.response.status_code"] == 400
    assert "gen_ai.usage.input_tokens" not in span.attributes
    (exc,) = events(span, "exception")
    assert exc["exception.type"] == "BadRequestError"
    assert exc["exception.message"] == str(raised.value)
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "BadRequestError"
    assert otel.points("gen_ai.client.token.usage") == []


def test_each_retry_is_an_event_with_its_reason(otel: Any, make_client: Any, emulator: Any):
    client = make_client(retry=RetryPolicy.no_wait(max_retries=3))
    emulator.inject(Fault.status(503), times=2)
    completion = client.chat_completion(model=MODEL, messages=HI)
    span = otel.span()
    retries = events(span, "holysheep.retry")
    assert [
        (r["holysheep.attempt"], r["error.type"], r["http.response.status_code"]) for r in retries
    ] == [
        (1, "InternalServerError", 503),
        (2, "InternalServerError", 503),
    ]
    assert all(r["holysheep.reason"] and "holysheep.retry.wait_s" in r for r in retries)
    assert span.attributes["holysheep.attempts"] == completion.attempts == 3
    assert span.status.status_code is StatusCode.UNSET  # the call succeeded in the end


def test_a_fallback_is_an_event_and_the_served_model_an_attribute(
    otel: Any, make_client: Any, emulator: Any
):
    client = make_client(retry=RetryPolicy.no_wait(max_retries=1), fallback_models=(BACKUP,))
    emulator.inject(Fault.status(503), times=2)
    completion = client.chat_completion(model=MODEL, messages=HI)
    span = otel.span()
    assert span.name == f"chat {MODEL}"  # named for the model asked for
    assert span.attributes["gen_ai.request.model"] == MODEL
    assert span.attributes["holysheep.served_model"] == BACKUP == completion.served_model
    assert span.attributes["gen_ai.response.model"] == completion.model
    (moved,) = events(span, "holysheep.fallback")
    assert moved["holysheep.fallback.from"] == MODEL
    assert moved["holysheep.fallback.to"] == BACKUP
    assert moved["error.type"] == "InternalServerError"
    assert [e.name for e in span.events] == ["holysheep.retry", "holysheep.fallback"]
    (cost,) = otel.points("holysheep.client.cost")
    assert cost.attributes["holysheep.served_model"] == BACKUP


def test_breaker_transitions_and_refusals_are_events(otel: Any, make_client: Any, emulator: Any):
    client = make_client(
        retry=RetryPolicy.no_wait(max_retries=0),
        breaker=BreakerPolicy(failure_threshold=2, cool_down=60),
    )
    emulator.inject(Fault.status(500), times=2)
    for _ in range(2):
        with pytest.raises(Exception):  # noqa: B017 - the 500s
            client.chat_completion(model=MODEL, messages=HI)
    with pytest.raises(CircuitOpenError):
        client.chat_completion(model=MODEL, messages=HI)
    first, second, refused = otel.spans()
    assert events(first, "holysheep.breaker.transition") == []
    (opened,) = events(second, "holysheep.breaker.transition")
    assert (opened["holysheep.breaker.from"], opened["holysheep.breaker.to"]) == ("closed", "open")
    assert opened["holysheep.reason"] == "opened after 2 consecutive failures"
    assert opened["holysheep.breaker.retry_after_s"] == pytest.approx(60, abs=1)
    assert refused.attributes["error.type"] == "CircuitOpenError"
    (why,) = events(refused, "holysheep.breaker.refused")
    assert "no request was sent" in why["holysheep.reason"]
    assert len(emulator.requests) == 2


def test_a_budget_refusal_is_an_event_with_its_reason(otel: Any, make_client: Any, emulator: Any):
    client = make_client(budget_usd="0.000001")
    with pytest.raises(BudgetExceededError) as refused:
        client.chat_completion(model=MODEL, messages=HI, max_tokens=100)
    span = otel.span()
    assert span.attributes["error.type"] == "BudgetExceededError"
    (why,) = events(span, "holysheep.budget.refused")
    assert why["holysheep.reason"] == str(refused.value)
    assert emulator.requests == []  # refused before anything was sent


def test_a_rate_limit_wait_is_an_event(otel: Any, make_client: Any) -> None:
    # One request a second: the second call waits for its turn, unless the first one took
    # a whole second (a limit low enough that a busy machine does not make the wait vanish).
    client = make_client(rate_limits=RateLimits(requests_per_second=1, request_burst=1))
    client.chat_completion(model=BACKUP, messages=HI)
    client.chat_completion(model=BACKUP, messages=HI)
    first, second = otel.spans()
    assert events(first, "holysheep.rate_limit.wait") == []
    (waited,) = events(second, "holysheep.rate_limit.wait")
    assert 0 < waited["holysheep.wait_s"] <= 1.0
    assert waited["holysheep.reason"]


def test_a_new_turn_taken_after_waking_late_is_an_event_too(
    otel: Any, make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from holysheep_core import client as client_module

    # The process oversleeps its first wait (starved for CPU): past its turn, the call
    # takes a new one and waits again; the span shows both waits.
    overslept: list[float] = []

    def sleep(seconds: float) -> None:
        time.sleep(seconds + (0.0 if overslept else 0.3))
        overslept.append(seconds)

    monkeypatch.setattr(
        client_module,
        "time",
        SimpleNamespace(sleep=sleep, monotonic=time.monotonic, perf_counter=time.perf_counter),
    )
    client = make_client(rate_limits=RateLimits(requests_per_second=1, request_burst=1))
    client.chat_completion(model=BACKUP, messages=HI)
    client.chat_completion(model=BACKUP, messages=HI)
    second = otel.spans()[1]
    waits = [e["holysheep.wait_s"] for e in events(second, "holysheep.rate_limit.wait")]
    assert len(waits) == 2
    assert waits == pytest.approx(overslept)


def test_a_stream_that_breaks_ends_its_span_with_the_error(
    otel: Any, make_client: Any, emulator: Any
):
    client = make_client()
    emulator.inject(Fault.drop_mid_stream(after=2))
    stream = client.stream_chat_completion(model=BACKUP, messages=HI)
    with pytest.raises(StreamError):
        for _ in stream:
            pass
    span = otel.span()
    assert span.attributes["error.type"] == "StreamConnectionError"
    assert span.status.status_code is StatusCode.ERROR


def test_the_key_is_in_no_span_or_metric(otel_with_content: Any, make_client: Any, emulator: Any):
    client = make_client(
        retry=RetryPolicy.no_wait(max_retries=1),
        fallback_models=(BACKUP,),
        breaker=BreakerPolicy(failure_threshold=5, cool_down=60),
    )
    emulator.inject(Fault.status(503), times=2)
    client.chat_completion(model=MODEL, messages=[{"role": "user", "content": f"say {KEY}"}])
    emulator.inject(Fault.status(401))
    with pytest.raises(Exception):  # noqa: B017 - the 401
        client.chat_completion(model=BACKUP, messages=HI)
    for _ in client.stream_chat_completion(
        model=BACKUP, messages=[{"role": "user", "content": KEY}]
    ):
        pass
    dumped = [s.to_json() for s in otel_with_content.spans()]
    assert len(dumped) == 3
    assert any("[redacted]" in d for d in dumped)  # the prompts quoted it
    assert not [d for d in dumped if KEY in d]
    metrics = otel_with_content.reader.get_metrics_data().to_json()
    assert KEY not in metrics
    assert json.loads(metrics)  # and it is all there


async def test_a_cancelled_call_ends_its_span_as_cancelled(
    otel: Any, make_async_client: Any, emulator: Any
):
    client = make_async_client()
    emulator.inject(Fault.slow_first_byte(1.0))  # cancelled long before it answers
    task = asyncio.create_task(client.chat_completion(model=BACKUP, messages=HI))
    while not emulator.requests:  # the request is on the wire
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    span = otel.span()
    assert span.attributes["error.type"] == "cancelled"
    assert span.status.status_code is StatusCode.ERROR


def test_an_answer_that_does_not_parse_fails_the_span(otel: Any, make_client: Any, emulator: Any):
    client = make_client()
    emulator.inject(Fault.wrong_content_type())
    with pytest.raises(APIResponseValidationError):
        client.chat_completion(model=BACKUP, messages=HI)
    span = otel.span()
    assert span.attributes["error.type"] == "APIResponseValidationError"
    assert span.status.status_code is StatusCode.ERROR
