"""Client-side rate limits: the pure buckets on a fake clock, then clients on loopback
servers (a held rate over real seconds, a token burst, the server's headers and 429s)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest

from holysheep_core import (
    APITimeoutError,
    AsyncHolySheepClient,
    ClientConfig,
    HolySheepClient,
    InMemoryStore,
    Limit,
    RateLimitError,
    RateLimits,
    RetryPolicy,
)
from holysheep_core.emulator import Fault
from holysheep_core.params import build_chat_body, encode_json
from holysheep_core.policy.operations import (
    AfterAttempt,
    BeforeAttempt,
    BucketBack,
    Entered,
)
from holysheep_core.policy.ratelimit import RateLimiter, estimate_tokens, parse_duration
from holysheep_core.transport.aiohttp_backend import AiohttpTransport
from holysheep_core.transport.base import Reply
from holysheep_core.transport.httpx_backend import AsyncHttpxTransport

MODEL = "deepseek-v3.2"
HI = [{"role": "user", "content": "hi"}]


class _Buckets:
    """The buckets of one policy in an in-memory store on a fake clock, changed by the
    operations a client applies (tests of the reference functions, not of a client)."""

    def __init__(self, policy: RateLimits) -> None:
        self.policy = policy
        self.limiter = RateLimiter(policy)
        self.now = 0.0
        self.store = InMemoryStore(clock=lambda: self.now)

    def take(self, model: str, tokens: float, now: float, max_wait: float | None) -> Entered:
        """A turn for one request of ``tokens`` estimated tokens."""
        self.now = now
        op = BeforeAttempt(
            "t",
            buckets=self.limiter.buckets(model).specs,
            tokens=tokens,
            tuning=self.limiter.tuning,
            max_wait=self.policy.wait_cap(max_wait),
        )
        return self.store.apply(op)

    def after(self, model: str, now: float, **fields: Any) -> None:
        self.now = now
        self.store.apply(AfterAttempt("t", tuning=self.limiter.tuning, **fields))

    def give_back(self, model: str, tokens: float, now: float) -> None:
        """An unsent turn returned."""
        back = tuple(
            BucketBack(s, 1.0 if s.kind == "requests" else tokens)
            for s in self.limiter.buckets(model).specs
        )
        self.after(model, now, give_back=back)

    def correct(self, model: str, estimated: float, actual: float, now: float) -> None:
        back = tuple(
            BucketBack(s, estimated - actual) for s in self.limiter.buckets(model).token_specs
        )
        self.after(model, now, give_back=back)

    def observe(self, model: str, headers: dict[str, str], now: float) -> None:
        self.after(model, now, server_counts=self.limiter.server_counts(model, headers))

    def back_off(self, model: str, retry_after: float | None, now: float) -> None:
        self.after(model, now, backoff=self.limiter.buckets(model).specs, retry_after=retry_after)


def limiter(policy: RateLimits) -> _Buckets:
    return _Buckets(policy)


# --- estimates and headers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("1.5", 1.5),
        (" 7 ", 7.0),
        ("0s", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("1x", None),
        ("s", None),
        ("1s garbage", None),
    ],
)
def test_reset_durations(text: str | None, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize("size", [0, 1, 4, 5, 4000, 4001])
def test_token_estimate_is_a_quarter_of_the_body_rounded_up(size: int) -> None:
    assert estimate_tokens(b"x" * size) == -(-size // 4)


def test_token_estimate_counts_other_scripts_at_half_a_token_a_byte() -> None:
    # Three bytes a CJK character: one and a half tokens each, not three quarters.
    body = '{"content":"你好世界"}'.encode()
    assert estimate_tokens(body) == -(-(len(body) - 12) // 4) + 6


# --- the buckets ----------------------------------------------------------------------------


def test_a_burst_goes_at_once_then_callers_are_spaced_at_the_rate() -> None:
    lim = limiter(RateLimits(requests_per_second=10, request_burst=3))
    waits = [lim.take(MODEL, 0, 0.0, None).wait for _ in range(7)]
    assert waits == pytest.approx([0, 0, 0, 0.1, 0.2, 0.3, 0.4])


def test_waiting_is_first_come_first_served_and_a_big_request_is_not_starved() -> None:
    lim = limiter(RateLimits(tokens_per_minute=6000, token_burst=1000))  # 100 tokens/s
    small = lim.take(MODEL, 800, 0.0, None)
    big = lim.take(MODEL, 900, 0.0, None)  # waits for 700 tokens of refill: 7 s
    later = [lim.take(MODEL, 10, 0.0, None).wait for _ in range(5)]
    assert (small.wait, big.wait) == (0.0, pytest.approx(7.0))
    # Small requests after it queue behind it, in order, rather than slipping past.
    assert later == pytest.approx([7.1, 7.2, 7.3, 7.4, 7.5])


def test_a_wait_past_max_wait_takes_nothing() -> None:
    lim = limiter(RateLimits(requests_per_second=1))
    assert lim.take(MODEL, 0, 0.0, 0.5).wait == 0
    refused = lim.take(MODEL, 0, 0.0, 0.5)
    assert (refused.granted, refused.wait) == (False, pytest.approx(1.0))
    assert lim.take(MODEL, 0, 0.0, None).wait == pytest.approx(1.0)  # nothing was taken


def test_policy_max_wait_caps_the_deadline_and_zero_never_waits() -> None:
    lim = limiter(RateLimits(requests_per_second=1, max_wait=0))
    assert lim.take(MODEL, 0, 0.0, 30.0).granted
    assert not lim.take(MODEL, 0, 0.0, 30.0).granted


def test_an_unsent_turn_given_back_is_the_next_callers() -> None:
    lim = limiter(RateLimits(requests_per_second=2, request_burst=1))
    lim.take(MODEL, 0, 0.0, None)
    cancelled = lim.take(MODEL, 0, 0.0, None)
    assert cancelled.wait == pytest.approx(0.5)
    lim.give_back(MODEL, 0, 0.0)
    assert lim.take(MODEL, 0, 0.0, None).wait == pytest.approx(0.5)


def test_reported_usage_corrects_the_token_estimate_both_ways() -> None:
    lim = limiter(RateLimits(tokens_per_minute=600, token_burst=100))  # 10 tokens/s
    lim.take(MODEL, 100, 0.0, None)
    lim.correct(MODEL, estimated=100, actual=40, now=0.0)  # 60 back
    assert lim.take(MODEL, 60, 0.0, None).wait == 0
    lim.correct(MODEL, estimated=60, actual=90, now=0.0)  # 30 more owed
    assert lim.take(MODEL, 10, 0.0, None).wait == pytest.approx(4.0)


def test_per_model_limits_apply_on_top_of_the_shared_one() -> None:
    policy = RateLimits(
        requests_per_second=100,
        per_model={"gpt-4.1": Limit(requests_per_second=1, request_burst=1)},
    )
    lim = limiter(policy)
    assert [lim.take(MODEL, 0, 0.0, None).wait for _ in range(3)] == [0, 0, 0]
    assert [lim.take("gpt-4.1", 0, 0.0, None).wait for _ in range(3)] == [0, 1, 2]


def test_a_call_queued_on_its_model_holds_its_turn_in_the_shared_bucket() -> None:
    # The shared bucket counts the third gpt-4.1 call at its turn (2 s), so a call on
    # another model goes before it only where that bound leaves room: never more than
    # rate + burst in any window, at the cost of waiting behind a deep per-model queue.
    policy = RateLimits(
        requests_per_second=10,
        request_burst=10,
        per_model={"gpt-4.1": Limit(requests_per_second=1, request_burst=1)},
    )
    lim = limiter(policy)
    assert [lim.take("gpt-4.1", 0, 0.0, None).wait for _ in range(3)] == [0, 1, 2]
    # Shared bucket: 10 - 1 at 0, refilled to 10 by 1 s, 10 - 1 at 1 and again at 2, so
    # 9 left at 2 s; going at t needs 9 - (2 - t) * 10 >= 1: t >= 1.2.
    assert lim.take(MODEL, 0, 0.0, None).wait == pytest.approx(1.2)


def test_the_server_running_out_holds_everyone_until_its_reset() -> None:
    lim = limiter(RateLimits(requests_per_second=10, tokens_per_minute=60_000))
    lim.observe(
        MODEL,
        {
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "1.5s",
            "x-ratelimit-remaining-tokens": "500000",  # plenty: nothing to follow
        },
        0.0,
    )
    assert lim.take(MODEL, 10, 0.0, None).wait == pytest.approx(1.5 + 1 / 10)


def test_a_low_remaining_count_caps_the_burst() -> None:
    lim = limiter(RateLimits(requests_per_second=10, request_burst=10))
    lim.observe(MODEL, {"x-ratelimit-remaining-requests": "2"}, 0.0)
    assert [lim.take(MODEL, 0, 0.0, None).wait for _ in range(3)] == pytest.approx([0, 0, 0.1])


def test_a_429_blocks_for_retry_after_then_the_rate_recovers_linearly() -> None:
    policy = RateLimits(requests_per_second=10, request_burst=1, backoff=0.5, recovery=20)
    lim = limiter(policy)
    lim.back_off(MODEL, 2.0, 0.0)
    # Blocked for 2 s, then half the rate: the next caller goes after 2 + 1/5 s.
    assert lim.take(MODEL, 0, 0.0, None).wait == pytest.approx(2.0 + 1 / 5)
    lim2 = limiter(policy)
    lim2.back_off(MODEL, None, 0.0)
    lim2.take(MODEL, 0, 10.0, None)  # half way through recovery: 75% of the rate
    assert lim2.take(MODEL, 0, 10.0, None).wait == pytest.approx(1 / 7.5)
    lim2.take(MODEL, 0, 30.0, None)  # recovered
    assert lim2.take(MODEL, 0, 30.0, None).wait == pytest.approx(0.1)


def test_reservations_from_many_threads_get_distinct_turns() -> None:
    lim = limiter(RateLimits(requests_per_second=100, request_burst=1))
    start = threading.Barrier(16)
    waits: list[float] = []

    def take() -> None:
        start.wait()
        for _ in range(10):
            waits.append(lim.take(MODEL, 0, 0.0, None).wait)

    threads = [threading.Thread(target=take) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == pytest.approx([i / 100 for i in range(160)])


@pytest.mark.parametrize(
    "fields",
    [
        {"requests_per_second": 0},
        {"tokens_per_minute": -1},
        {"request_burst": True},
        {"max_wait": -1},
        {"backoff": 0},
        {"backoff": 1.5},
        {"recovery": -1},
        {"per_model": {"": Limit()}},
        {"per_model": {"gpt-4.1": {"requests_per_second": 1}}},
    ],
)
def test_limits_that_cannot_work_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RateLimits(**fields)


def test_limits_are_hashable_so_equal_settings_share_a_client() -> None:
    a = RateLimits(per_model={"b": Limit(requests_per_second=1), "a": Limit()})
    b = RateLimits(per_model=(("a", Limit()), ("b", Limit(requests_per_second=1))))
    assert a == b and hash(a) == hash(b)


# --- on loopback servers ------------------------------------------------------------------


class _Recording:
    """An async transport that notes when each request leaves."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sent: list[float] = []

    async def send(self, request: Any) -> Any:
        self.sent.append(time.monotonic())
        return await self.inner.send(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _rate(times: list[float]) -> float:
    return (len(times) - 1) / (max(times) - min(times))


async def test_the_limiter_holds_its_rate_with_concurrent_callers(
    async_backend: str, api_key: str, emulator: Any
) -> None:
    rps = 25
    config = ClientConfig.resolve(
        api_key=api_key,
        base_url=emulator.url,
        async_backend=async_backend,
        rate_limits=RateLimits(requests_per_second=rps, request_burst=1),
    )
    transport = AiohttpTransport if async_backend == "aiohttp" else AsyncHttpxTransport
    recording = _Recording(transport(config))
    async with AsyncHolySheepClient(config, transport=recording) as client:
        await asyncio.gather(*(client.chat_completion(model=MODEL, messages=HI) for _ in range(40)))
    assert len(emulator.requests) == 40
    # The limit is a ceiling: never faster than promised; a busy machine may send slower.
    assert _rate(recording.sent) <= rps * 1.10


def test_the_limiter_holds_its_rate_across_threads(make_client: Any, emulator: Any) -> None:
    rps = 25
    client = make_client(rate_limits=RateLimits(requests_per_second=rps, request_burst=1))
    done: list[float] = []

    def work() -> None:
        for _ in range(5):
            client.chat_completion(model=MODEL, messages=HI)
            done.append(time.monotonic())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(emulator.requests) == 40
    assert _rate(done) <= rps * 1.10  # a ceiling: a busy machine may go slower


def _estimate(messages: list[dict[str, str]], max_tokens: int) -> int:
    body = build_chat_body(MODEL, messages, {"max_tokens": max_tokens})
    return estimate_tokens(encode_json(body)) + max_tokens


async def test_the_token_limit_blocks_a_burst_within_the_deadline(
    make_async_client: Any, emulator: Any
) -> None:
    per_call = _estimate(HI, 100)
    client = make_async_client(
        # Three calls' worth of tokens, refilled far slower (1 token/s) than the deadline.
        rate_limits=RateLimits(tokens_per_minute=60, token_burst=3 * per_call + per_call // 2),
        retry=RetryPolicy(max_retries=0, deadline=30.0),
    )
    started = time.monotonic()
    results = await asyncio.gather(
        *(client.chat_completion(model=MODEL, messages=HI, max_tokens=100) for _ in range(10)),
        return_exceptions=True,
    )
    # Refused at once, not after waiting the 30 s deadline in vain (the bound leaves a busy
    # machine 15 s for three calls).
    assert time.monotonic() - started < 15.0
    held = [r for r in results if isinstance(r, APITimeoutError)]
    assert len(held) == 7 and all(e.retry_after > 30.0 for e in held)
    assert all("rate limit" in str(e) for e in held)
    assert len(emulator.requests) == 3


def test_usage_replaces_the_estimate_after_the_call(make_client: Any, store_clock: Any) -> None:
    clock = store_clock
    store = InMemoryStore(clock=clock.monotonic)
    capacity = 10_000
    client = make_client(
        policy_store=store,
        rate_limits=RateLimits(tokens_per_minute=600, token_burst=capacity),
    )
    completion = client.chat_completion(model=MODEL, messages=HI, max_tokens=100)
    [bucket] = store.items("limit:").values()
    assert bucket.level == capacity - completion.usage.total_tokens


def test_a_429_makes_every_client_on_the_store_back_off(
    make_client: Any, emulator: Any, fake_time: Any
) -> None:
    rps = 10
    policy = RateLimits(requests_per_second=rps, backoff=0.5)
    fake = fake_time(make_client())  # every client's sleeps are recorded, not slept
    store = InMemoryStore(clock=fake.monotonic)
    a = make_client(policy_store=store, rate_limits=policy, retry=RetryPolicy.no_wait(0))
    b = make_client(policy_store=store, rate_limits=policy)
    emulator.inject(Fault.status(429, retry_after=2))
    with pytest.raises(RateLimitError):
        a.chat_completion(model=MODEL, messages=HI)
    b.chat_completion(model=MODEL, messages=HI)
    # Blocked for Retry-After, then at half the rate: one slot is 1 / (rps * 0.5) s.
    assert fake.sleeps == [pytest.approx(2 + 1 / (rps * 0.5))]


class _RunningOut:
    """A sync transport whose first answer says the server's request quota is spent."""

    body = json.dumps(
        {
            "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
        }
    ).encode()

    def __init__(self) -> None:
        self.answers = 0

    def send(self, request: Any) -> Reply:
        self.answers += 1
        quota = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "3s"}
        return Reply(200, quota if self.answers == 1 else {}, self.body)

    def close(self) -> None:
        pass


def test_a_server_out_of_requests_holds_the_next_call_until_reset(
    make_client: Any, fake_time: Any, api_key: str
) -> None:
    rps = 10
    fake = fake_time(make_client())
    with HolySheepClient(
        api_key=api_key,
        base_url="http://127.0.0.1:9/v1",  # never dialled: the transport answers
        rate_limits=RateLimits(requests_per_second=rps),
        policy_store=InMemoryStore(clock=fake.monotonic),
        transport=_RunningOut(),
    ) as client:
        client.chat_completion(model=MODEL, messages=HI)
        client.chat_completion(model=MODEL, messages=HI)
    assert fake.sleeps == [pytest.approx(3 + 1 / rps)]


async def test_a_cancelled_waiter_gives_its_turn_back(
    make_async_client: Any, store_clock: Any
) -> None:
    clock = store_clock  # frozen: the limiter's turns are all computed at one instant
    store = InMemoryStore(clock=clock.monotonic)
    client = make_async_client(
        policy_store=store, rate_limits=RateLimits(requests_per_second=2, request_burst=1)
    )
    await client.chat_completion(model=MODEL, messages=HI)
    waiter = asyncio.create_task(client.chat_completion(model=MODEL, messages=HI))
    await asyncio.sleep(0.05)
    [bucket] = store.items("limit:").values()
    # The waiter holds the next turn: the bucket is paid up to it, half a second ahead.
    assert (bucket.level, bucket.at - clock.monotonic()) == (0, 0.5)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    [bucket] = store.items("limit:").values()
    assert bucket.level == 1  # given back: the next caller takes that turn
    assert client.stats().requests == 1  # a cancelled call is not a failed one


# --- limits over any window, counted by a server in another process ----------------------


def _max_in_window(times: list[float], window: float) -> int:
    ordered, lo, best = sorted(times), 0, 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _max_tokens_in_window(billed: list[dict[str, Any]], window: float) -> int:
    ordered = sorted((b["t"], b["prompt"] + b["completion"]) for b in billed)
    lo, total, best = 0, 0, 0
    for t, tokens in ordered:
        total += tokens
        while ordered[lo][0] <= t - window:
            total -= ordered[lo][1]
            lo += 1
        best = max(best, total)
    return best


async def test_no_window_sees_more_than_the_limits_allow(api_key: str) -> None:
    # The measured defect, compressed: a first wave spaced by the token bucket (its
    # estimates are over: max_tokens 90, the server writes 10), then a second wave whose
    # estimates are under (max_tokens unset, the server writes 40). Charged when reserved,
    # the request bucket thought its debt paid long before the first wave had gone, and the
    # second wave started alongside its tail (about 30 starts in a second, bound 24).
    from billing_server import BillingServer

    rps, request_burst, tpm, token_burst = 20, 4, 72_000, 200
    limits = RateLimits(
        requests_per_second=rps,
        request_burst=request_burst,
        tokens_per_minute=tpm,
        token_burst=token_burst,
    )
    first = {"max_tokens": 90}
    with BillingServer(cap_set=10, unset=40) as server:
        async with AsyncHolySheepClient(
            api_key=api_key, base_url=server.url, rate_limits=limits, max_retries=0
        ) as client:
            call = client.chat_completion
            wave = [asyncio.create_task(call(model=MODEL, messages=HI, **first)) for _ in range(30)]
            await asyncio.sleep(1.5)
            wave += [asyncio.create_task(call(model=MODEL, messages=HI)) for _ in range(20)]
            await asyncio.gather(*wave)
        billed = server.ledger()
    assert len(billed) == 50
    assert _max_in_window([b["t"] for b in billed], 1.0) <= rps + request_burst
    # Tokens: usage above an estimate is charged when it is known, so the calls already
    # given their turns go on; over any window the tokens stay within the bucket's bound
    # plus those under-estimates.
    under = 20 * max(0, 4 + 1 + 40 - estimate_tokens(encode_json(build_chat_body(MODEL, HI, {}))))
    for window in (0.5, 1.0, 2.0, 60.0):
        bound = token_burst + tpm / 60 * window + under
        assert _max_tokens_in_window(billed, window) <= bound


def test_a_turn_that_would_come_as_the_deadline_ends_is_refused_at_once(
    make_client: Any, emulator: Any, fake_time: Any, store_clock: Any
) -> None:
    client = make_client(
        policy_store=InMemoryStore(clock=store_clock.monotonic),
        rate_limits=RateLimits(requests_per_second=1, request_burst=1),
        retry=RetryPolicy(max_retries=0, deadline=1.0),
    )
    fake = fake_time(client)  # the call's clock: both stand still unless the client sleeps
    client.chat_completion(model=MODEL, messages=HI)
    with pytest.raises(APITimeoutError) as refused:
        client.chat_completion(model=MODEL, messages=HI)  # its turn: exactly 1 s away
    assert fake.sleeps == []  # not after waiting the whole deadline in vain
    assert refused.value.retry_after == pytest.approx(1.0)
    assert len(emulator.requests) == 1


async def test_calls_that_wake_past_their_turns_take_new_ones_not_go_together(
    api_key: str,
) -> None:
    # Callers asleep until their turns while the event loop is blocked (a process starved
    # for CPU): woken together when it frees, they would go out together, every turn that
    # passed meanwhile in one instant. Each takes a new turn instead.
    from billing_server import BillingServer

    rps, burst = 10, 1
    limits = RateLimits(requests_per_second=rps, request_burst=burst, max_wait=30.0)
    with BillingServer(cap_set=10, unset=10) as server:
        async with AsyncHolySheepClient(
            api_key=api_key, base_url=server.url, rate_limits=limits, max_retries=0
        ) as client:
            calls = [
                asyncio.create_task(client.chat_completion(model=MODEL, messages=HI))
                for _ in range(20)
            ]
            await asyncio.sleep(0.35)  # a few have gone; the others wait their turns
            time.sleep(0.8)  # the loop blocked: eight turns pass
            await asyncio.gather(*calls)
        billed = server.ledger()
    assert len(billed) == 20
    # The turns' bound, and one more for a call the busy test machine sends a little late.
    assert _max_in_window([b["t"] for b in billed], 1.0) <= rps + burst + 1
