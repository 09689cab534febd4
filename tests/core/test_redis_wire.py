"""The asyncio wire the policy scripts go by (``redis_wire``): connecting as the URL says,
replies in order, and failing fast, against real redis-servers and real sockets."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
import uuid

import pytest
import redis
from redis_helpers import RedisServer, redis_server_binary

from holysheep_core import Budget, BudgetUnavailableError, RedisStore
from holysheep_core.policy.operations import BeforeAttempt
from holysheep_core.policy.ratelimit import BucketSpec
from holysheep_core.policy.redis_link import Script, _Health
from holysheep_core.policy.redis_wire import _PACK, Endpoint, Wire, _pack, _Parser

pytestmark = pytest.mark.skipif(redis_server_binary() is None, reason="needs redis-server")

# Refills by a thousandth a second: its level counts the turns taken.
COUNTER = BucketSpec("limit:counter:requests", "requests", 0.001, 1000.0)


def turn(**fields: object) -> BeforeAttempt:
    return BeforeAttempt(call_id=uuid.uuid4().hex, **fields)  # type: ignore[arg-type]


def turns_taken(url: str, namespace: str) -> float:
    level = redis.Redis.from_url(url).hget(f"{{hs:{namespace}}}:{COUNTER.key}", "l")
    return COUNTER.capacity - float(level)


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory):
    """A redis-server that wants a password, also on a unix socket."""
    sock = tmp_path_factory.mktemp("redis") / "redis.sock"
    extra = ("--requirepass", "s3cret-pass", "--unixsocket", str(sock), "--unixsocketperm", "700")
    with RedisServer(extra=extra) as server:
        server.socket = str(sock)
        yield server


async def test_a_password_and_a_database_from_the_url(locked_redis) -> None:
    url = f"redis://:s3cret-pass@127.0.0.1:{locked_redis.port}/3"
    store = RedisStore(url, namespace="db3", policy_timeout=5.0)
    results = await asyncio.gather(*(store.apply_async(turn(buckets=(COUNTER,))) for _ in range(7)))
    await store.aclose()
    assert all(r.granted and r.wait == 0 for r in results)
    assert turns_taken(url, "db3") == pytest.approx(7, abs=0.01)
    # In database 3, nowhere else.
    plain = f"redis://:s3cret-pass@127.0.0.1:{locked_redis.port}/0"
    assert redis.Redis.from_url(plain).keys("{hs:db3}*") == []


async def test_a_unix_socket_url(locked_redis) -> None:
    url = f"unix://:s3cret-pass@{locked_redis.socket}?db=2"
    store = RedisStore(url, namespace="unix", policy_timeout=5.0)
    for _ in range(3):
        assert (await store.apply_async(turn(buckets=(COUNTER,)))).granted
    await store.aclose()
    assert turns_taken(url, "unix") == pytest.approx(3, abs=0.01)


async def test_a_wrong_password_degrades_and_never_shows_it(locked_redis) -> None:
    url = f"redis://:wrong-pass-123@127.0.0.1:{locked_redis.port}/0"
    store = RedisStore(url, namespace="wrong", policy_timeout=5.0)
    budget = Budget(1, name="b", store=store)
    with pytest.raises(BudgetUnavailableError) as caught:
        await store.apply_async(
            BeforeAttempt(call_id="c1", holds=(budget.hold(budget.cap_usd / 10),))
        )
    await store.aclose()
    chain, exc = [], caught.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert chain and all("wrong-pass-123" not in f"{e!s} {e!r}" for e in chain)


async def test_a_server_that_never_answers_fails_the_call_within_the_policy_timeout() -> None:
    # A real socket that takes connections (the kernel's backlog) and never replies.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        store = RedisStore(f"redis://127.0.0.1:{port}/0", namespace="silent", policy_timeout=0.2)
        started = time.monotonic()
        result = await store.apply_async(turn(buckets=(COUNTER,)))
        waited = time.monotonic() - started
    # Degraded to this process's own limiter, well before any connect or read timeout.
    assert result.granted
    assert waited < 2.0


async def test_a_busy_loop_is_not_mistaken_for_a_slow_redis(redis_url) -> None:
    store = RedisStore(redis_url, namespace=uuid.uuid4().hex[:8], policy_timeout=0.2)
    await store.apply_async(turn(buckets=(COUNTER,)))  # connected, scripts loaded

    async def hog() -> None:
        time.sleep(0.6)  # the loop is blocked well past the policy timeout

    decision = asyncio.ensure_future(store.apply_async(turn(buckets=(COUNTER,))))
    await asyncio.sleep(0)  # the decision is written
    await hog()
    await decision
    # Redis answered in time, during the block: the reply is read, nothing degraded.
    assert not store._degraded
    assert turns_taken(redis_url, store.namespace) == pytest.approx(2, abs=0.01)
    await store.aclose()


def test_urls_are_read_as_redis_py_reads_them() -> None:
    e = Endpoint.from_url("rediss://alice:p%40ss@cache.example:6380/5?ssl_cert_reqs=none")
    assert (e.host, e.port, e.db, e.username, e.password) == (
        "cache.example",
        6380,
        5,
        "alice",
        "p@ss",
    )
    assert e.tls is not None and not e.tls.check_hostname
    assert e.handshake() == [("AUTH", "alice", "p@ss"), ("SELECT", "5")]
    assert Endpoint.from_url("redis://localhost").handshake() == []
    assert Endpoint.from_url("redis://h:1/2?db=5").db == 5  # the query wins, as in redis-py
    u = Endpoint.from_url("unix:///run/redis.sock?db=4&password=pw")
    assert (u.path, u.db, u.password, u.host) == ("/run/redis.sock", 4, "pw", None)
    with pytest.raises(ValueError, match="redis://"):
        Endpoint.from_url("localhost:6379")


def test_the_fallback_parser_reads_replies_split_anywhere() -> None:
    hiredis = pytest.importorskip("hiredis")
    stream = (
        b"*3\r\n$2\r\nok\r\n:5\r\n*2\r\n$-1\r\n$4\r\na\r\nb\r\n"
        b"+OK\r\n-NOSCRIPT No matching script\r\n:-7\r\n$0\r\n\r\n*-1\r\n"
    )
    for size in (1, 2, 3, 7, len(stream)):
        ours, theirs = _Parser(), hiredis.Reader()
        got: list[object] = []
        want: list[object] = []
        for i in range(0, len(stream), size):
            piece = stream[i : i + size]
            ours.feed(piece)
            theirs.feed(piece)
            while (reply := ours.gets()) is not False:
                got.append(reply)
            while (reply := theirs.gets()) is not False:
                want.append(reply)
        assert [str(r) for r in got] == [str(r) for r in want]
        assert len(got) == 6


def script(source: str) -> Script:
    return Script("test", source, hashlib.sha1(source.encode()).hexdigest())


ECHO = script("return ARGV[1]")


def wire_for(url: str) -> Wire:
    return Wire(Endpoint.from_url(url), _Health(3, 0.25), connect_timeout=5.0, policy_timeout=5.0)


async def test_a_call_that_can_wait_is_built_and_written_after_the_reply_awaited(
    redis_url,
) -> None:
    wire = wire_for(redis_url)
    assert await wire.submit(ECHO, (), ("connect",)) == b"connect"
    decision = wire.submit(ECHO, (), ("decision",))
    seen: list[bool] = []

    def build() -> tuple[tuple[str, ...], tuple[str, ...]]:
        seen.append(decision.done())
        return (), ("settlement",)

    settlement = wire.submit_later(ECHO, build)
    assert await asyncio.gather(decision, settlement) == [b"decision", b"settlement"]
    assert seen == [True]  # Redis answered the decision without running it first
    alone = wire.submit_later(ECHO, lambda: ((), ("alone",)))  # nothing awaited: goes
    assert await alone == b"alone"
    await wire.aclose()


async def test_a_call_that_can_wait_goes_after_the_request_its_reply_lets_go(
    redis_url, base_url
) -> None:
    # A decision's reply lets its caller send its request. The settlement that waited for
    # that reply must not be built and sent first, on the call's own time: the request goes,
    # then the settlement, while the server answers.
    import aiohttp

    order: list[str] = []
    trace = aiohttp.TraceConfig()

    async def request_sent(*_: object) -> None:
        order.append("request")

    trace.on_request_chunk_sent.append(request_sent)

    def build() -> tuple[tuple[str, ...], tuple[str, ...]]:
        order.append("settlement")
        return (), ("settlement",)

    wire = wire_for(redis_url)
    await wire.submit(ECHO, (), ("connect",))
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:

        async def call() -> None:
            body = {"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "hi"}]}
            async with session.post(base_url + "/chat/completions", json=body) as response:
                await response.read()  # a pooled connection, as a client's calls find

        await call()
        order.clear()

        async def call_after_decision() -> None:
            await wire.submit(ECHO, (), ("decision",))
            await call()

        caller = asyncio.create_task(call_after_decision())
        await asyncio.sleep(0)  # its decision is on the wire
        settlement = wire.submit_later(ECHO, build)
        await caller
        assert await settlement == b"settlement"
    assert order == ["request", "settlement"]
    await wire.aclose()


async def test_decisions_made_after_a_call_that_can_wait_never_hold_it_back(redis_url) -> None:
    wire = wire_for(redis_url)
    await wire.submit(ECHO, (), ("connect",))
    answered = 0

    async def chain() -> None:  # one decision always awaited, whatever the timing
        nonlocal answered
        for i in range(200):
            await wire.submit(ECHO, (), (str(i),))
            answered += 1

    chains = [asyncio.create_task(chain()) for _ in range(2)]
    await asyncio.sleep(0)
    assert await wire.submit_later(ECHO, lambda: ((), ("settlement",))) == b"settlement"
    at_settlement = answered
    await asyncio.gather(*chains)
    assert at_settlement < 20  # it went after the replies awaited when it was made
    await wire.aclose()


async def test_a_build_that_fails_fails_its_own_call_only(redis_url) -> None:
    wire = wire_for(redis_url)
    await wire.submit(ECHO, (), ("connect",))

    def broken() -> tuple[tuple[str, ...], tuple[str, ...]]:
        raise ValueError("a bug")

    bad = wire.submit_later(ECHO, broken)
    good = wire.submit_later(ECHO, lambda: ((), ("good",)))
    with pytest.raises(ValueError, match="a bug"):
        await bad
    assert await good == b"good"
    await wire.aclose()


async def test_a_call_that_can_wait_behind_a_lost_reply_is_still_answered(
    redis_url, redis_server
) -> None:
    # The call that can wait goes behind the decision awaited when it was made. Redis
    # stops answering: the decision fails with the connection, and the call behind it
    # must be written or failed too, though no other call comes to carry it.
    from holysheep_core.policy.redis_link import StoreUnavailable

    wire = Wire(
        Endpoint.from_url(redis_url), _Health(3, 0.25), connect_timeout=5.0, policy_timeout=0.3
    )
    await wire.submit(ECHO, (), ("connect",))
    redis_server.slow(1.0)
    while redis_server.ping():  # answered: the sleep has not begun yet
        await asyncio.sleep(0.01)
    decision = wire.submit(ECHO, (), ("decision",))
    settlement = wire.submit_later(ECHO, lambda: ((), ("settlement",)))
    with pytest.raises(StoreUnavailable):
        await decision
    # Sent again on a new connection: answered once Redis wakes, or failed in its turn.
    done, _ = await asyncio.wait([settlement], timeout=5.0)
    assert done, "the call that could wait was left behind"
    assert isinstance(settlement.exception(), StoreUnavailable) or settlement.result() == (
        b"settlement"
    )
    await wire.aclose()


@pytest.mark.parametrize("pack", [_pack, _PACK], ids=["python", "as-written"])
def test_commands_are_written_with_their_lengths_in_bytes(pack) -> None:
    command = ("EVALSHA", "f" * 40, 1, "{hs:n}:ledger:model:模型-é", "", 0.1, 1 / 3, 10**18)
    parser = _Parser()  # RESP requests read as replies: an array of bulk strings
    parser.feed(pack(command))
    assert parser.gets() == [str(part).encode() for part in command]
    assert parser.gets() is False  # nothing left over
