"""Fallback models, on the emulator: when a call moves on, what it sends, what it books."""

from __future__ import annotations

from typing import Any

import pytest

from holysheep_core import (
    BadRequestError,
    BreakerPolicy,
    CircuitOpenError,
    ConfigurationError,
    ContextLengthExceededError,
    FallbackUsed,
    HolySheepClient,
    InternalServerError,
    InvalidRequestError,
    RetryPolicy,
)
from holysheep_core.emulator import Fault

PRIMARY, BACKUP, THIRD = "gpt-4.1", "deepseek-v3.2", "gemini-2.5-flash"
HI = [{"role": "user", "content": "hi there"}]
NO_WAIT = RetryPolicy.no_wait(max_retries=1)


def models_sent(emulator: Any) -> list[str]:
    return [r.body["model"] for r in emulator.requests]


def test_spent_retries_move_the_call_to_the_next_model(emulator: Any, make_client: Any) -> None:
    events: list[FallbackUsed] = []
    client = make_client(retry=NO_WAIT, fallback_models=(BACKUP,), on_fallback=(events.append,))
    emulator.inject(Fault.status(503), times=2)  # both attempts on the first model
    completion = client.chat_completion(model=PRIMARY, messages=HI)
    assert models_sent(emulator) == [PRIMARY, PRIMARY, BACKUP]
    assert completion.model == BACKUP  # the server names the model that answered
    assert completion.served_model == BACKUP  # and so does the client, whatever the server says
    assert completion.attempts == 3
    # Usage and cost are booked to the model that served, at its price.
    assert completion.cost_usd == client.prices.cost(BACKUP, completion.usage)
    stats = client.stats()
    assert set(stats.by_model) == {BACKUP}
    assert stats.by_model[BACKUP].usage.total_tokens == completion.usage.total_tokens
    assert (stats.requests, stats.successes, stats.errors, stats.retries) == (1, 1, {}, 2)
    assert [(e.model, e.next_model, e.error_type, e.status_code) for e in events] == [
        (PRIMARY, BACKUP, "InternalServerError", 503)
    ]


def test_a_context_length_error_moves_on_without_retrying(emulator: Any, make_client: Any) -> None:
    client = make_client(retry=NO_WAIT, fallback_models=(PRIMARY,))
    long = [{"role": "user", "content": "word " * 1500}]  # past a 1,000-token window
    completion = client.chat_completion(model="tiny-small-context", messages=long)
    assert models_sent(emulator) == ["tiny-small-context", PRIMARY]
    assert completion.model == completion.served_model == PRIMARY


def test_an_open_breaker_moves_on_without_a_request(emulator: Any, make_client: Any) -> None:
    client = make_client(
        retry=RetryPolicy.no_wait(max_retries=0),
        breaker=BreakerPolicy(failure_threshold=1, cool_down=60),
        fallback_models=(BACKUP,),
    )
    emulator.inject(Fault.status(500))
    assert client.chat_completion(model=PRIMARY, messages=HI).model == BACKUP
    emulator.reset()
    assert client.chat_completion(model=PRIMARY, messages=HI).model == BACKUP
    assert models_sent(emulator) == [BACKUP]  # the open circuit shed the first model


def test_errors_another_model_would_share_do_not_fall_back(emulator: Any, make_client: Any) -> None:
    client = make_client(retry=NO_WAIT, fallback_models=(BACKUP,))
    emulator.inject(Fault.status(400))
    with pytest.raises(BadRequestError):
        client.chat_completion(model=PRIMARY, messages=HI)
    emulator.inject(Fault.status(503, should_retry=False))  # the server says: do not retry
    with pytest.raises(InternalServerError):
        client.chat_completion(model=PRIMARY, messages=HI)
    assert models_sent(emulator) == [PRIMARY, PRIMARY]


