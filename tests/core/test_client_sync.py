"""HolySheepClient against real loopback servers: the emulator, and the scripted server where
a test needs a byte-exact answer the emulator does not give."""

from __future__ import annotations

import json
import logging
import socket
import threading
from decimal import Decimal
from typing import Any

import pytest

from holysheep_core import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientConfig,
    ContextLengthExceededError,
    HolySheepClient,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    PriceTable,
    RateLimitError,
    RetryPolicy,
    RetryScheduled,
    StreamError,
    UnprocessableEntityError,
    UsageRecorded,
)
from holysheep_core.emulator import Fault, reply_to
from holysheep_core.shared import shared_client

MODEL = "deepseek-v3.2"
HI = [{"role": "user", "content": "hi there"}]
LONG = [{"role": "user", "content": " ".join(f"word{i}" for i in range(120))}]


# --- a plain call ---------------------------------------------------------------------------


def test_chat_completion_round_trip(emulator: Any, make_client: Any) -> None:
    client = make_client()
    completion = client.chat_completion(model=MODEL, messages=HI, temperature=0.2)
    assert completion.choices[0].message.content == reply_to("hi there")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == MODEL
    assert completion.attempts == 1
    usage = completion.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0
    assert completion.cost_usd == client.prices.cost(MODEL, usage)
    assert completion.cost_usd > 0
    [seen] = emulator.requests
    assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
    assert seen.body == {"model": MODEL, "messages": HI, "temperature": 0.2}
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["user-agent"].startswith("holysheep-integrations/")


def test_stats_after_a_call(make_client: Any) -> None:
    client = make_client()
    completion = client.chat_completion(model=MODEL, messages=HI)
    stats = client.stats()
    assert (stats.requests, stats.successes, stats.errors, stats.retries) == (1, 1, {}, 0)
    assert stats.latency_p50 is not None and stats.latency_p50 >= 0
    assert stats.ttft_p50 is None  # not a stream
    assert stats.usage.input_tokens == completion.usage.prompt_tokens
    assert stats.usage.output_tokens == completion.usage.completion_tokens
    assert stats.by_model[MODEL].usage.cost_usd == completion.cost_usd


def test_unknown_fields_are_tolerated_and_kept(scripted: Any, make_client: Any) -> None:
    body = scripted.completion()
    body["provider_extra"] = {"region": "sg"}
    body["choices"][0]["message"]["annotations"] = []
    body["choices"][0]["new_choice_field"] = 1
    body["usage"]["prompt_cache_hit_tokens"] = 3
    scripted.queue(scripted.Answer(body=body))
    completion = make_client(base_url=scripted.url).chat_completion(model=MODEL, messages=HI)
    assert completion.provider_extra == {"region": "sg"}
    assert completion.choices[0].message.annotations == []
    assert completion.choices[0].new_choice_field == 1
    assert completion.usage.prompt_cache_hit_tokens == 3
    assert completion.choices[0].message.content == "".join(scripted.WORDS)


@pytest.mark.parametrize(
    "body",
    [
        {"id": "x", "object": "chat.completion", "model": MODEL},
        {"id": "x", "object": "chat.completion", "model": MODEL, "choices": []},
        {"id": "x", "choices": [{"index": 0}]},
        ["not", "an", "object"],
    ],
    ids=["no choices", "empty choices", "choice without message", "a list"],
)
def test_a_completion_that_is_not_one_is_a_typed_error(
    scripted: Any, make_client: Any, body: Any
) -> None:
    scripted.queue(scripted.Answer(body=json.dumps(body).encode(), content_type="application/json"))
    client = make_client(base_url=scripted.url)
    with pytest.raises(APIResponseValidationError) as info:
        client.chat_completion(model=MODEL, messages=HI)
    assert info.value.request_id == "req-1"
    assert len(scripted.requests) == 1  # a malformed success is not retried
    stats = client.stats()
    assert stats.errors == {"APIResponseValidationError": 1}
    assert (stats.requests, stats.successes) == (1, 0)


