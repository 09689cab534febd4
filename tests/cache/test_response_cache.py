"""The response cache through the clients' public API, against the emulator (which counts
the requests it got) and a real redis-server."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal

import pytest

from holysheep_core import (
    AsyncHolySheepClient,
    Budget,
    BudgetExceededError,
    CacheHit,
    ConfigurationError,
    HolySheepClient,
    HolySheepError,
    RateLimits,
    ResponseCache,
)
from holysheep_core.cache.keys import request_key, same_specifics
from holysheep_core.emulator import Fault

MODEL = "deepseek-v3.2"
OTHER = "gpt-4.1"
HI = [{"role": "user", "content": "What is the capital of France?"}]


def chat_requests(emulator) -> list:
    return [r for r in emulator.requests if r.path.endswith("/chat/completions")]


def embedding_requests(emulator) -> list:
    return [r for r in emulator.requests if r.path.endswith("/embeddings")]


@pytest.fixture(params=["memory", "redis"])
def make_cache(request):
    """ResponseCache factory for each backend (a real redis-server for "redis")."""
    made: list[ResponseCache] = []

    def make(**kw) -> ResponseCache:
        if request.param == "redis":
            kw.setdefault("redis", request.getfixturevalue("redis_url"))
        cache = ResponseCache(**kw)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


def test_exact_hit_is_free_and_sends_nothing(emulator, api_key, make_cache):
    hits: list[CacheHit] = []
    cache = make_cache(on_hit=hits.append)
    with HolySheepClient(api_key=api_key, base_url=emulator.url, cache=cache) as client:
        first = client.chat_completion(model=MODEL, messages=HI, temperature=0)
        second = client.chat_completion(model=MODEL, messages=HI, temperature=0)
        stats = client.stats()
    assert len(chat_requests(emulator)) == 1
    assert not first.cache_hit and second.cache_hit
    assert second.choices[0].message.content == first.choices[0].message.content
    assert second.cost_usd == 0 and first.cost_usd > 0
    assert stats.cache.hits == 1 and stats.cache.misses == 1
    assert stats.cache.saved_usd == first.cost_usd
    assert stats.requests == 1  # a hit is not a request
    assert stats.usage.cost_usd == first.cost_usd
    assert [h.kind for h in hits] == ["exact"] and hits[0].saved_usd == first.cost_usd


def test_every_answer_changing_parameter_is_part_of_the_key(emulator, api_key, make_cache):
    cache = make_cache()
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    variants = [
        {"model": MODEL},
        {"model": OTHER},
        {"model": MODEL, "max_tokens": 5},
        {"model": MODEL, "tools": tools},
        {"model": MODEL, "tools": tools, "tool_choice": "none"},
        {
            "model": MODEL,
            "response_format": {"type": "json_object"},
            "messages": [{"role": "user", "content": "Answer in json: capital of France?"}],
        },
        {"model": MODEL, "messages": [{"role": "system", "content": "Be terse."}, *HI]},
        {"model": MODEL, "stop": ["Paris"]},
    ]
    with HolySheepClient(api_key=api_key, base_url=emulator.url, cache=cache) as client:
        for v in variants:
            call = {"messages": HI, **v}
            client.chat_completion(**call)
        assert client.stats().cache.hits == 0
        for v in variants:  # each is now cached under its own key
            assert client.chat_completion(**{"messages": HI, **v}).cache_hit
    assert len(chat_requests(emulator)) == len(variants)


def test_sampled_requests_are_not_cached_unless_asked(emulator, api_key, make_cache):
    with HolySheepClient(api_key=api_key, base_url=emulator.url, cache=make_cache()) as client:
        for _ in range(2):
            client.chat_completion(model=MODEL, messages=HI, temperature=0.7)
            client.chat_completion(model=MODEL, messages=HI, n=2, temperature=0)
        seeded = [client.chat_completion(model=MODEL, messages=HI, temperature=0.7, seed=1)]
        seeded.append(client.chat_completion(model=MODEL, messages=HI, temperature=0.7, seed=1))
        stats = client.stats().cache
    assert len(chat_requests(emulator)) == 5
    assert stats.skipped == 4 and stats.hits == 1 and seeded[1].cache_hit
    opted = make_cache(cache_sampled=True)
    with HolySheepClient(api_key=api_key, base_url=emulator.url, cache=opted) as client:
        client.chat_completion(model=MODEL, messages=HI, temperature=0.7)
        assert client.chat_completion(model=MODEL, messages=HI, temperature=0.7).cache_hit


def test_stream_miss_is_stored_and_a_hit_replays_with_usage(emulator, api_key, make_cache):
    cache = make_cache()
    with HolySheepClient(api_key=api_key, base_url=emulator.url, cache=cache) as client:
        with client.stream_chat_completion(model=MODEL, messages=HI) as stream:
            live = list(stream)
        with client.stream_chat_completion(model=MODEL, messages=HI) as stream:
            replayed = list(stream)
        # a non-streamed call is answered by the streamed one's entry, and the reverse
        completion = client.chat_completion(model=MODEL, messages=HI)
        stats = client.stats()
    assert len(chat_requests(emulator)) == 1
    text = "".join(c.choices[0].delta.content or "" for c in live if c.choices)
    assert "".join(c.choices[0].delta.content or "" for c in replayed if c.choices) == text
    assert completion.cache_hit and completion.choices[0].message.content == text
    assert replayed[-1].choices == [] and replayed[-1].usage == live[-1].usage
    assert replayed[-1].cost_usd == 0 and all(c.cache_hit for c in replayed)
    assert stats.cache.hits == 2 and stats.cache.saved_usd == 2 * live[-1].cost_usd


def test_a_stream_left_early_stores_nothing(emulator, api_key, make_cache):
    with HolySheepClient(api_key=api_key, base_url=emulator.url, cache=make_cache()) as client:
        with client.stream_chat_completion(model=MODEL, messages=HI) as stream:
            next(stream)
        assert not client.chat_completion(model=MODEL, messages=HI).cache_hit
    assert len(chat_requests(emulator)) == 2


def test_memory_entries_expire_by_the_injected_clock(emulator, api_key):
    now = [1000.0]
    cache = ResponseCache(ttl=10, clock=lambda: now[0])
    with HolySheepClient(api_key=api_key, base_url=emulator.url, cache=cache) as client:
        client.chat_completion(model=MODEL, messages=HI)
        now[0] += 9.9
        assert client.chat_completion(model=MODEL, messages=HI).cache_hit
        now[0] += 0.1
        assert not client.chat_completion(model=MODEL, messages=HI).cache_hit
    assert len(chat_requests(emulator)) == 2


def test_redis_entries_carry_the_ttl_and_expire(emulator, api_key, redis_url, redis_server):
    import time

    import redis

    with HolySheepClient(
        api_key=api_key, base_url=emulator.url, cache=ResponseCache(redis=redis_url, ttl=60)
    ) as client:
        client.chat_completion(model=MODEL, messages=HI)
    r = redis.Redis.from_url(redis_url)
    (key,) = r.keys("holysheep:cache:e:*")
    assert 0 < r.pttl(key) <= 60_000
    short = ResponseCache(redis=redis_url, ttl=0.05, namespace="short")
    with HolySheepClient(api_key=api_key, base_url=emulator.url, cache=short) as client:
        client.chat_completion(model=MODEL, messages=HI)
        time.sleep(0.1)  # past the expiry: Redis never returns an expired key
        assert not client.chat_completion(model=MODEL, messages=HI).cache_hit
    r.close()


def test_size_bound_evicts_the_least_recently_used(emulator, api_key, make_cache):
    cache = make_cache(max_entries=2)
    prompts = [[{"role": "user", "content": f"question number {w}"}] for w in ("one", "two", "six")]
    with HolySheepClient(api_key=api_key, base_url=emulator.url, cache=cache) as client:
        client.chat_completion(model=MODEL, messages=prompts[0])
        client.chat_completion(model=MODEL, messages=prompts[1])
        assert client.chat_completion(model=MODEL, messages=prompts[0]).cache_hit  # used last
        client.chat_completion(model=MODEL, messages=prompts[2])  # evicts prompts[1]
        assert client.chat_completion(model=MODEL, messages=prompts[0]).cache_hit
        assert client.chat_completion(model=MODEL, messages=prompts[2]).cache_hit
        assert not client.chat_completion(model=MODEL, messages=prompts[1]).cache_hit
    assert len(chat_requests(emulator)) == 4


def test_redis_size_bound_holds_across_clients(emulator, api_key, redis_url):
    import redis

    caches = [ResponseCache(redis=redis_url, max_entries=5) for _ in range(2)]
    clients = [HolySheepClient(api_key=api_key, base_url=emulator.url, cache=c) for c in caches]
    for i in range(20):
        clients[i % 2].chat_completion(
            model=MODEL, messages=[{"role": "user", "content": f"item {i:03d}"}]
        )
    r = redis.Redis.from_url(redis_url)
    assert len(r.keys("holysheep:cache:e:*")) == 5
    assert r.zcard("holysheep:cache:lru") == 5
    r.close()
    for client in clients:
        client.close()


def test_namespaces_never_share_answers(emulator, api_key, redis_url):
    a = ResponseCache(redis=redis_url, namespace="tenant-a")
    b = ResponseCache(redis=redis_url, namespace="tenant-b")
    a_too = ResponseCache(redis=redis_url, namespace="tenant-a")
    with (
        HolySheepClient(api_key=api_key, base_url=emulator.url, cache=a) as ca,
        HolySheepClient(api_key=api_key, base_url=emulator.url, cache=b) as cb,
        HolySheepClient(api_key=api_key, base_url=emulator.url, cache=a_too) as ca2,
    ):
        ca.chat_completion(model=MODEL, messages=HI)
        assert not cb.chat_completion(model=MODEL, messages=HI).cache_hit
        assert ca2.chat_completion(model=MODEL, messages=HI).cache_hit  # another process


def test_a_cache_on_the_shared_policy_store_uses_its_redis_and_namespace(
    emulator, api_key, redis_url
):
    import redis

    from holysheep_core import RedisStore

    store = RedisStore(redis_url, namespace="tenant-a")
    with (
        HolySheepClient(
            api_key=api_key,
            base_url=emulator.url,
            policy_store=store,
            cache=ResponseCache(redis=store),
        ) as first,
        HolySheepClient(
            api_key=api_key,
            base_url=emulator.url,
            cache=ResponseCache(redis=redis_url, namespace="tenant-a"),
        ) as second,
    ):
        first.chat_completion(model=MODEL, messages=HI)
        assert second.chat_completion(model=MODEL, messages=HI).cache_hit
    assert len(chat_requests(emulator)) == 1
    r = redis.Redis.from_url(redis_url)
    assert r.keys("tenant-a:cache:e:*")
    r.close()


def test_a_hit_is_not_charged_to_the_budget(emulator, api_key, make_cache):
    cache = make_cache()
    with HolySheepClient(api_key=api_key, base_url=emulator.url, cache=cache) as warm:
        warm.chat_completion(model=MODEL, messages=HI)
    budget = Budget("0.000001")  # too small for any real call
    with HolySheepClient(
        api_key=api_key, base_url=emulator.url, cache=cache, budget_usd=budget
    ) as client:
        assert client.chat_completion(model=MODEL, messages=HI).cache_hit
        with pytest.raises(BudgetExceededError):
            client.chat_completion(model=MODEL, messages=[{"role": "user", "content": "new"}])
    assert budget.spent_usd == 0 and budget.held_usd == 0
    assert len(chat_requests(emulator)) == 1


def test_hits_take_no_turn_in_the_rate_limiter(emulator, api_key, make_cache):
    # One request per 1000 s, and no waiting: only the first request may go out.
    limits = RateLimits(requests_per_second=0.001, request_burst=1, max_wait=0)
    with HolySheepClient(
        api_key=api_key, base_url=emulator.url, cache=make_cache(), rate_limits=limits
    ) as client:
        client.chat_completion(model=MODEL, messages=HI)
        for _ in range(10):
            assert client.chat_completion(model=MODEL, messages=HI).cache_hit
        with pytest.raises(HolySheepError):
            client.chat_completion(model=MODEL, messages=[{"role": "user", "content": "new"}])
    assert len(chat_requests(emulator)) == 1


def test_a_fallback_answer_is_never_stored_for_the_model_asked(emulator, api_key, make_cache):
    cache = make_cache()
    emulator.inject(Fault.status(503), times=1)
    with HolySheepClient(
        api_key=api_key,
        base_url=emulator.url,
        cache=cache,
        max_retries=0,
        fallback_models=[OTHER],
    ) as client:
        first = client.chat_completion(model=MODEL, messages=HI)
        assert first.served_model == OTHER
        again = client.chat_completion(model=MODEL, messages=HI)
    assert not again.cache_hit and again.served_model == MODEL


def test_concurrent_identical_prompts_are_sent_once_sync(emulator, api_key, make_cache):
    cache = make_cache()
    client = HolySheepClient(api_key=api_key, base_url=emulator.url, cache=cache)
    barrier = threading.Barrier(100)
    results = []

    def call() -> None:
        barrier.wait()
        results.append(client.chat_completion(model=MODEL, messages=HI))

    # The first request is slow, so the others find it in flight (or, if they come later,
    # its stored answer): one request either way.
    emulator.inject(Fault.slow_first_byte(0.3), times=1)
    threads = [threading.Thread(target=call) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    assert len(results) == 100
    assert len(chat_requests(emulator)) == 1
    assert sum(not r.cache_hit for r in results) == 1
    assert len({id(r) for r in results}) == 100  # each caller its own object
    stats = client.stats().cache
    assert stats.hits == 99 and stats.misses == 1


async def test_concurrent_identical_prompts_are_sent_once_async(emulator, api_key, make_cache):
    cache = make_cache()
    async with AsyncHolySheepClient(api_key=api_key, base_url=emulator.url, cache=cache) as c:
        results = await asyncio.gather(
            *(c.chat_completion(model=MODEL, messages=HI) for _ in range(100))
        )
        stats = c.stats().cache
    assert len(chat_requests(emulator)) == 1
    assert sum(not r.cache_hit for r in results) == 1
    assert stats.hits == 99 and stats.misses == 1
    assert len({r.choices[0].message.content for r in results}) == 1


async def test_async_stream_hit_replays(emulator, api_key, make_cache):
    async with AsyncHolySheepClient(
        api_key=api_key, base_url=emulator.url, cache=make_cache()
    ) as client:
        async with await client.stream_chat_completion(model=MODEL, messages=HI) as s:
            live = [c async for c in s]
        async with await client.stream_chat_completion(model=MODEL, messages=HI) as s:
            replay = [c async for c in s]
    assert len(chat_requests(emulator)) == 1
    assert [c.choices[0].delta.content for c in replay if c.choices and c.choices[0].delta.content]
    assert replay[-1].usage == live[-1].usage and replay[-1].cost_usd == 0


# --- semantic ------------------------------------------------------------------------


def ask(text: str, system: str | None = None) -> list[dict]:
    msgs = [{"role": "system", "content": system}] if system else []
    return [*msgs, {"role": "user", "content": text}]


def test_semantic_hit_within_scope_only(emulator, api_key, make_cache):
    hits: list[CacheHit] = []
    cache = make_cache(semantic=True, similarity_threshold=0.9, on_hit=hits.append)
    with HolySheepClient(api_key=api_key, base_url=emulator.url, cache=cache) as client:
        first = client.chat_completion(model=MODEL, messages=ask("Capital city of France?"))
        # the emulator's embeddings are bags of content words: same words, same vector
        near = client.chat_completion(model=MODEL, messages=ask("France: capital city?"))
        assert near.cache_hit
        assert near.choices[0].message.content == first.choices[0].message.content
        assert hits[-1].kind == "semantic" and hits[-1].similarity >= 0.9
        # never across models, system prompts, tools or parameters
        assert not client.chat_completion(
            model=OTHER, messages=ask("France: capital city?")
        ).cache_hit
        assert not client.chat_completion(
            model=MODEL, messages=ask("France: capital city?", system="Be terse.")
        ).cache_hit
        tools = [{"type": "function", "function": {"name": "lookup_city", "parameters": {}}}]
        assert not client.chat_completion(
            model=MODEL, messages=ask("France: capital city?"), tools=tools, tool_choice="none"
        ).cache_hit
        assert not client.chat_completion(
            model=MODEL, messages=ask("France: capital city?"), max_tokens=50
        ).cache_hit
        assert not client.chat_completion(model=MODEL, messages=ask("Capital of Peru?")).cache_hit
        stats = client.stats().cache
    assert stats.semantic_hits == 1 and stats.hits == 1
    assert stats.misses == 6


def test_semantic_never_serves_a_changed_number_or_a_negation(emulator, api_key, make_cache):
    # The emulator's embeddings drop one-digit numbers and "not": these pairs embed to the
    # very same vector, so only the cache's own check keeps them apart.
    cache = make_cache(semantic=True, similarity_threshold=0.9)
    with HolySheepClient(api_key=api_key, base_url=emulator.url, cache=cache) as client:
        client.chat_completion(model=MODEL, messages=ask("Convert 5 miles to kilometers."))
        client.chat_completion(model=MODEL, messages=ask("Which foods contain gluten?"))
        changed = client.chat_completion(model=MODEL, messages=ask("Convert 8 miles to km"))
        negated = client.chat_completion(
            model=MODEL, messages=ask("Which foods do not contain gluten?")
        )
        same = client.chat_completion(model=MODEL, messages=ask("convert 5 miles to kilometers"))
    assert not changed.cache_hit and not negated.cache_hit
    assert same.cache_hit
    assert "5 miles" in same.choices[0].message.content


def test_same_specifics():
    assert same_specifics("What is 15% of 240?", "what's 15 % of 240")
    assert not same_specifics("What is 15% of 240?", "What is 15% of 420?")
    assert not same_specifics("Is 7 prime?", "Is 7.5 prime?")
    assert not same_specifics("Why do cats purr?", "Why don't cats purr?")
    assert not same_specifics("List animals that can fly.", "List animals that cannot fly.")
    assert same_specifics("no sugar, please", "Please: no sugar")


def test_semantic_never_answers_after_a_tool_result(emulator, api_key, make_cache):
    tool_turn = [
        {"role": "user", "content": "weather in Paris"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny in Paris"},
    ]
    other = [*tool_turn[:2], {"role": "tool", "tool_call_id": "call_1", "content": "Paris sunny"}]
    cache = make_cache(semantic=True, similarity_threshold=0.5)
    with HolySheepClient(api_key=api_key, base_url=emulator.url, cache=cache) as client:
        client.chat_completion(model=MODEL, messages=tool_turn)
        assert not client.chat_completion(model=MODEL, messages=other).cache_hit
        assert client.chat_completion(model=MODEL, messages=tool_turn).cache_hit  # exact
    assert embedding_requests(emulator) == []


def test_semantic_embeds_once_per_miss_with_the_chosen_model(emulator, api_key, make_cache):
    cache = make_cache(semantic=True, embedding_model="my-embedder")
    with HolySheepClient(api_key=api_key, base_url=emulator.url, cache=cache) as client:
        client.chat_completion(model=MODEL, messages=ask("one question"))
        client.chat_completion(model=MODEL, messages=ask("one question"))  # exact: no embed
    embeds = embedding_requests(emulator)
    assert len(embeds) == 1 and embeds[0].body["model"] == "my-embedder"


async def test_semantic_async(emulator, api_key, make_cache):
    cache = make_cache(semantic=True, similarity_threshold=0.9)
    async with AsyncHolySheepClient(api_key=api_key, base_url=emulator.url, cache=cache) as c:
        await c.chat_completion(model=MODEL, messages=ask("Capital city of France?"))
        hit = await c.chat_completion(model=MODEL, messages=ask("France: capital city?"))
    assert hit.cache_hit and len(chat_requests(emulator)) == 1


# --- failure and bad input -----------------------------------------------------------


def test_a_dead_redis_turns_the_cache_off_not_the_calls(emulator, api_key):
    cache = ResponseCache(redis="redis://127.0.0.1:1/0")  # nothing listens on port 1
    with HolySheepClient(api_key=api_key, base_url=emulator.url, cache=cache) as client:
        assert not client.chat_completion(model=MODEL, messages=HI).cache_hit
        stats = client.stats().cache
    assert stats.errors >= 1 and stats.hits == 0


def test_a_stalled_redis_does_not_stall_the_calls(emulator, api_key):
    import socket

    # A raw server that accepts connections and never answers: a hung Redis.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        cache = ResponseCache(redis=f"redis://127.0.0.1:{port}/0", redis_timeout=0.2)
        with HolySheepClient(api_key=api_key, base_url=emulator.url, cache=cache) as client:
            first = client.chat_completion(model=MODEL, messages=HI)
            stats = client.stats().cache
    assert first.choices[0].message.content and not first.cache_hit
    assert stats.errors >= 1
    assert len(chat_requests(emulator)) == 1


@pytest.mark.parametrize(
    "settings",
    [
        {"ttl": 0},
        {"ttl": -1},
        {"max_entries": 0},
        {"similarity_threshold": 0},
        {"similarity_threshold": 1.5},
        {"namespace": "has space"},
        {"redis": "http://localhost"},
        {"redis": 42},
        {"redis_timeout": 0},
    ],
)
def test_bad_settings_are_refused_before_any_request(settings):
    with pytest.raises(ConfigurationError):
        ResponseCache(**settings)


def test_a_store_object_is_accepted_for_redis(emulator, api_key, redis_url):
    class Store:  # the shape of the shared RedisStore: a URL and a namespace
        url = redis_url
        namespace = "team"

    cache = ResponseCache(redis=Store())
    assert cache.namespace == "team"
    with HolySheepClient(api_key=api_key, base_url=emulator.url, cache=cache) as client:
        client.chat_completion(model=MODEL, messages=HI)
        assert client.chat_completion(model=MODEL, messages=HI).cache_hit


def test_repr_hides_the_redis_password():
    cache = ResponseCache(redis="redis://:s3cret-pass@127.0.0.1:6399/0")
    assert "s3cret" not in repr(cache) and "s3cret" not in repr(cache.backend)


def test_keys_ignore_delivery_and_see_content():
    body = {"model": MODEL, "messages": HI, "temperature": 0}
    assert request_key({**body, "stream": True, "user": "u1"}).exact == request_key(body).exact
    assert request_key({**body, "temperature": 0.1}).exact != request_key(body).exact
    assert request_key(body).scope == request_key({**body, "messages": ask("other")}).scope
    assert request_key(body).prompt == HI[0]["content"]


def test_no_cache_gives_zero_cache_stats(emulator, api_key):
    with HolySheepClient(api_key=api_key, base_url=emulator.url) as client:
        client.chat_completion(model=MODEL, messages=HI)
        assert client.stats().cache.hits == 0 and client.stats().cache.saved_usd == Decimal(0)


WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def test_tool_calls_and_reasoning_survive_a_stream_round_trip(emulator, api_key, make_cache):
    cache = make_cache()
    ask_tools = {
        "model": "deepseek-reasoner",
        "messages": ask("What is the weather in 'Lisbon'?"),
        "tools": WEATHER,
        "tool_choice": "required",
    }
    with HolySheepClient(api_key=api_key, base_url=emulator.url, cache=cache) as client:
        with client.stream_chat_completion(**ask_tools) as stream:
            list(stream)  # stored from the stream
        answer = client.chat_completion(**ask_tools)  # served from it
        with client.stream_chat_completion(**ask_tools) as stream:
            replay = list(stream)
    assert len(chat_requests(emulator)) == 1
    assert answer.cache_hit
    # what the server would have said, unstreamed
    emulator.reset()
    with HolySheepClient(api_key=api_key, base_url=emulator.url) as plain:
        truth = plain.chat_completion(**ask_tools)
    got, want = answer.choices[0], truth.choices[0]
    assert got.finish_reason == want.finish_reason == "tool_calls"
    assert got.message.reasoning_content == want.message.reasoning_content
    # (call ids are new on every request)
    assert [(c.function.name, c.function.arguments) for c in got.message.tool_calls] == [
        (c.function.name, c.function.arguments) for c in want.message.tool_calls
    ]
    assert all(c.id.startswith("call_") for c in got.message.tool_calls)
    calls = [tc for c in replay if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert [c.function.arguments for c in calls] == [
        c.function.arguments for c in want.message.tool_calls
    ]


def test_semantic_entries_never_cross_namespaces(emulator, api_key, redis_url):
    a = ResponseCache(redis=redis_url, namespace="a", semantic=True, similarity_threshold=0.9)
    b = ResponseCache(redis=redis_url, namespace="b", semantic=True, similarity_threshold=0.9)
    with (
        HolySheepClient(api_key=api_key, base_url=emulator.url, cache=a) as ca,
        HolySheepClient(api_key=api_key, base_url=emulator.url, cache=b) as cb,
    ):
        ca.chat_completion(model=MODEL, messages=ask("Capital city of France?"))
        assert not cb.chat_completion(model=MODEL, messages=ask("France: capital city?")).cache_hit
        assert ca.chat_completion(model=MODEL, messages=ask("France: capital city?")).cache_hit
    a.close()
    b.close()


def test_another_process_is_served_from_redis(emulator, api_key, redis_url):
    import json
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from holysheep_core import HolySheepClient, ResponseCache\n"
        "url, key, redis_url = sys.argv[1:4]\n"
        "with HolySheepClient(api_key=key, base_url=url,"
        " cache=ResponseCache(redis=redis_url)) as c:\n"
        "    r = c.chat_completion(model='deepseek-v3.2',"
        " messages=[{'role': 'user', 'content': 'shared question'}])\n"
        "    print(json.dumps([r.cache_hit, r.choices[0].message.content]))\n"
    )
    run = [sys.executable, "-c", code, emulator.url, api_key, redis_url]
    first = json.loads(subprocess.run(run, capture_output=True, check=True).stdout)
    second = json.loads(subprocess.run(run, capture_output=True, check=True).stdout)
    assert first[0] is False and second == [True, first[1]]
    assert len(chat_requests(emulator)) == 1


def test_every_choice_of_an_opted_in_n2_call_is_kept(emulator, api_key, make_cache):
    cache = make_cache(cache_sampled=True)
    with HolySheepClient(api_key=api_key, base_url=emulator.url, cache=cache) as client:
        with client.stream_chat_completion(model=MODEL, messages=HI, n=2) as stream:
            list(stream)
        answer = client.chat_completion(model=MODEL, messages=HI, n=2)
        with client.stream_chat_completion(model=MODEL, messages=HI, n=2) as stream:
            replay = list(stream)
    assert answer.cache_hit and len(chat_requests(emulator)) == 1
    texts = [c.message.content for c in answer.choices]
    assert len(texts) == 2 and texts[1].startswith("Alternative 1: ")
    for i, text in enumerate(texts):
        assert (
            "".join(ch.delta.content or "" for c in replay for ch in c.choices if ch.index == i)
            == text
        )


async def test_callers_sharing_a_fallback_answer_see_the_model_that_gave_it(
    emulator, api_key, make_cache
):
    emulator.inject(Fault.status(503), times=1)
    async with AsyncHolySheepClient(
        api_key=api_key,
        base_url=emulator.url,
        cache=make_cache(),
        max_retries=0,
        fallback_models=[OTHER],
    ) as client:
        results = await asyncio.gather(
            *(client.chat_completion(model=MODEL, messages=HI) for _ in range(10))
        )
        assert {r.served_model for r in results} == {OTHER}
        assert sum(r.cache_hit for r in results) == 9  # they waited for the one call
        assert not (await client.chat_completion(model=MODEL, messages=HI)).cache_hit
    assert [r.body["model"] for r in chat_requests(emulator)] == [MODEL, OTHER, MODEL]


def test_semantic_index_sees_what_other_processes_add(emulator, api_key, redis_url):
    # Each ResponseCache keeps its own copy of a scope's vectors: a write from elsewhere
    # must reach it, and its own writes must not hide anything.
    here = ResponseCache(redis=redis_url, semantic=True, similarity_threshold=0.9)
    there = ResponseCache(redis=redis_url, semantic=True, similarity_threshold=0.9)
    with (
        HolySheepClient(api_key=api_key, base_url=emulator.url, cache=here) as a,
        HolySheepClient(api_key=api_key, base_url=emulator.url, cache=there) as b,
    ):
        a.chat_completion(model=MODEL, messages=ask("Capital city of France?"))
        assert a.chat_completion(model=MODEL, messages=ask("France: capital city?")).cache_hit
        a.chat_completion(model=MODEL, messages=ask("Tallest mountain in Africa?"))
        b.chat_completion(model=MODEL, messages=ask("Longest river in Brazil?"))
        assert a.chat_completion(model=MODEL, messages=ask("Brazil: longest river?")).cache_hit
        assert a.chat_completion(model=MODEL, messages=ask("Africa: tallest mountain?")).cache_hit
        assert b.chat_completion(model=MODEL, messages=ask("Africa's tallest mountain")).cache_hit
    assert len(chat_requests(emulator)) == 3
    here.close()
    there.close()
