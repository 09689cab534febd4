"""The circuit breaker: its pure state machine on a fake clock, then clients on a loopback
server that fails on command (the emulator's fault injection)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from holysheep_core import (
    APIConnectionError,
    APITimeoutError,
    BreakerChanged,
    BreakerPolicy,
    CircuitOpenError,
    ClientConfig,
    HolySheepClient,
    InMemoryStore,
    InternalServerError,
    PoolTimeoutError,
    RateLimits,
    RetryPolicy,
)
from holysheep_core.emulator import Fault
from holysheep_core.policy.breaker import (
    Admission,
    Circuit,
    CircuitBreaker,
    CircuitState,
    Outcome,
    Refusal,
    admit,
    classify,
    record,
)
from holysheep_core.policy.guard import CallGuard, Guard
from holysheep_core.policy.operations import AfterAttempt, BeforeAttempt
from holysheep_core.transport.base import Reply

MODEL = "deepseek-v3.2"
HI = [{"role": "user", "content": "hi"}]
NO_RETRY = RetryPolicy.no_wait(max_retries=0)

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
OK, FAIL, NEUTRAL = Outcome.SUCCESS, Outcome.FAILURE, Outcome.NEUTRAL


def fail_n(policy: BreakerPolicy, c: Circuit, n: int, now: float = 0.0) -> Circuit:
    for _ in range(n):
        c, adm = admit(policy, c, now)
        assert isinstance(adm, Admission)
        c = record(policy, c, adm, FAIL, now)
    return c


def peek(policy: BreakerPolicy, c: Circuit, now: float) -> Refusal | None:
    """Whether an attempt at ``now`` would be refused."""
    verdict = admit(policy, c, now)[1]
    return verdict if isinstance(verdict, Refusal) else None


def open_in(store: InMemoryStore, policy: BreakerPolicy, key: str) -> None:
    """Open ``key``'s circuit in ``store`` with one failure, as a client's operations do."""
    op = BeforeAttempt("t", breaker_key=CircuitBreaker.PREFIX + key, breaker=policy)
    adm = store.apply(op).admission
    store.apply(AfterAttempt("t", op.breaker_key, policy, adm, FAIL))


def opened(policy: BreakerPolicy, at: float = 0.0) -> Circuit:
    c = fail_n(policy, Circuit(), policy.failure_threshold, at)
    assert c.state is OPEN
    return c


# --- the state machine ------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 3, 5])
def test_opens_at_exactly_n_consecutive_failures(n: int) -> None:
    policy = BreakerPolicy(failure_threshold=n, cool_down=10)
    c = fail_n(policy, Circuit(), n - 1)
    assert (c.state, c.failures) == (CLOSED, n - 1)
    c = fail_n(policy, c, 1, now=5.0)
    assert (c.state, c.failures, c.opened_at) == (OPEN, n, 5.0)


def test_a_success_or_a_4xx_resets_the_consecutive_count() -> None:
    policy = BreakerPolicy(failure_threshold=3)
    c = fail_n(policy, Circuit(), 2)
    c, adm = admit(policy, c, 0)
    c = record(policy, c, adm, classify(Reply(404, {})), 0)
    assert c.failures == 0
    c = fail_n(policy, c, 2)
    c, adm = admit(policy, c, 0)
    c = record(policy, c, adm, NEUTRAL, 0)  # a 429 neither counts nor resets
    assert (c.state, c.failures) == (CLOSED, 2)


def test_open_refuses_with_the_time_left_until_the_cool_down_ends() -> None:
    policy = BreakerPolicy(failure_threshold=1, cool_down=30)
    c = opened(policy, at=100.0)
    c, verdict = admit(policy, c, 112.5)
    assert verdict == Refusal(OPEN, 17.5, 1, 0)
    assert peek(policy, c, 129.9) == Refusal(OPEN, pytest.approx(0.1), 1, 0)
    assert peek(policy, c, 130.0) is None  # rested: half-open, a probe may go


@pytest.mark.parametrize("probes", [1, 2, 4])
def test_half_open_admits_only_the_bounded_probes(probes: int) -> None:
    policy = BreakerPolicy(failure_threshold=1, cool_down=1, half_open_probes=probes)
    c = opened(policy)
    passes = []
    for _ in range(probes + 3):
        c, verdict = admit(policy, c, 2.0)
        passes.append(verdict)
    admitted = [v for v in passes if isinstance(v, Admission)]
    assert len(admitted) == probes and all(a.probe for a in admitted)
    assert all(isinstance(v, Refusal) and v.state is HALF_OPEN for v in passes[probes:])
    # A probe that ends without a verdict frees its slot for exactly one more.
    c = record(policy, c, admitted[0], NEUTRAL, 2.5)
    assert c.state is HALF_OPEN
    c, again = admit(policy, c, 2.5)
    assert isinstance(again, Admission) and again.probe
    assert isinstance(admit(policy, c, 2.5)[1], Refusal)


def test_closes_after_m_probe_successes() -> None:
    policy = BreakerPolicy(
        failure_threshold=1, cool_down=1, half_open_probes=3, success_threshold=3
    )
    c = opened(policy)
    admissions = []
    for _ in range(3):
        c, adm = admit(policy, c, 2.0)
        admissions.append(adm)
    for adm in admissions[:2]:
        c = record(policy, c, adm, OK, 2.1)
        assert c.state is HALF_OPEN
    c = record(policy, c, admissions[2], OK, 2.2)
    assert (c.state, c.failures, c.probes) == (CLOSED, 0, 0)


def test_a_probe_failure_reopens_for_a_new_cool_down() -> None:
    policy = BreakerPolicy(failure_threshold=1, cool_down=10, half_open_probes=2)
    c = opened(policy, at=0.0)
    c, first = admit(policy, c, 10.0)
    c, second = admit(policy, c, 10.0)
    c = record(policy, c, first, FAIL, 11.0)
    assert (c.state, c.opened_at) == (OPEN, 11.0)
    assert peek(policy, c, 20.0) == Refusal(OPEN, pytest.approx(1.0), 1, 0)
    # The other probe's late success belongs to the old half-open spell: ignored.
    assert record(policy, c, second, OK, 12.0) == c


def test_attempts_that_started_before_a_change_cannot_move_the_new_state() -> None:
    policy = BreakerPolicy(failure_threshold=2, cool_down=5)
    c = Circuit()
    c, slow = admit(policy, c, 0)  # still in flight when the circuit opens
    c = fail_n(policy, c, 2)
    assert c.state is OPEN
    assert record(policy, c, slow, FAIL, 1) == c  # does not extend the open spell
    c, _probe = admit(policy, c, 10)
    assert record(policy, c, slow, OK, 10) == c  # does not close it behind the probe's back


def test_probes_that_never_report_are_forgotten_after_probe_timeout() -> None:
    policy = BreakerPolicy(failure_threshold=1, cool_down=1, probe_timeout=60)
    c = opened(policy)
    c, lost = admit(policy, c, 2)
    assert isinstance(admit(policy, c, 61)[1], Refusal)
    c, fresh = admit(policy, c, 62)
    assert isinstance(fresh, Admission) and fresh.probe
    assert record(policy, c, lost, FAIL, 63) == c  # the lost probe's news is stale


@pytest.mark.parametrize(
    ("outcome", "verdict"),
    [
        (Reply(200, {}), OK),
        (Reply(400, {}), OK),
        (Reply(401, {}), OK),
        (Reply(404, {}), OK),
        (Reply(408, {}), NEUTRAL),
        (Reply(429, {}), NEUTRAL),
        (Reply(500, {}), FAIL),
        (Reply(503, {}), FAIL),
        (APITimeoutError("read timed out"), FAIL),
        (APIConnectionError("refused"), FAIL),
        (PoolTimeoutError("our pool is full"), NEUTRAL),
        (CircuitOpenError("open", key="k", retry_after=1.0), NEUTRAL),
        (asyncio.CancelledError(), NEUTRAL),
    ],
)
def test_what_counts_as_a_failure(outcome: Any, verdict: Outcome) -> None:
    assert classify(outcome) is verdict


@pytest.mark.parametrize(
    "fields",
    [
        {"failure_threshold": 0},
        {"failure_threshold": True},
        {"half_open_probes": 0},
        {"success_threshold": 1.5},
        {"cool_down": -1},
        {"probe_timeout": 0},
    ],
)
def test_a_policy_that_cannot_work_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        BreakerPolicy(**fields)


def test_no_wait_mode_probes_at_once() -> None:
    policy = BreakerPolicy.no_wait(failure_threshold=2)
    c = opened(policy, at=7.0)
    assert peek(policy, c, 7.0) is None


def test_half_open_admits_the_bound_across_threads() -> None:
    policy = BreakerPolicy(failure_threshold=1, cool_down=0, half_open_probes=3)
    now = 0.0
    store = InMemoryStore(clock=lambda: now)
    open_in(store, policy, "k")
    now = 1.0
    start = threading.Barrier(32)
    verdicts: list[Any] = []
    op = BeforeAttempt("t", breaker_key="breaker:k", breaker=policy)

    def race() -> None:
        start.wait()
        verdicts.append(store.apply(op).admission)

    threads = [threading.Thread(target=race) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(v, Admission) for v in verdicts) == 3
    assert CircuitBreaker(policy).states(store, 1.0) == {"k": HALF_OPEN}


# --- on a server that fails on command --------------------------------------------------


def key_of(client: Any, model: str = MODEL) -> str:
    return f"{model}@{client.base_url}"


def test_opens_at_exactly_n_and_sheds_load(emulator: Any, make_client: Any) -> None:
    events: list[BreakerChanged] = []
    client = make_client(
        retry=NO_RETRY,
        breaker=BreakerPolicy(failure_threshold=3, cool_down=60),
        on_breaker_change=(events.append,),
    )
    emulator.inject(Fault.status(503), times=10)
    for _ in range(3):
        with pytest.raises(InternalServerError):
            client.chat_completion(model=MODEL, messages=HI)
    assert client.stats().breakers == {key_of(client): "open"}
    for _ in range(5):
        with pytest.raises(CircuitOpenError) as shed:
            client.chat_completion(model=MODEL, messages=HI)
        assert 0 < shed.value.retry_after <= 60
        assert shed.value.key == key_of(client)
    assert len(emulator.requests) == 3  # shed calls never reached the server
    stats = client.stats()
    assert stats.errors == {"InternalServerError": 3, "CircuitOpenError": 5}
    assert [(e.old, e.new, e.failures) for e in events] == [("closed", "open", 3)]
    assert events[0].retry_after == 60 and events[0].model == MODEL


def test_each_failed_attempt_counts_and_a_retry_is_shed_once_open(
    emulator: Any, make_client: Any
) -> None:
    # Retries hit the server too, so each attempt counts: with 3 attempts a call, the
    # fifth failure comes on the second call's second attempt and its third is shed.
    client = make_client(
        retry=RetryPolicy.no_wait(max_retries=2),
        breaker=BreakerPolicy(failure_threshold=5, cool_down=60),
    )
    emulator.inject(Fault.status(500), times=20)
    with pytest.raises(InternalServerError):
        client.chat_completion(model=MODEL, messages=HI)
    with pytest.raises(CircuitOpenError) as shed:
        client.chat_completion(model=MODEL, messages=HI)
    assert isinstance(shed.value.__cause__, InternalServerError)
    assert len(emulator.requests) == 5


def test_4xx_and_handled_429s_do_not_open_it(emulator: Any, make_client: Any) -> None:
    client = make_client(
        retry=RetryPolicy.no_wait(max_retries=2),
        breaker=BreakerPolicy(failure_threshold=2, cool_down=60),
    )
    emulator.inject(Fault.status(429, retry_after_ms=1), times=2)
    assert client.chat_completion(model=MODEL, messages=HI).attempts == 3
    for code in (400, 404, 422):
        emulator.inject(Fault.status(code))
        with pytest.raises(Exception) as refused:
            client.chat_completion(model=MODEL, messages=HI)
        assert refused.value.status_code == code
    assert client.stats().breakers == {key_of(client): "closed"}
    emulator.inject(Fault.status(502), times=2)
    with pytest.raises(CircuitOpenError):  # opened by its second attempt, shed on the third
        client.chat_completion(model=MODEL, messages=HI)
    assert client.stats().breakers == {key_of(client): "open"}


@pytest.mark.parametrize("how", ["json", "stream", "stream left early"])
def test_an_answer_resets_the_count_by_the_time_its_call_ends(
    how: str, emulator: Any, make_client: Any
) -> None:
    # A closed circuit hears of an answer's success with its usage (one store update for
    # both), at the end of a stream: each failure here is followed by a success, so two
    # never come in a row and a threshold of two is never reached.
    client = make_client(retry=NO_RETRY, breaker=BreakerPolicy(failure_threshold=2))
    for _ in range(3):
        emulator.inject(Fault.status(503))
        with pytest.raises(InternalServerError):
            client.chat_completion(model=MODEL, messages=HI)
        if how == "json":
            client.chat_completion(model=MODEL, messages=HI)
        else:
            with client.stream_chat_completion(model=MODEL, messages=HI) as stream:
                if how == "stream":
                    list(stream)
                else:
                    next(stream)
    assert client.stats().breakers == {key_of(client): "closed"}
    assert len(emulator.requests) == 6


def test_a_call_waiting_for_its_turn_holds_no_probe_slot(api_key: str, store_clock: Any) -> None:
    store = InMemoryStore(clock=store_clock.monotonic)
    config = ClientConfig.resolve(
        api_key=api_key,
        policy_store=store,
        breaker=BreakerPolicy.no_wait(failure_threshold=1),  # half-open as soon as open
        rate_limits=RateLimits(requests_per_second=1, request_burst=1),
    )
    guard = Guard(config)

    def enter(call: CallGuard) -> float:
        op = guard.before(call, None)
        return guard.entered(call, op, store.apply(op))

    def admit_after_waiting(call: CallGuard) -> None:
        op = guard.admit(call)
        guard.admitted(call, store.apply(op))

    failing = guard.open(MODEL, 0, None)
    assert enter(failing) == 0  # the one turn there is, and a pass
    guard.left(failing, store.apply(guard.after(failing, Reply(503, {}))))
    first, second = guard.open(MODEL, 0, None), guard.open(MODEL, 0, None)
    assert [enter(c) for c in (first, second)] == [1.0, 2.0]
    [circuit] = store.items("breaker:").values()
    assert circuit.probes == 0  # both wait for the limiter without a probe slot
    admit_after_waiting(first)  # its turn came: it takes the half-open circuit's one probe
    with pytest.raises(CircuitOpenError):
        admit_after_waiting(second)
    [bucket] = store.items("limit:").values()
    # Paid up to the second's turn (2 s ahead), which it gave back: one request free there.
    assert (bucket.level, bucket.at - store_clock.monotonic()) == (1, 2.0)


def test_breakers_are_per_model(emulator: Any, make_client: Any) -> None:
    client = make_client(retry=NO_RETRY, breaker=BreakerPolicy(failure_threshold=1))
    emulator.inject(Fault.status(503))
    with pytest.raises(InternalServerError):
        client.chat_completion(model=MODEL, messages=HI)
    with pytest.raises(CircuitOpenError):
        client.chat_completion(model=MODEL, messages=HI)
    assert client.chat_completion(model="gpt-4.1", messages=HI).model == "gpt-4.1"
    assert client.stats().breakers == {
        key_of(client): "open",
        key_of(client, "gpt-4.1"): "closed",
    }


def _open_then_rest(client: Any, emulator: Any, clock: Any, cool_down: float) -> None:
    emulator.inject(Fault.status(503))
    with pytest.raises(InternalServerError):
        client.chat_completion(model=MODEL, messages=HI)
    assert client.stats().breakers == {key_of(client): "open"}
    clock.now += cool_down
    assert client.stats().breakers == {key_of(client): "half_open"}
    emulator.reset()


async def test_half_open_admits_only_the_probes_among_50_concurrent_callers(
    emulator: Any,
    make_async_client: Any,
    store_clock: Any,
) -> None:
    clock = store_clock
    events: list[BreakerChanged] = []
    client = make_async_client(
        retry=NO_RETRY,
        policy_store=InMemoryStore(clock=clock.monotonic),
        breaker=BreakerPolicy(
            failure_threshold=1, cool_down=30, half_open_probes=2, success_threshold=2
        ),
        on_breaker_change=(events.append,),
    )
    emulator.inject(Fault.status(503))
    with pytest.raises(InternalServerError):
        await client.chat_completion(model=MODEL, messages=HI)
    clock.now += 30
    emulator.reset()
    # The probes answer slowly, so every caller arrives while they are in flight.
    emulator.inject(Fault.slow_first_byte(0.2), times=2)
    results = await asyncio.gather(
        *(client.chat_completion(model=MODEL, messages=HI) for _ in range(50)),
        return_exceptions=True,
    )
    answered = [r for r in results if not isinstance(r, BaseException)]
    shed = [r for r in results if isinstance(r, CircuitOpenError)]
    assert (len(answered), len(shed)) == (2, 48)
    assert len(emulator.requests) == 2
    assert all("half-open" in str(e) for e in shed)
    assert [(e.old, e.new) for e in events] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert client.stats().breakers == {key_of(client): "closed"}
    await client.chat_completion(model=MODEL, messages=HI)  # closed: calls flow again


def test_half_open_admits_only_the_probes_among_50_threads(
    emulator: Any, make_client: Any, store_clock: Any
) -> None:
    clock = store_clock
    client = make_client(
        retry=NO_RETRY,
        max_connections=50,
        policy_store=InMemoryStore(clock=clock.monotonic),
        breaker=BreakerPolicy(failure_threshold=1, cool_down=30, half_open_probes=3),
    )
    _open_then_rest(client, emulator, clock, 30)
    emulator.inject(Fault.slow_first_byte(0.3), times=3)
    start = threading.Barrier(50)
    results: list[Any] = []

    def call() -> None:
        start.wait()
        try:
            results.append(client.chat_completion(model=MODEL, messages=HI))
        except CircuitOpenError as exc:
            results.append(exc)

    threads = [threading.Thread(target=call) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(not isinstance(r, CircuitOpenError) for r in results) == 3
    assert len(emulator.requests) == 3


def test_a_probe_failure_reopens_and_sheds_again(
    emulator: Any, make_client: Any, store_clock: Any
) -> None:
    clock = store_clock
    client = make_client(
        retry=NO_RETRY,
        policy_store=InMemoryStore(clock=clock.monotonic),
        breaker=BreakerPolicy(failure_threshold=1, cool_down=10),
    )
    _open_then_rest(client, emulator, clock, 10)
    emulator.inject(Fault.status(500))
    with pytest.raises(InternalServerError):
        client.chat_completion(model=MODEL, messages=HI)  # the probe
    assert client.stats().breakers == {key_of(client): "open"}
    with pytest.raises(CircuitOpenError) as shed:
        client.chat_completion(model=MODEL, messages=HI)
    assert shed.value.retry_after == pytest.approx(10)
    assert len(emulator.requests) == 1
    clock.now += 10
    assert client.chat_completion(model=MODEL, messages=HI).attempts == 1
    assert client.stats().breakers == {key_of(client): "closed"}


async def test_a_cancelled_probe_is_no_failure_and_frees_its_slot(
    emulator: Any,
    make_async_client: Any,
    store_clock: Any,
) -> None:
    clock = store_clock
    client = make_async_client(
        retry=NO_RETRY,
        policy_store=InMemoryStore(clock=clock.monotonic),
        breaker=BreakerPolicy(failure_threshold=1, cool_down=5, half_open_probes=1),
    )
    emulator.inject(Fault.status(503))
    with pytest.raises(InternalServerError):
        await client.chat_completion(model=MODEL, messages=HI)
    clock.now += 5
    emulator.inject(Fault.slow_first_byte(5))
    probe = asyncio.create_task(client.chat_completion(model=MODEL, messages=HI))
    while len(emulator.requests) < 2:  # the probe is on the wire
        await asyncio.sleep(0.01)
    with pytest.raises(CircuitOpenError):  # its slot is taken
        await client.chat_completion(model=MODEL, messages=HI)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert client.stats().breakers == {key_of(client): "half_open"}  # not reopened
    assert (await client.chat_completion(model=MODEL, messages=HI)).attempts == 1
    assert client.stats().breakers == {key_of(client): "closed"}
    assert client.stats().errors == {"InternalServerError": 1, "CircuitOpenError": 1}


class _Interrupting:
    """A sync transport whose send is interrupted, as by Ctrl-C during a request."""

    def __init__(self) -> None:
        self.sent = 0

    def send(self, request: Any) -> Reply:
        self.sent += 1
        raise KeyboardInterrupt

    def close(self) -> None:
        pass


def test_an_interrupted_probe_frees_its_slot(api_key: str, store_clock: Any) -> None:
    clock = store_clock
    store = InMemoryStore(clock=clock.monotonic)
    policy = BreakerPolicy(failure_threshold=1, cool_down=5)
    key = f"{MODEL}@http://127.0.0.1:9/v1"
    open_in(store, policy, key)
    clock.now += 5
    transport = _Interrupting()
    with HolySheepClient(
        api_key=api_key,
        base_url="http://127.0.0.1:9/v1",
        retry=NO_RETRY,
        breaker=policy,
        policy_store=store,
        transport=transport,
    ) as client:
        for _ in range(2):  # the second would be refused if the first kept its slot
            with pytest.raises(KeyboardInterrupt):
                client.chat_completion(model=MODEL, messages=HI)
        assert transport.sent == 2
        assert client.stats().breakers == {key: "half_open"}
        assert client.stats().errors == {}


def test_a_waiting_call_asks_for_its_pass_as_long_ahead_as_passes_have_taken(
    api_key: str, store_clock: Any
) -> None:
    # A networked store under load gives passes in tens of milliseconds: asked for at the
    # turn, each would come after it, and more than ``LATE_TURN`` after it the call takes
    # a new turn (its own is spent). The lead follows how long passes have taken, up to
    # a cap (a pass held while waiting may be a probe's), and nothing without a breaker.
    from holysheep_core.policy.guard import PASS_LEAD_CAP

    def guard_with(breaker: BreakerPolicy | None) -> Guard:
        config = ClientConfig.resolve(
            api_key=api_key,
            policy_store=InMemoryStore(clock=store_clock.monotonic),
            breaker=breaker,
            rate_limits=RateLimits(requests_per_second=1, request_burst=1),
        )
        return Guard(config)

    guard = guard_with(BreakerPolicy())
    call = guard.open(MODEL, 0, None)
    assert guard.pass_lead(call) == 0.0
    for _ in range(30):
        guard.pass_took(0.08)
    assert guard.pass_lead(call) == pytest.approx(0.08, rel=0.01)
    for _ in range(30):
        guard.pass_took(5.0)  # a stalled store: the lead stops at the cap
    assert guard.pass_lead(call) == PASS_LEAD_CAP
    unbroken = guard_with(None)
    unbroken.pass_took(0.08)
    assert unbroken.pass_lead(unbroken.open(MODEL, 0, None)) == 0.0