def test_html_200_is_a_typed_error(emulator: Any, make_client: Any) -> None:
    emulator.inject(Fault.wrong_content_type())
    with pytest.raises(APIResponseValidationError) as info:
        make_client().chat_completion(model=MODEL, messages=HI)
    assert "text/html" in str(info.value)


# --- error answers ----------------------------------------------------------------------------


def test_wrong_key_is_an_authentication_error_and_not_retried(
    emulator: Any, make_client: Any
) -> None:
    with pytest.raises(AuthenticationError) as info:
        make_client(api_key="hs-wrong-key-000000").chat_completion(model=MODEL, messages=HI)
    assert info.value.status_code == 401
    assert info.value.request_id.startswith("req_")
    assert "Incorrect API key" in str(info.value)
    assert len(emulator.requests) == 1


def test_unknown_model_is_not_found(make_client: Any) -> None:
    with pytest.raises(NotFoundError):
        make_client().chat_completion(model="no-such-model", messages=HI)


def test_context_overflow_is_its_own_class(make_client: Any) -> None:
    with pytest.raises(ContextLengthExceededError) as info:
        make_client().chat_completion(model="tiny-small-context", messages=LONG * 20)
    assert isinstance(info.value, BadRequestError)
    assert not info.value.is_retryable


def test_html_502_page_gives_a_readable_typed_error(emulator: Any, make_client: Any) -> None:
    emulator.inject(Fault.status(502, body="html"))
    with pytest.raises(InternalServerError) as info:
        make_client(max_retries=0).chat_completion(model=MODEL, messages=HI)
    assert info.value.status_code == 502
    assert "non-JSON HTML page" in info.value.message
    assert "<" not in info.value.message


# --- retries --------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [408, 409, 429, 500, 502, 503, 504])
def test_retryable_status_is_retried_with_backoff(
    emulator: Any, make_client: Any, fake_time: Any, code: int
) -> None:
    client = make_client()
    clock = fake_time(client)
    emulator.inject(Fault.status(code))
    completion = client.chat_completion(model=MODEL, messages=HI)
    assert completion.attempts == 2
    assert len(emulator.requests) == 2
    assert clock.sleeps == [client.config.retry.initial_delay]  # FAST_RETRY has no jitter


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (422, UnprocessableEntityError),
    ],
)
def test_other_client_errors_are_never_retried(
    emulator: Any, make_client: Any, fake_time: Any, code: int, error: type
) -> None:
    client = make_client()
    clock = fake_time(client)
    emulator.inject(Fault.status(code), times=3)
    with pytest.raises(error):
        client.chat_completion(model=MODEL, messages=HI)
    assert len(emulator.requests) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("fault", "wait"),
    [
        (Fault.status(429, retry_after_ms=250), 0.25),
        (Fault.status(503, retry_after=2), 2.0),
        (Fault.status(429, retry_after=3, retry_after_ms=1500), 1.5),
        (Fault.status(429, retry_after=0), 0.0),
    ],
    ids=["retry-after-ms", "seconds", "ms wins", "zero"],
)
def test_retry_after_is_honoured(
    emulator: Any, make_client: Any, fake_time: Any, fault: Fault, wait: float
) -> None:
    client = make_client()
    clock = fake_time(client)
    emulator.inject(fault)
    assert client.chat_completion(model=MODEL, messages=HI).attempts == 2
    assert clock.sleeps == [wait]


def test_retry_after_as_an_http_date_is_honoured(
    emulator: Any, make_client: Any, fake_time: Any
) -> None:
    client = make_client()
    clock = fake_time(client)
    emulator.inject(Fault.status(429, retry_after=30, retry_after_date=True))
    client.chat_completion(model=MODEL, messages=HI)
    [wait] = clock.sleeps
    assert 27 <= wait <= 30  # HTTP dates have whole seconds; the wall clock moved on a bit


