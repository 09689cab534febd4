"""What is measured: each target opens a client for one mode ("json" or "stream") and gives
back one call that makes a chat request, reads the whole answer and returns its text.

Every target does the same work a user would: send the prompt, read the answer (all of a
stream's chunks), collect the text. Peers run with their defaults, as users get them; the
raw clients parse the JSON themselves so they show what a transport can do at best.
Factories import their libraries lazily, so a missing package skips one target, not the run.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .payloads import API_KEY, MODEL, PROMPT

__all__ = ["TARGETS", "Target", "by_name"]

AsyncCall = Callable[[], Awaitable[str]]
SyncCall = Callable[[], str]
Closer = Callable[[], Any]

MESSAGES = [{"role": "user", "content": PROMPT}]
REQUEST = {"model": MODEL, "messages": MESSAGES}


@dataclass(frozen=True)
class Target:
    name: str
    label: str
    open: Callable[..., Any]
    """``open(url, mode, concurrency)``: awaitable of (call, close) for async targets,
    (call, close) for sync ones."""
    sync: bool = False
    family: str = "core"
    """core, peer, langchain or llama-index: how the chart groups and colours it."""
    ours: bool = False
    settings: dict[str, Any] = field(default_factory=dict)


# --- holysheep_core ------------------------------------------------------------------------


def resilience_settings(on: bool) -> dict[str, Any]:
    """Client settings with the circuit breaker and the rate limiter on (limits far above
    the offered load, so they decide but never hold a call back) or off, for whichever of
    those knobs this version of the core has."""
    from holysheep_core.config import ClientConfig

    fields = ClientConfig.model_fields
    out: dict[str, Any] = {}
    if "breaker" in fields:
        from holysheep_core.policy.breaker import BreakerPolicy

        out["breaker"] = BreakerPolicy() if on else None
    if "rate_limits" in fields:
        from holysheep_core.policy.ratelimit import RateLimits

        out["rate_limits"] = (
            RateLimits(requests_per_second=1e6, tokens_per_minute=1e12) if on else None
        )
    return out


def resilience_available() -> list[str]:
    """Which resilience knobs the core has now (the report names them)."""
    from holysheep_core.config import ClientConfig

    knobs = [k for k in ("breaker", "rate_limits") if k in ClientConfig.model_fields]
    return [*knobs, "ledger"]


class _NoLedger:
    """Stands in for the client's ledger in the "off" run: the core has no switch for it
    (stats() always works), so the harness swaps it out to price what it costs."""

    def record_success(self, *args: Any, **kwargs: Any) -> None:
        pass

    def record_failure(self, *args: Any, **kwargs: Any) -> None:
        pass

    def record_abandoned(self, *args: Any, **kwargs: Any) -> None:
        pass

    def record_cancelled(self, *args: Any, **kwargs: Any) -> None:
        pass


async def open_core(url: str, mode: str, concurrency: int, **settings: Any):
    from holysheep_core import AsyncHolySheepClient

    client = AsyncHolySheepClient(
        api_key=API_KEY, base_url=url, max_connections=max(100, concurrency), **settings
    )
    return _core_calls(client, mode), client.aclose


def _core_calls(client: Any, mode: str) -> AsyncCall:
    if mode == "json":

        async def call() -> str:
            r = await client.chat_completion(model=MODEL, messages=MESSAGES)
            return r.choices[0].message.content or ""

    else:

        async def call() -> str:
            parts = []
            async with await client.stream_chat_completion(
                model=MODEL, messages=MESSAGES
            ) as stream:
                async for chunk in stream:
                    for choice in chunk.choices:
                        parts.append(choice.delta.content or "")
            return "".join(parts)

    return call


def open_core_sync(url: str, mode: str, concurrency: int):
    from holysheep_core import HolySheepClient

    client = HolySheepClient(api_key=API_KEY, base_url=url, max_connections=max(100, concurrency))
    if mode == "json":

        def call() -> str:
            r = client.chat_completion(model=MODEL, messages=MESSAGES)
            return r.choices[0].message.content or ""

    else:

        def call() -> str:
            parts = []
            with client.stream_chat_completion(model=MODEL, messages=MESSAGES) as stream:
                for chunk in stream:
                    for choice in chunk.choices:
                        parts.append(choice.delta.content or "")
            return "".join(parts)

    return call, client.close


# --- raw transports: the practical limits -----------------------------------------------------


def _text_of_events(lines: list[bytes]) -> str:
    parts = []
    for line in lines:
        if not line.startswith(b"data: "):
            continue
        data = line[6:].strip()
        if data == b"[DONE]":
            break
        for choice in json.loads(data)["choices"]:
            parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


async def open_raw_aiohttp(url: str, mode: str, concurrency: int):
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max(100, concurrency)),
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    endpoint = url + "/chat/completions"
    if mode == "json":

        async def call() -> str:
            async with session.post(endpoint, data=json.dumps(REQUEST)) as r:
                r.raise_for_status()
                return json.loads(await r.read())["choices"][0]["message"]["content"]

    else:
        body = {**REQUEST, "stream": True, "stream_options": {"include_usage": True}}

        async def call() -> str:
            async with session.post(endpoint, data=json.dumps(body)) as r:
                r.raise_for_status()
                return _text_of_events([line async for line in r.content])

    return call, session.close


async def open_raw_httpx(url: str, mode: str, concurrency: int):
    import httpx

    n = max(100, concurrency)
    client = httpx.AsyncClient(
        headers={"Authorization": f"Bearer {API_KEY}"},
        limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
    )
    endpoint = url + "/chat/completions"
    if mode == "json":

        async def call() -> str:
            r = await client.post(endpoint, content=json.dumps(REQUEST))
            r.raise_for_status()
            return r.json()["choices"][0]["message"]["content"]

    else:
        body = {**REQUEST, "stream": True, "stream_options": {"include_usage": True}}

        async def call() -> str:
            async with client.stream("POST", endpoint, content=json.dumps(body)) as r:
                r.raise_for_status()
                lines = [line.encode() async for line in r.aiter_lines()]
            return _text_of_events(lines)

    return call, client.aclose


# --- the openai SDK ------------------------------------------------------------------------------


async def open_openai(url: str, mode: str, concurrency: int):
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key=API_KEY, base_url=url)
    if mode == "json":

        async def call() -> str:
            r = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
            return r.choices[0].message.content or ""

    else:

        async def call() -> str:
            parts = []
            stream = await client.chat.completions.create(
                model=MODEL,
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                for choice in chunk.choices:
                    parts.append(choice.delta.content or "")
            return "".join(parts)

    return call, client.close


def open_openai_sync(url: str, mode: str, concurrency: int):
    from openai import OpenAI

    client = OpenAI(api_key=API_KEY, base_url=url)
    if mode == "json":

        def call() -> str:
            r = client.chat.completions.create(model=MODEL, messages=MESSAGES)
            return r.choices[0].message.content or ""

    else:

        def call() -> str:
            parts = []
            stream = client.chat.completions.create(
                model=MODEL,
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            for chunk in stream:
                for choice in chunk.choices:
                    parts.append(choice.delta.content or "")
            return "".join(parts)

    return call, client.close


# --- LangChain -------------------------------------------------------------------------------


def _langchain_calls(llm: Any, mode: str) -> AsyncCall:
    if mode == "json":

        async def call() -> str:
            return (await llm.ainvoke(PROMPT)).content

    else:

        async def call() -> str:
            return "".join([chunk.content async for chunk in llm.astream(PROMPT)])

    return call


async def _nothing() -> None:
    return None


async def open_chat_holysheep(url: str, mode: str, concurrency: int):
    from langchain_holysheep import ChatHolySheep

    llm = ChatHolySheep(model=MODEL, api_key=API_KEY, base_url=url)
    return _langchain_calls(llm, mode), _nothing


async def open_chat_openai(url: str, mode: str, concurrency: int):
    from langchain_openai import ChatOpenAI

    # stream_usage=True: ChatOpenAI leaves it off for non-OpenAI URLs; ask for the same work.
    llm = ChatOpenAI(model=MODEL, api_key=API_KEY, base_url=url, stream_usage=True)
    return _langchain_calls(llm, mode), _nothing


# --- LlamaIndex ------------------------------------------------------------------------------


def _llama_calls(llm: Any, mode: str) -> AsyncCall:
    from llama_index.core.llms import ChatMessage

    if mode == "json":

        async def call() -> str:
            r = await llm.achat([ChatMessage(role="user", content=PROMPT)])
            return r.message.content or ""

    else:

        async def call() -> str:
            gen = await llm.astream_chat([ChatMessage(role="user", content=PROMPT)])
            return "".join([r.delta or "" async for r in gen])

    return call


async def open_llama_holysheep(url: str, mode: str, concurrency: int):
    from llama_index_holysheep import HolySheep

    llm = HolySheep(model=MODEL, api_key=API_KEY, api_base=url)
    return _llama_calls(llm, mode), _nothing


async def open_openai_like(url: str, mode: str, concurrency: int):
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(
        model=MODEL, api_key=API_KEY, api_base=url, is_chat_model=True, context_window=128_000
    )
    return _llama_calls(llm, mode), _nothing


# --- the list --------------------------------------------------------------------------------


def _resilient(on: bool) -> Callable[..., Any]:
    async def open_(url: str, mode: str, concurrency: int):
        from holysheep_core import AsyncHolySheepClient

        client = AsyncHolySheepClient(
            api_key=API_KEY,
            base_url=url,
            max_connections=max(100, concurrency),
            **resilience_settings(on),
        )
        if not on:
            client._pipeline.ledger = _NoLedger()
        return _core_calls(client, mode), client.aclose

    return open_


TARGETS: tuple[Target, ...] = (
    Target("raw-aiohttp", "raw aiohttp", open_raw_aiohttp, family="peer"),
    Target("core", "AsyncHolySheepClient (aiohttp)", open_core, ours=True),
    Target("openai", "openai AsyncOpenAI", open_openai, family="peer"),
    Target(
        "core-httpx",
        "AsyncHolySheepClient (httpx)",
        open_core,
        ours=True,
        settings={"async_backend": "httpx"},
    ),
    Target("raw-httpx", "raw httpx AsyncClient", open_raw_httpx, family="peer"),
    Target("chat-holysheep", "ChatHolySheep", open_chat_holysheep, family="langchain", ours=True),
    Target("chat-openai", "ChatOpenAI", open_chat_openai, family="langchain"),
    Target(
        "llama-holysheep",
        "HolySheep (LlamaIndex)",
        open_llama_holysheep,
        family="llama-index",
        ours=True,
    ),
    Target("openai-like", "OpenAILike", open_openai_like, family="llama-index"),
    Target("core-resilient", "core: breaker+limiter+ledger on", _resilient(True), ours=True),
    Target("core-bare", "core: breaker+limiter+ledger off", _resilient(False), ours=True),
    Target("core-sync", "HolySheepClient (threads)", open_core_sync, sync=True, ours=True),
    Target("openai-sync", "openai OpenAI (threads)", open_openai_sync, sync=True, family="peer"),
)


def by_name(name: str) -> Target:
    for t in TARGETS:
        if t.name == name:
            return t
    raise KeyError(name)