def test_the_last_error_says_what_was_tried(emulator: Any, make_client: Any) -> None:
    client = make_client(retry=NO_WAIT, fallback_models=(BACKUP, THIRD))
    emulator.inject(Fault.status(502), times=6)
    with pytest.raises(InternalServerError) as failed:
        client.chat_completion(model=PRIMARY, messages=HI)
    assert models_sent(emulator) == [PRIMARY, PRIMARY, BACKUP, BACKUP, THIRD, THIRD]
    assert failed.value.attempts == 6
    notes = " ".join(failed.value.__notes__)
    assert PRIMARY in notes and BACKUP in notes
    assert client.stats().errors == {"InternalServerError": 1}


def test_a_call_can_override_or_drop_the_clients_fallbacks(emulator: Any, make_client: Any) -> None:
    client = make_client(retry=NO_WAIT, fallback_models=(BACKUP,))
    emulator.inject(Fault.status(503), times=2)
    answer = client.chat_completion(model=PRIMARY, messages=HI, fallback_models=[THIRD])
    assert answer.model == THIRD
    emulator.inject(Fault.status(503), times=2)
    with pytest.raises(InternalServerError):
        client.chat_completion(model=PRIMARY, messages=HI, fallback_models=[])
    emulator.inject(Fault.status(503), times=2)
    assert client.chat_completion(model=PRIMARY, messages=HI, fallback_models=None).model == BACKUP
    assert models_sent(emulator)[-1] == BACKUP
    # The option steers the client; it never goes on the wire.
    assert all("fallback_models" not in r.body for r in emulator.requests)


@pytest.mark.parametrize("bad", ["gpt-4.1", [""], [None], 42])
def test_bad_fallback_models_are_refused_before_the_network(
    emulator: Any, make_client: Any, bad: Any
) -> None:
    client = make_client()
    with pytest.raises(InvalidRequestError) as refused:
        client.chat_completion(model=PRIMARY, messages=HI, fallback_models=bad)
    assert refused.value.param == "fallback_models"
    with pytest.raises(ConfigurationError):
        HolySheepClient(api_key="hs-abc", base_url=emulator.url, fallback_models=bad)
    assert emulator.requests == []


def test_without_fallbacks_a_context_length_error_stands_after_one_request(
    emulator: Any, make_client: Any
) -> None:
    client = make_client(retry=NO_WAIT)
    long = [{"role": "user", "content": "word " * 1500}]
    with pytest.raises(ContextLengthExceededError):  # no fallbacks: the error stands
        client.chat_completion(model="tiny-small-context", messages=long)
    assert len(emulator.requests) == 1


async def test_a_stream_falls_back_before_its_first_byte(
    emulator: Any, make_async_client: Any
) -> None:
    client = make_async_client(retry=NO_WAIT, fallback_models=(BACKUP,))
    emulator.inject(Fault.status(503), times=2)
    async with await client.stream_chat_completion(model=PRIMARY, messages=HI) as stream:
        chunks = [c async for c in stream]
    assert {c.model for c in chunks} == {BACKUP}
    usage = chunks[-1].usage
    assert chunks[-1].cost_usd == client.prices.cost(BACKUP, usage)
    stats = client.stats()
    assert set(stats.by_model) == {BACKUP}
    assert stats.usage.total_tokens == usage.total_tokens


def test_embeddings_never_fall_back(emulator: Any, make_client: Any) -> None:
    # Another model's vectors live in another space: mixing them would be silently wrong.
    client = make_client(retry=NO_WAIT, fallback_models=(BACKUP,))
    emulator.inject(Fault.status(503).at("/v1/embeddings"), times=2)
    with pytest.raises(InternalServerError):
        client.embeddings(model="text-embedding-3-small", input="hello")
    assert models_sent(emulator) == ["text-embedding-3-small"] * 2


def test_an_open_breaker_without_fallbacks_is_the_error(emulator: Any, make_client: Any) -> None:
    client = make_client(
        retry=RetryPolicy.no_wait(max_retries=0), breaker=BreakerPolicy(failure_threshold=1)
    )
    emulator.inject(Fault.status(500))
    with pytest.raises(InternalServerError):
        client.chat_completion(model=PRIMARY, messages=HI)
    with pytest.raises(CircuitOpenError):
        client.chat_completion(model=PRIMARY, messages=HI, fallback_models=[])