def test_retry_after_above_the_cap_fails_fast_and_says_why(
    emulator: Any, make_client: Any, fake_time: Any
) -> None:
    client = make_client(retry=RetryPolicy(max_retries=3, max_retry_after=60))
    clock = fake_time(client)
    emulator.inject(Fault.status(429, retry_after=600))
    with pytest.raises(RateLimitError) as info:
        client.chat_completion(model=MODEL, messages=HI)
    assert info.value.retry_after == 600
    assert clock.sleeps == []
    assert len(emulator.requests) == 1
    [note] = info.value.__notes__
    assert "600.0s" in note and "max_retry_after=60s" in note


def test_should_retry_false_stops_a_retry(emulator: Any, make_client: Any) -> None:
    emulator.inject(Fault.status(503, should_retry=False))
    with pytest.raises(InternalServerError) as info:
        make_client().chat_completion(model=MODEL, messages=HI)
    assert not info.value.is_retryable
    assert len(emulator.requests) == 1


def test_should_retry_true_retries_a_client_error(emulator: Any, make_client: Any) -> None:
    emulator.inject(Fault.status(400, should_retry=True))
    assert make_client().chat_completion(model=MODEL, messages=HI).attempts == 2


def test_retries_give_up_after_max_retries_and_say_so(
    emulator: Any, make_client: Any, fake_time: Any
) -> None:
    policy = RetryPolicy(max_retries=2, initial_delay=1, multiplier=3, jitter=0)
    client = make_client(retry=policy)
    clock = fake_time(client)
    emulator.inject(Fault.status(503), times=5)
    with pytest.raises(InternalServerError) as info:
        client.chat_completion(model=MODEL, messages=HI)
    assert len(emulator.requests) == 3
    assert clock.sleeps == [1, 3]
    assert info.value.attempts == 3
    assert info.value.__notes__ == ["gave up after 3 attempts (max_retries=2)"]
    stats = client.stats()
    assert (stats.requests, stats.successes, stats.retries) == (1, 0, 2)
    assert stats.errors == {"InternalServerError": 1}


def test_the_deadline_caps_retries(emulator: Any, make_client: Any, fake_time: Any) -> None:
    policy = RetryPolicy(max_retries=10, initial_delay=1, multiplier=2, max_delay=60, jitter=0,
                         deadline=5)  # fmt: skip
    client = make_client(retry=policy)
    clock = fake_time(client)
    emulator.inject(Fault.status(503), times=10)
    with pytest.raises(InternalServerError) as info:
        client.chat_completion(model=MODEL, messages=HI)
    assert clock.sleeps == [1, 2]  # the next wait (4 s) would end at 7 s > 5 s
    assert sum(clock.sleeps) < policy.deadline
    assert "deadline of 5s" in info.value.__notes__[0]


def test_the_deadline_caps_a_slow_attempt(emulator: Any, make_client: Any) -> None:
    # A read timeout of 30 s, but 0.3 s left in the call: the attempt gets 0.3 s.
    client = make_client(timeout=30, retry=RetryPolicy(max_retries=3, deadline=0.3))
    emulator.inject(Fault.slow_first_byte(1.5))
    with pytest.raises(APITimeoutError) as info:
        client.chat_completion(model=MODEL, messages=HI)
    assert "deadline" in info.value.__notes__[0]


def test_a_retried_call_is_billed_once(emulator: Any, make_client: Any) -> None:
    client = make_client()
    emulator.inject(Fault.status(503))
    completion = client.chat_completion(model=MODEL, messages=HI)
    one_call = client.prices.cost(MODEL, completion.usage)
    stats = client.stats()
    assert completion.attempts == 2
    assert completion.cost_usd == one_call
    assert stats.usage.cost_usd == one_call
    assert stats.usage.requests == 1
    assert stats.usage.input_tokens == completion.usage.prompt_tokens
    assert (stats.requests, stats.retries) == (1, 1)


