"""A burst of 429s that say when to come back is ridden out, within the call's deadline."""

from __future__ import annotations

from typing import Any

from holysheep_core import RateLimitError, RetryPolicy
from holysheep_core.emulator import Fault

MESSAGES = [{"role": "user", "content": "hi"}]
BURST = Fault.status(429, retry_after=0.05)


def test_sync_rides_out_ten_timed_429s(emulator: Any, make_client: Any) -> None:
    client = make_client(retry=RetryPolicy())  # the defaults, as a user gets them
    emulator.inject(BURST, times=10)
    answer = client.chat_completion(model="deepseek-v3.2", messages=MESSAGES)
    assert answer.choices[0].message.content
    assert len(emulator.requests) == 11
    stats = client.stats()
    assert stats.retries == 10 and stats.successes == 1 and stats.errors == {}


async def test_async_rides_out_ten_timed_429s(emulator: Any, make_async_client: Any) -> None:
    client = make_async_client(retry=RetryPolicy())
    emulator.inject(BURST, times=10)
    answer = await client.embeddings(model="text-embedding-3-small", input=["a", "b"])
    assert len(answer.data) == 2
    assert len(emulator.requests) == 11
    assert client.stats().retries == 10


def test_untimed_429s_still_stop_at_max_retries(emulator: Any, make_client: Any) -> None:
    client = make_client(retry=RetryPolicy(initial_delay=0.01, max_delay=0.01))
    emulator.inject(Fault.status(429), times=10)
    try:
        client.chat_completion(model="deepseek-v3.2", messages=MESSAGES)
    except RateLimitError as exc:
        assert exc.attempts == 3
    else:
        raise AssertionError("untimed 429s past max_retries must fail")
    assert len(emulator.requests) == 3


def test_a_burst_longer_than_the_deadline_fails_within_it(emulator: Any, make_client: Any) -> None:
    client = make_client(retry=RetryPolicy(deadline=0.3))
    emulator.inject(Fault.status(429, retry_after=0.1), times=50)
    try:
        client.chat_completion(model="deepseek-v3.2", messages=MESSAGES)
    except RateLimitError as exc:
        assert any("deadline" in note for note in exc.__notes__)
    else:
        raise AssertionError("a burst past the deadline must fail")
    assert len(emulator.requests) <= 4  # 0.3 s of 0.1 s waits
