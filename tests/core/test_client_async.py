"""AsyncHolySheepClient against real loopback servers, every test once per async backend
(aiohttp, the default, and httpx) through the ``async_backend`` fixture."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

import pytest
from waiting import eventually_async

from holysheep_core import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    AsyncHolySheepClient,
    AuthenticationError,
    BadRequestError,
    ClientConfig,
    InternalServerError,
    PriceTable,
    RateLimitError,
    RetryPolicy,
    StreamError,
)
from holysheep_core.emulator import Fault, reply_to
from holysheep_core.shared import shared_client

MODEL = "deepseek-v3.2"
HI = [{"role": "user", "content": "hi there"}]
LONG = [{"role": "user", "content": " ".join(f"word{i}" for i in range(120))}]


async def settle() -> None:
    """Let close callbacks scheduled on the loop run."""
    for _ in range(5):
        await asyncio.sleep(0)


def text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def collect(stream: Any) -> list[Any]:
    return [c async for c in stream]


# --- plain calls ------------------------------------------------------------------------------


async def test_chat_completion_round_trip(
    emulator: Any, make_async_client: Any, async_backend: str
) -> None:
    client = make_async_client()
    assert client.config.async_backend == async_backend
    completion = await client.chat_completion(model=MODEL, messages=HI, max_tokens=50)
    assert completion.choices[0].message.content == reply_to("hi there")
    assert completion.cost_usd == client.prices.cost(MODEL, completion.usage) > 0
    assert completion.attempts == 1
    [seen] = emulator.requests
    assert seen.body == {"model": MODEL, "messages": HI, "max_tokens": 50}
    stats = client.stats()
    assert (stats.requests, stats.successes) == (1, 1)
    assert stats.usage.cost_usd == completion.cost_usd


async def test_html_200_is_a_typed_error(emulator: Any, make_async_client: Any) -> None:
    emulator.inject(Fault.wrong_content_type())
    client = make_async_client()
    with pytest.raises(APIResponseValidationError):
        await client.chat_completion(model=MODEL, messages=HI)
    assert client.stats().errors == {"APIResponseValidationError": 1}


async def test_completion_without_choices_is_a_typed_error(
    scripted: Any, make_async_client: Any
) -> None:
    scripted.queue(scripted.Answer(body={"id": "x", "object": "chat.completion"}))
    with pytest.raises(APIResponseValidationError, match="choices"):
        await make_async_client(base_url=scripted.url).chat_completion(model=MODEL, messages=HI)


async def test_wrong_key_is_not_retried(emulator: Any, make_async_client: Any) -> None:
    with pytest.raises(AuthenticationError):
        await make_async_client(api_key="hs-wrong-key-000").chat_completion(
            model=MODEL, messages=HI
        )
    assert len(emulator.requests) == 1


async def test_html_502_gives_a_readable_typed_error(emulator: Any, make_async_client: Any) -> None:
    emulator.inject(Fault.status(502, body="html"))
    with pytest.raises(InternalServerError) as info:
        await make_async_client(max_retries=0).chat_completion(model=MODEL, messages=HI)
    assert info.value.message.startswith("non-JSON HTML page")


# --- retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "wait"),
    [
        (Fault.status(429, retry_after_ms=250), 0.25),
        (Fault.status(503, retry_after=2), 2.0),
        (Fault.status(408), 0.01),  # FAST_RETRY's initial backoff, no jitter
        (Fault.status(409), 0.01),
        (Fault.status(500), 0.01),
    ],
    ids=["retry-after-ms", "retry-after", "408", "409", "500"],
)
async def test_retries_honour_retry_after_or_back_off(
    emulator: Any, make_async_client: Any, fake_time: Any, fault: Fault, wait: float
) -> None:
    client = make_async_client()
    clock = fake_time(client)
    emulator.inject(fault)
    completion = await client.chat_completion(model=MODEL, messages=HI)
    assert completion.attempts == 2
    assert clock.sleeps == [wait]
    assert len(emulator.requests) == 2


async def test_retry_after_date_is_honoured(
    emulator: Any, make_async_client: Any, fake_time: Any
) -> None:
    client = make_async_client()
    clock = fake_time(client)
    emulator.inject(Fault.status(503, retry_after=20, retry_after_date=True))
    await client.chat_completion(model=MODEL, messages=HI)
    [wait] = clock.sleeps
    assert 17 <= wait <= 20


async def test_client_errors_are_not_retried(
    emulator: Any, make_async_client: Any, fake_time: Any
) -> None:
    client = make_async_client()
    clock = fake_time(client)
    emulator.inject(Fault.status(400), times=3)
    with pytest.raises(BadRequestError):
        await client.chat_completion(model=MODEL, messages=HI)
    assert (len(emulator.requests), clock.sleeps) == (1, [])


async def test_retry_after_above_the_cap_fails_fast(
    emulator: Any, make_async_client: Any, fake_time: Any
) -> None:
    client = make_async_client(retry=RetryPolicy(max_retry_after=5))
    clock = fake_time(client)
    emulator.inject(Fault.status(429, retry_after=30))
    with pytest.raises(RateLimitError) as info:
        await client.chat_completion(model=MODEL, messages=HI)
    assert clock.sleeps == []
    assert "max_retry_after=5s" in info.value.__notes__[0]


async def test_should_retry_header_is_honoured(emulator: Any, make_async_client: Any) -> None:
    client = make_async_client()
    emulator.inject(Fault.status(503, should_retry=False))
    with pytest.raises(InternalServerError):
        await client.chat_completion(model=MODEL, messages=HI)
    emulator.inject(Fault.status(400, should_retry=True))
    assert (await client.chat_completion(model=MODEL, messages=HI)).attempts == 2


async def test_exhausted_retries_and_the_deadline(
    emulator: Any, make_async_client: Any, fake_time: Any
) -> None:
    policy = RetryPolicy(max_retries=9, initial_delay=1, multiplier=2, max_delay=60, jitter=0,
                         deadline=5)  # fmt: skip
    client = make_async_client(retry=policy)
    clock = fake_time(client)
    emulator.inject(Fault.status(503), times=10)
    with pytest.raises(InternalServerError) as info:
        await client.chat_completion(model=MODEL, messages=HI)
    assert clock.sleeps == [1, 2]
    assert "deadline of 5s" in info.value.__notes__[0]
    stats = client.stats()
    assert (stats.requests, stats.retries, stats.errors) == (1, 2, {"InternalServerError": 1})


async def test_the_deadline_caps_a_slow_attempt(emulator: Any, make_async_client: Any) -> None:
    client = make_async_client(timeout=30, retry=RetryPolicy(deadline=0.3))
    emulator.inject(Fault.slow_first_byte(1.5))
    with pytest.raises(APITimeoutError) as info:
        await client.chat_completion(model=MODEL, messages=HI)
    assert "deadline" in info.value.__notes__[0]


async def test_a_retried_call_is_billed_once(emulator: Any, make_async_client: Any) -> None:
    client = make_async_client()
    emulator.inject(Fault.status(500))
    completion = await client.chat_completion(model=MODEL, messages=HI)
    stats = client.stats()
    assert stats.usage.cost_usd == client.prices.cost(MODEL, completion.usage)
    assert (stats.requests, stats.retries, stats.usage.requests) == (1, 1, 1)


async def test_connection_drop_before_the_answer_is_retried(
    scripted: Any, make_async_client: Any
) -> None:
    scripted.queue(scripted.Answer(parts=[scripted.DROP]))
    client = make_async_client(base_url=scripted.url)
    assert (await client.chat_completion(model=MODEL, messages=HI)).attempts == 2


async def test_connection_refused_is_a_connection_error(
    make_async_client: Any, fake_time: Any
) -> None:
    client = make_async_client(base_url="http://127.0.0.1:9/v1")
    clock = fake_time(client)
    with pytest.raises(APIConnectionError) as info:
        await client.chat_completion(model=MODEL, messages=HI)
    assert info.value.attempts == 3 and len(clock.sleeps) == 2


# --- timeouts and the pool ---------------------------------------------------------------------


async def test_slow_first_byte_past_the_read_timeout(emulator: Any, make_async_client: Any) -> None:
    emulator.inject(Fault.slow_first_byte(1.0))
    client = make_async_client(timeout={"read": 0.2}, max_retries=0)
    with pytest.raises(APITimeoutError) as info:
        await client.chat_completion(model=MODEL, messages=HI)
    assert "timed out" in str(info.value)


async def test_a_timeout_is_retried(emulator: Any, make_async_client: Any) -> None:
    emulator.inject(Fault.slow_first_byte(1.0))
    client = make_async_client(timeout={"read": 0.2})
    assert (await client.chat_completion(model=MODEL, messages=HI)).attempts == 2


async def test_a_saturated_pool_is_a_timeout_that_says_so(
    emulator: Any, make_async_client: Any
) -> None:
    client = make_async_client(
        max_connections=1, timeout={"pool": 0.2, "connect": 0.2}, max_retries=0
    )
    emulator.inject(Fault.stall_mid_stream(after=1, seconds=1.0))
    held = await client.stream_chat_completion(model=MODEL, messages=HI)
    await held.__anext__()  # the only connection is now busy
    with pytest.raises(APITimeoutError) as info:
        await client.chat_completion(model=MODEL, messages=HI)
    assert "saturated" in str(info.value)
    await held.aclose()
    assert (await client.chat_completion(model=MODEL, messages=HI)).attempts == 1


# --- streaming ----------------------------------------------------------------------------------


async def test_stream_round_trip_with_usage_once_and_its_cost(
    emulator: Any, make_async_client: Any
) -> None:
    # One connection and a short pool timeout: the last call needs the stream's back.
    client = make_async_client(max_connections=1, timeout={"pool": 0.5})
    async with await client.stream_chat_completion(model=MODEL, messages=HI) as stream:
        chunks = await collect(stream)
    assert text(chunks) == reply_to("hi there")
    assert [c.usage is not None for c in chunks].count(True) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].cost_usd == client.prices.cost(MODEL, chunks[-1].usage)
    assert emulator.requests[0].body["stream_options"] == {"include_usage": True}
    stats = client.stats()
    assert (stats.successes, stats.streams_abandoned) == (1, 0)
    assert stats.ttft_p50 is not None
    assert (await client.chat_completion(model=MODEL, messages=HI)).attempts == 1


async def test_stream_usage_can_be_turned_off(emulator: Any, make_async_client: Any) -> None:
    client = make_async_client(include_usage=False)
    chunks = await collect(await client.stream_chat_completion(model=MODEL, messages=HI))
    assert "stream_options" not in emulator.requests[0].body
    assert all(c.usage is None for c in chunks)


async def test_stream_tool_calls_without_index_get_one(make_async_client: Any) -> None:
    tools = [
        {"type": "function", "function": {"name": "get_weather", "description": "weather"}},
        {"type": "function", "function": {"name": "get_time", "description": "time"}},
    ]
    messages = [{"role": "user", "content": "What weather and time is it in Oslo?"}]
    client = make_async_client(default_headers={"x-emulator-quirks": "no-tool-index"})
    stream = await client.stream_chat_completion(model=MODEL, messages=messages, tools=tools)
    deltas = [
        t for c in await collect(stream) for ch in c.choices for t in ch.delta.tool_calls or ()
    ]
    names = {d.index: d.function.name for d in deltas if d.function and d.function.name}
    assert names == {0: "get_weather", 1: "get_time"}


async def test_mid_stream_drop_is_a_stream_error(emulator: Any, make_async_client: Any) -> None:
    client = make_async_client(max_connections=1, timeout={"pool": 0.5}, max_retries=0)
    emulator.inject(Fault.drop_mid_stream(after=3))
    got: list[Any] = []
    with pytest.raises(StreamError) as info:
        async for c in await client.stream_chat_completion(model=MODEL, messages=LONG):
            got.append(c)
    assert got and info.value.partial_content == text(got)
    assert len(emulator.requests) == 1
    assert client.stats().errors == {"StreamConnectionError": 1}
    # The only connection is free again: the next call gets it within the pool timeout.
    assert (await client.chat_completion(model=MODEL, messages=HI)).attempts == 1


@pytest.mark.parametrize(
    "fault",
    [Fault.error_event(after=2), Fault.error_data(after=2), Fault.malformed_sse(after=2)],
    ids=["event: error", "error data", "malformed"],
)
async def test_bad_stream_content_is_a_stream_error(
    emulator: Any, make_async_client: Any, fault: Fault
) -> None:
    emulator.inject(fault)
    with pytest.raises(StreamError):
        await collect(await make_async_client().stream_chat_completion(model=MODEL, messages=LONG))


async def test_a_long_line_within_the_cap_streams_the_same_answer(
    emulator: Any, make_async_client: Any
) -> None:
    client = make_async_client()
    plain = await collect(await client.stream_chat_completion(model=MODEL, messages=LONG))
    emulator.inject(Fault.oversized_line(after=1, size=2 * 1024 * 1024))
    padded = await collect(await client.stream_chat_completion(model=MODEL, messages=LONG))
    assert [c.choices for c in padded] == [c.choices for c in plain]


async def test_a_line_over_the_cap_is_a_stream_error(emulator: Any, make_async_client: Any) -> None:
    emulator.inject(Fault.oversized_line(after=1, size=5 * 1024 * 1024))
    with pytest.raises(StreamError, match="bytes"):
        await collect(await make_async_client().stream_chat_completion(model=MODEL, messages=LONG))


async def test_a_stall_past_the_read_timeout_is_a_stream_error(
    emulator: Any, make_async_client: Any
) -> None:
    emulator.inject(Fault.stall_mid_stream(after=2, seconds=1.0))
    client = make_async_client(timeout={"read": 0.2})
    with pytest.raises(StreamError):
        await collect(await client.stream_chat_completion(model=MODEL, messages=HI))


async def test_a_drop_after_done_does_not_fail_a_complete_answer(
    scripted: Any, make_async_client: Any
) -> None:
    scripted.queue(scripted.Answer(parts=[*scripted.stream_events(), scripted.DROP]))
    client = make_async_client(base_url=scripted.url)
    chunks = await collect(await client.stream_chat_completion(model=MODEL, messages=HI))
    assert chunks[-1].usage.total_tokens == scripted.USAGE["total_tokens"]
    assert client.stats().successes == 1


async def test_an_error_before_the_first_byte_of_a_stream_is_retried(
    emulator: Any, make_async_client: Any
) -> None:
    client = make_async_client()
    emulator.inject(Fault.status(503, retry_after_ms=1))
    chunks = await collect(await client.stream_chat_completion(model=MODEL, messages=HI))
    assert chunks[-1].usage is not None
    assert client.stats().retries == 1


async def _leave_early(client: AsyncHolySheepClient, how: str) -> None:
    if how == "async with":
        async with await client.stream_chat_completion(model=MODEL, messages=LONG) as stream:
            async for _ in stream:
                break
    elif how == "aclose":
        stream = await client.stream_chat_completion(model=MODEL, messages=LONG)
        await stream.__anext__()
        await stream.aclose()
    elif how == "unread":
        await (await client.stream_chat_completion(model=MODEL, messages=LONG)).aclose()
    else:  # "break": no aclose; dropping the stream must release it
        async for _ in await client.stream_chat_completion(model=MODEL, messages=LONG):
            break
        await settle()


@pytest.mark.parametrize("how", ["async with", "aclose", "unread", "break"])
async def test_leaving_a_stream_early_releases_its_connection(
    emulator: Any, make_async_client: Any, how: str
) -> None:
    client = make_async_client(
        max_connections=1, timeout={"pool": 0.5, "connect": 0.5}, max_retries=0
    )
    for _ in range(5):  # with one connection, a leaked one fails the next round
        await _leave_early(client, how)
    assert (await client.chat_completion(model=MODEL, messages=HI)).attempts == 1
    stats = client.stats()
    # Each stream is booked once: abandoned, or a success when its whole body (usage and
    # [DONE]) came in the first read, before the caller left.
    assert stats.requests == 6
    assert stats.streams_abandoned + stats.successes == 6
    assert stats.streams_abandoned >= 1


async def test_leaving_a_slow_stream_early_does_not_wait_for_its_end(
    scripted: Any, make_async_client: Any
) -> None:
    slow = [scripted.sse(scripted.chunk({"content": "a"})), 2.0, *scripted.stream_events()]
    scripted.queue(*[scripted.Answer(parts=slow) for _ in range(3)])
    client = make_async_client(
        base_url=scripted.url, max_connections=1, timeout={"pool": 0.5, "connect": 0.5}
    )
    for _ in range(3):
        async with await client.stream_chat_completion(model=MODEL, messages=HI) as stream:
            await stream.__anext__()
    assert (await client.chat_completion(model=MODEL, messages=HI)).attempts == 1


# --- pricing, embeddings, models, health ------------------------------------------------------


async def test_unknown_model_cost_is_none_with_a_warning(
    make_async_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="holysheep")
    client = make_async_client()
    completion = await client.chat_completion(model="house-reasoner", messages=HI)
    assert completion.cost_usd is None
    assert "no price for model 'house-reasoner'" in caplog.text
    assert client.stats().usage.unpriced_requests == 1


async def test_embeddings_batches_go_out_concurrently_and_are_billed_once(
    emulator: Any, make_async_client: Any
) -> None:
    prices = PriceTable().with_prices({"embed-1": {"input": "0.02", "output": "0"}})
    client = make_async_client(prices=prices)
    texts = [f"text number {i}" for i in range(7)]
    result = await client.embeddings(model="embed-1", input=texts, batch_size=3)
    assert len(emulator.requests) == 3
    assert [d.index for d in result.data] == list(range(7))
    one = await client.embeddings(model="embed-1", input=texts[4])
    assert result.data[4].embedding == one.data[0].embedding
    assert result.cost_usd == Decimal("0.02") * result.usage.prompt_tokens / 10**6
    assert client.stats().successes == 2


async def test_models_and_health(make_async_client: Any) -> None:
    client = make_async_client()
    assert MODEL in {m.id for m in await client.models()}
    assert (await client.health_check()).ok
    bad = await make_async_client(api_key="hs-wrong-key-000").health_check()
    assert not bad.ok and bad.status_code == 401
    nowhere = await make_async_client(base_url="http://127.0.0.1:9/v1").health_check(timeout=0.5)
    assert not nowhere.ok and nowhere.status_code is None


# --- concurrency, lifecycle, sharing -----------------------------------------------------------


async def test_many_tasks_on_one_client_count_exactly(
    emulator: Any, make_async_client: Any
) -> None:
    client = make_async_client()

    async def call(i: int) -> Decimal:
        messages = [{"role": "user", "content": f"task {i}"}]
        if i % 3 == 0:
            chunks = await collect(
                await client.stream_chat_completion(model=MODEL, messages=messages)
            )
            return chunks[-1].cost_usd
        return (await client.chat_completion(model=MODEL, messages=messages)).cost_usd

    costs = await asyncio.gather(*(call(i) for i in range(60)))
    stats = client.stats()
    assert (stats.requests, stats.successes, stats.retries) == (60, 60, 0)
    assert stats.usage.cost_usd == sum(costs)
    assert len(emulator.requests) == 60
    # The server's own count: every request ended (its handler finishes just after the
    # client has read the last byte, hence the wait).
    assert await eventually_async(lambda: emulator.active_requests == 0)


async def test_close_is_idempotent_and_refuses_later_calls(make_async_client: Any) -> None:
    client = make_async_client()
    await client.chat_completion(model=MODEL, messages=HI)
    await client.aclose()
    await client.close()
    with pytest.raises(RuntimeError, match="closed"):
        await client.chat_completion(model=MODEL, messages=HI)


def test_one_client_serves_successive_event_loops(
    emulator: Any, api_key: str, async_backend: str
) -> None:
    client = AsyncHolySheepClient(
        api_key=api_key, base_url=emulator.url, async_backend=async_backend
    )

    async def once() -> str:
        return (await client.chat_completion(model=MODEL, messages=HI)).choices[0].message.content

    assert asyncio.run(once()) == asyncio.run(once()) == reply_to("hi there")

    async def close() -> None:
        await client.aclose()

    asyncio.run(close())
    assert client.stats().successes == 2


async def test_shared_async_client_is_one_per_settings(
    emulator: Any, api_key: str, async_backend: str
) -> None:
    def config(**settings: Any) -> ClientConfig:
        base = {"api_key": api_key, "base_url": emulator.url, "async_backend": async_backend}
        return ClientConfig.resolve(**{**base, **settings})

    a = shared_client(config(), asynchronous=True)
    assert isinstance(a, AsyncHolySheepClient)
    assert shared_client(config(), asynchronous=True) is a
    assert shared_client(config(max_connections=7), asynchronous=True) is not a
    assert (await a.chat_completion(model=MODEL, messages=HI)).attempts == 1
    await a.aclose()
    assert shared_client(config(), asynchronous=True) is not a
    await shared_client(config(), asynchronous=True).aclose()