def test_connection_drop_before_the_answer_is_retried(scripted: Any, make_client: Any) -> None:
    scripted.queue(scripted.Answer(parts=[scripted.DROP]))
    completion = make_client(base_url=scripted.url).chat_completion(model=MODEL, messages=HI)
    assert completion.attempts == 2
    assert len(scripted.requests) == 2


def test_connection_refused_is_retried_then_a_connection_error(
    make_client: Any, fake_time: Any
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make_client(base_url=f"http://127.0.0.1:{port}/v1")
    clock = fake_time(client)
    with pytest.raises(APIConnectionError) as info:
        client.chat_completion(model=MODEL, messages=HI)
    assert info.value.attempts == 3
    assert len(clock.sleeps) == 2
    assert "gave up after 3 attempts" in info.value.__notes__[0]


def test_retry_hooks_see_each_retry_and_a_failing_hook_is_harmless(
    emulator: Any, make_client: Any
) -> None:
    seen: list[RetryScheduled] = []
    usage: list[UsageRecorded] = []

    def broken(_: object) -> None:
        raise RuntimeError("hook bug")

    client = make_client(on_retry=(seen.append, broken), on_usage=(usage.append, broken))
    emulator.inject(Fault.status(429, retry_after_ms=1))
    client.chat_completion(model=MODEL, messages=HI)
    [event] = seen
    assert (event.attempt, event.status_code, event.error_type) == (1, 429, "RateLimitError")
    assert event.wait_for == 0.001
    assert event.request_id.startswith("req_")
    [recorded] = usage
    assert recorded.model == MODEL and recorded.usage.requests == 1 and not recorded.stream


def test_a_timeout_is_retried(emulator: Any, make_client: Any) -> None:
    emulator.inject(Fault.slow_first_byte(1.0))
    client = make_client(timeout={"read": 0.2})
    assert client.chat_completion(model=MODEL, messages=HI).attempts == 2


# --- timeouts and the pool ------------------------------------------------------------------


def test_slow_first_byte_past_the_read_timeout(emulator: Any, make_client: Any) -> None:
    emulator.inject(Fault.slow_first_byte(1.0))
    with pytest.raises(APITimeoutError) as info:
        make_client(timeout={"read": 0.2}, max_retries=0).chat_completion(model=MODEL, messages=HI)
    assert "timed out" in str(info.value)
    assert "pool" not in str(info.value)


def test_slow_first_byte_within_the_read_timeout_is_fine(emulator: Any, make_client: Any) -> None:
    emulator.inject(Fault.slow_first_byte(0.1))
    assert make_client(timeout={"read": 5}).chat_completion(model=MODEL, messages=HI).attempts == 1


def test_a_saturated_pool_is_a_timeout_that_says_so(emulator: Any, make_client: Any) -> None:
    client = make_client(max_connections=1, timeout={"pool": 0.2}, max_retries=0)
    emulator.inject(Fault.stall_mid_stream(after=1, seconds=1.0))
    held = client.stream_chat_completion(model=MODEL, messages=HI)
    next(held)  # the only connection is now busy
    with pytest.raises(APITimeoutError) as info:
        client.chat_completion(model=MODEL, messages=HI)
    assert "pool is saturated" in str(info.value)
    held.close()
    assert client.chat_completion(model=MODEL, messages=HI).attempts == 1


# --- streaming ------------------------------------------------------------------------------


def test_stream_round_trip_with_usage_once_and_its_cost(emulator: Any, make_client: Any) -> None:
    client = make_client()
    with client.stream_chat_completion(model=MODEL, messages=HI) as stream:
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply_to("hi there")
    with_usage = [c for c in chunks if c.usage is not None]
    assert with_usage == [chunks[-1]] and chunks[-1].choices == []
    usage = chunks[-1].usage
    assert chunks[-1].cost_usd == client.prices.cost(MODEL, usage) > 0
    assert stream.request_id.startswith("req_")
    [seen] = emulator.requests
    assert seen.body["stream"] is True
    assert seen.body["stream_options"] == {"include_usage": True}
    stats = client.stats()
    assert (stats.requests, stats.successes, stats.streams_abandoned) == (1, 1, 0)
    assert stats.ttft_p50 is not None
    assert stats.usage.cost_usd == chunks[-1].cost_usd


def test_stream_usage_can_be_turned_off(emulator: Any, make_client: Any) -> None:
    client = make_client(include_usage=False)
    chunks = list(client.stream_chat_completion(model=MODEL, messages=HI))
    assert "stream_options" not in emulator.requests[0].body
    assert all(c.usage is None for c in chunks)
    assert client.stats().usage.cost_usd is None  # unknown, not $0


def test_stream_tool_calls_without_index_get_one(emulator: Any, make_client: Any) -> None:
    tools = [
        {"type": "function", "function": {"name": "get_weather", "description": "weather",
                                          "parameters": {"type": "object", "properties": {
                                              "city": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "get_time", "description": "time",
                                          "parameters": {"type": "object", "properties": {
                                              "zone": {"type": "string"}}}}},
    ]  # fmt: skip
    messages = [{"role": "user", "content": "What weather and time is it in Oslo?"}]
    client = make_client(default_headers={"x-emulator-quirks": "no-tool-index"})
    chunks = list(client.stream_chat_completion(model=MODEL, messages=messages, tools=tools))
    deltas = [t for c in chunks for ch in c.choices for t in ch.delta.tool_calls or ()]
    assert deltas and all(d.index is not None for d in deltas)
    names = {d.index: d.function.name for d in deltas if d.function and d.function.name}
    assert names == {0: "get_weather", 1: "get_time"}
    reference = make_client().chat_completion(model=MODEL, messages=messages, tools=tools)
    for i, call in enumerate(reference.choices[0].message.tool_calls):
        args = "".join(d.function.arguments or "" for d in deltas if d.index == i and d.function)
        assert args == call.function.arguments


def test_usage_on_every_chunk_is_delivered_and_billed_once(emulator: Any, make_client: Any) -> None:
    client = make_client(default_headers={"x-emulator-quirks": "usage-every-chunk"})
    chunks = list(client.stream_chat_completion(model=MODEL, messages=LONG))
    assert sum(c.usage is not None for c in chunks) == 1
    assert client.stats().usage.output_tokens == chunks[-1].usage.completion_tokens
    assert client.stats().usage.requests == 1


def test_mid_stream_drop_is_a_stream_error_never_a_short_answer(
    emulator: Any, make_client: Any
) -> None:
    client = make_client()
    emulator.inject(Fault.drop_mid_stream(after=3))
    got: list[str] = []
    with pytest.raises(StreamError) as info:
        for c in client.stream_chat_completion(model=MODEL, messages=LONG):
            got += [c.choices[0].delta.content or ""] if c.choices else []
    assert info.value.partial_content == "".join(got)
    assert got  # part of the answer arrived before the drop
    assert len(emulator.requests) == 1  # a started stream is never retried
    stats = client.stats()
    assert stats.errors == {"StreamConnectionError": 1}
    assert stats.successes == 0


@pytest.mark.parametrize(
    "fault",
    [Fault.error_event(after=2), Fault.error_data(after=2), Fault.malformed_sse(after=2)],
    ids=["event: error", "error data", "malformed"],
)
def test_bad_stream_content_is_a_stream_error(
    emulator: Any, make_client: Any, fault: Fault
) -> None:
    emulator.inject(fault)
    with pytest.raises(StreamError):
        list(make_client().stream_chat_completion(model=MODEL, messages=LONG))


def test_a_long_line_within_the_cap_streams_the_same_answer(
    emulator: Any, make_client: Any
) -> None:
    client = make_client()
    plain = [c.model_dump() for c in client.stream_chat_completion(model=MODEL, messages=LONG)]
    emulator.inject(Fault.oversized_line(after=1, size=2 * 1024 * 1024))
    padded = [c.model_dump() for c in client.stream_chat_completion(model=MODEL, messages=LONG)]
    assert [c["choices"] for c in padded] == [c["choices"] for c in plain]


def test_a_line_over_the_cap_is_a_stream_error(emulator: Any, make_client: Any) -> None:
    emulator.inject(Fault.oversized_line(after=1, size=5 * 1024 * 1024))
    with pytest.raises(StreamError, match="bytes"):
        list(make_client().stream_chat_completion(model=MODEL, messages=LONG))


def test_a_stall_past_the_read_timeout_is_a_stream_error(emulator: Any, make_client: Any) -> None:
    emulator.inject(Fault.stall_mid_stream(after=2, seconds=1.0))
    with pytest.raises(StreamError) as info:
        list(make_client(timeout={"read": 0.2}).stream_chat_completion(model=MODEL, messages=HI))
    assert "Timeout" in str(info.value)


def test_stream_without_final_newline_or_done_still_completes(
    emulator: Any, make_client: Any
) -> None:
    emulator.inject(Fault.no_final_newline())
    chunks = list(make_client().stream_chat_completion(model=MODEL, messages=HI))
    assert chunks[-1].usage is not None


def test_a_drop_after_done_does_not_fail_a_complete_answer(scripted: Any, make_client: Any) -> None:
    scripted.queue(scripted.Answer(parts=[*scripted.stream_events(), scripted.DROP]))
    client = make_client(base_url=scripted.url)
    chunks = list(client.stream_chat_completion(model=MODEL, messages=HI))
    assert chunks[-1].usage.total_tokens == scripted.USAGE["total_tokens"]
    assert client.stats().successes == 1


def test_an_error_before_the_first_byte_of_a_stream_is_retried(
    emulator: Any, make_client: Any
) -> None:
    client = make_client()
    emulator.inject(Fault.status(429, retry_after_ms=1))
    chunks = list(client.stream_chat_completion(model=MODEL, messages=HI))
    assert chunks[-1].usage is not None
    assert len(emulator.requests) == 2
    assert client.stats().retries == 1


def _leave_early(client: HolySheepClient, how: str) -> None:
    if how == "with":
        with client.stream_chat_completion(model=MODEL, messages=LONG) as stream:
            next(stream)
    elif how == "close":
        stream = client.stream_chat_completion(model=MODEL, messages=LONG)
        next(stream)
        stream.close()
    elif how == "break":
        for _ in client.stream_chat_completion(model=MODEL, messages=LONG):
            break  # no close: the stream is collected, and that must release it too
    else:
        client.stream_chat_completion(model=MODEL, messages=LONG).close()  # never iterated


@pytest.mark.parametrize("how", ["with", "close", "break", "unread"])
def test_leaving_a_stream_early_releases_its_connection(
    emulator: Any, make_client: Any, how: str
) -> None:
    # One connection and a short pool timeout: a leaked connection makes the next call fail.
    client = make_client(max_connections=1, timeout={"pool": 0.5}, max_retries=0)
    for _ in range(5):  # with one connection, a leaked one fails the next round
        _leave_early(client, how)
    assert client.chat_completion(model=MODEL, messages=HI).attempts == 1
    stats = client.stats()
    # Each stream is booked once: abandoned, or a success when its whole body (usage and
    # [DONE]) came in the first read, before the caller left.
    assert stats.requests == 6
    assert stats.streams_abandoned + stats.successes == 6
    assert stats.streams_abandoned >= 1


def test_leaving_a_slow_stream_early_does_not_wait_for_its_end(
    scripted: Any, make_client: Any
) -> None:
    slow = [scripted.sse(scripted.chunk({"content": "a"})), 2.0, *scripted.stream_events()]
    scripted.queue(*[scripted.Answer(parts=slow) for _ in range(3)])
    client = make_client(base_url=scripted.url, max_connections=1, timeout={"pool": 0.5})
    for _ in range(3):
        with client.stream_chat_completion(model=MODEL, messages=HI) as stream:
            next(stream)
    assert client.chat_completion(model=MODEL, messages=HI).attempts == 1


# --- pricing --------------------------------------------------------------------------------


def test_unknown_model_cost_is_none_with_one_warning(
    make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    caplog.set_level(logging.WARNING, logger="holysheep")
    first = client.chat_completion(model="house-reasoner", messages=HI)
    second = client.chat_completion(model="house-reasoner", messages=HI)
    assert first.cost_usd is None and second.cost_usd is None
    warnings = [r for r in caplog.records if "no price for model 'house-reasoner'" in r.message]
    assert len(warnings) == 1
    usage = client.stats().by_model["house-reasoner"].usage
    assert usage.cost_usd is None
    assert usage.unpriced_requests == 2
    assert usage.output_tokens == first.usage.completion_tokens * 2


def test_user_prices_are_used(make_client: Any) -> None:
    prices = PriceTable().with_prices({"house-reasoner": {"input": "1", "output": "2"}})
    completion = make_client(prices=prices).chat_completion(model="house-reasoner", messages=HI)
    u = completion.usage
    assert completion.cost_usd == (Decimal(u.prompt_tokens) + 2 * u.completion_tokens) / 10**6


# --- embeddings, models, health -------------------------------------------------------------


def test_embeddings_in_batches_come_back_in_order_and_billed_once(
    emulator: Any, make_client: Any
) -> None:
    prices = PriceTable().with_prices({"embed-1": {"input": "0.02", "output": "0"}})
    client = make_client(prices=prices)
    texts = ["red apple", "green pear", "blue sky", "red car", "dark night"]
    batched = client.embeddings(model="embed-1", input=texts, batch_size=2)
    assert len(emulator.requests) == 3
    single = [client.embeddings(model="embed-1", input=t).data[0].embedding for t in texts]
    assert [d.index for d in batched.data] == [0, 1, 2, 3, 4]
    assert [d.embedding for d in batched.data] == single
    assert batched.usage.prompt_tokens == sum(
        client.embeddings(model="embed-1", input=t).usage.prompt_tokens for t in texts
    )
    assert batched.cost_usd == Decimal("0.02") * batched.usage.prompt_tokens / 10**6
    assert client.stats().successes == 1 + 2 * len(texts)  # one per call, not per batch


def test_models_lists_the_catalogue(make_client: Any) -> None:
    ids = {m.id for m in make_client().models()}
    assert {"deepseek-v3.2", "gpt-4.1", "claude-sonnet-4.5", "gemini-2.5-flash"} <= ids


def test_health_check_never_raises(make_client: Any) -> None:
    good = make_client().health_check()
    assert good.ok and good.status_code == 200 and good.error is None
    bad_key = make_client(api_key="hs-wrong-key-000000").health_check()
    assert not bad_key.ok and bad_key.status_code == 401 and "Incorrect" in bad_key.error
    nowhere = make_client(base_url="http://127.0.0.1:9/v1").health_check(timeout=0.5)
    assert not nowhere.ok and nowhere.status_code is None and nowhere.error


# --- lifecycle and sharing ------------------------------------------------------------------


def test_close_is_idempotent_and_a_closed_client_refuses_calls(make_client: Any) -> None:
    client = make_client()
    client.close()
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.chat_completion(model=MODEL, messages=HI)


def test_context_manager_closes(emulator: Any, api_key: str) -> None:
    with HolySheepClient(api_key=api_key, base_url=emulator.url) as client:
        client.chat_completion(model=MODEL, messages=HI)
    with pytest.raises(RuntimeError):
        client.models()


def test_shared_client_is_one_per_settings(emulator: Any, api_key: str) -> None:
    def config(**settings: Any) -> ClientConfig:
        return ClientConfig.resolve(**{"api_key": api_key, "base_url": emulator.url, **settings})

    a = shared_client(config())
    assert shared_client(config()) is a  # equal settings, built separately
    assert shared_client(config(timeout=7)) is not a
    assert shared_client(config(max_retries=0)) is not a
    assert shared_client(config(api_key="hs-other-key")) is not a
    assert shared_client(config(base_url="http://127.0.0.1:9/v1")) is not a
    assert shared_client(config(), asynchronous=True) is not a
    assert shared_client(config(), asynchronous=True) is shared_client(config(), asynchronous=True)
    a.close()
    b = shared_client(config())
    assert b is not a and not b._closed  # a closed client is replaced
    assert b.chat_completion(model=MODEL, messages=HI).attempts == 1
    b.close()


def _calls_from_threads(client: HolySheepClient, threads: int, calls: int) -> list[Decimal]:
    costs: list[Decimal] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(calls):
            messages = [{"role": "user", "content": f"{n} {i}"}]
            c = client.chat_completion(model=MODEL, messages=messages)
            with lock:
                costs.append(c.cost_usd)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return costs


def test_one_client_from_many_threads_counts_exactly(emulator: Any, make_client: Any) -> None:
    client = make_client()
    costs = _calls_from_threads(client, threads=8, calls=10)
    stats = client.stats()
    assert (stats.requests, stats.successes, stats.retries) == (80, 80, 0)
    assert stats.usage.requests == 80
    assert stats.usage.cost_usd == sum(costs)
    assert len(emulator.requests) == 80


def test_more_threads_than_connections_send_each_call_once(emulator: Any, make_client: Any) -> None:
    # httpcore's pool, left to queue requests, can hand a queued one a connection it is
    # closing (encode/httpcore#1110): the request dies after it was sent and a retry sends
    # it again. Our transport never lets more requests in than there are connections.
    client = make_client(max_connections=2, timeout={"read": 0.5}, retry=RetryPolicy.no_wait())
    _calls_from_threads(client, threads=6, calls=10)
    assert client.stats().retries == 0
    assert len(emulator.requests) == 60


def test_a_failed_batch_keeps_the_answered_batches_in_the_books(
    emulator: Any, api_key: str
) -> None:
    from holysheep_core import APIConnectionError, Budget, HolySheepClient, PriceTable, RetryPolicy
    from holysheep_core.emulator import count_tokens

    client = HolySheepClient(
        api_key=api_key,
        base_url=emulator.url,
        retry=RetryPolicy.no_wait(max_retries=0),
        budget_usd=(budget := Budget(1)),
        prices=PriceTable().with_prices({"embed-1": {"input": "0.02", "output": "0"}}),
    )
    inner, sent = client._transport, []

    class SecondBatchFails:
        def send(self, request: Any) -> Any:
            sent.append(request)
            if len(sent) == 2:
                raise APIConnectionError("connection reset on the second batch")
            return inner.send(request)

        def close(self) -> None:
            inner.close()

    client._transport = SecondBatchFails()
    with pytest.raises(APIConnectionError):
        client.embeddings(model="embed-1", input=["alpha beta", "gamma", "delta"], batch_size=1)
    first = count_tokens("alpha beta")
    stats = client.stats()
    assert stats.errors == {"APIConnectionError": 1} and stats.successes == 0
    assert stats.usage.input_tokens == first  # the first batch was answered, and billed
    assert budget.held_usd == 0  # no hold left behind by the answered batch
    # The answered batch at its real cost; the failed one, unanswered, at its estimate.
    assert budget.spent_usd > Decimal("0.02") * first / 10**6
    client.close()
