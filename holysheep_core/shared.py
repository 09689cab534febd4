"""Clients shared between framework objects that have the same settings.

A LangChain or LlamaIndex app builds many model objects (one per chain, per agent, per
call of ``with_config``); giving each its own pool exhausts sockets (langchain #32489).
Adapters ask here instead: objects whose settings match share one client, and so one pool.
The key holds a hash of the API key, never the key itself.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Literal, overload

from .client import AsyncHolySheepClient, HolySheepClient
from .config import ClientConfig
from .errors import ConfigurationError

__all__ = ["adapter_config", "shared_client"]

_lock = threading.Lock()
_clients: dict[tuple[Any, ...], HolySheepClient | AsyncHolySheepClient] = {}


def adapter_config(
    client_settings: Mapping[str, Any] | None,
    *,
    injected: HolySheepClient | AsyncHolySheepClient | None = None,
    **given: Any,
) -> ClientConfig:
    """The config of a framework object: an ``injected`` client's own, else
    ``ClientConfig.resolve(**given)`` plus the object's ``client_settings``, further
    :class:`ClientConfig` fields (breaker, rate limits, budget, fallback models, prices,
    hooks, ...). Raises ``ConfigurationError`` for a name that is no such field, one the
    adapter has its own argument for, or settings next to an injected client: a misspelt
    policy must not pass unnoticed."""
    settings = dict(client_settings or {})
    if injected is not None:
        if settings:
            raise ConfigurationError(
                "client_settings has no effect with an injected client: set those fields on "
                "the client itself"
            )
        return injected.config
    own = {"api_key", "base_url", "timeout", "max_retries", *given}
    unknown = sorted(set(settings) - set(ClientConfig.model_fields))
    taken = sorted(set(settings) & own)
    if unknown or taken:
        why = [f"unknown field(s) {unknown}"] if unknown else []
        if taken:
            why.append(f"{taken} have their own argument")
        raise ConfigurationError(f"client_settings: {'; '.join(why)}")
    return ClientConfig.resolve(**given, **settings)


def _fingerprint(config: ClientConfig) -> tuple[Any, ...]:
    # Every field, so a setting added to ClientConfig can never be shared by mistake; the
    # key only as a hash.
    parts: list[Any] = []
    for name in type(config).model_fields:
        value = getattr(config, name)
        if name == "api_key":
            value = hashlib.sha256(value.get_secret_value().encode()).hexdigest()
        elif isinstance(value, Mapping):
            value = tuple(sorted(value.items()))
        parts.append(value)
    return tuple(parts)


# The same config object asks again on every call of the object that holds it: remember
# its answer without fingerprinting it anew (a few recent configs; the config is held, so
# its id cannot be reused while it is here).
_recent: OrderedDict[tuple[bool, int], tuple[ClientConfig, Any]] = OrderedDict()
_RECENT = 256


@overload
def shared_client(
    config: ClientConfig, *, asynchronous: Literal[False] = False
) -> HolySheepClient: ...
@overload
def shared_client(config: ClientConfig, *, asynchronous: Literal[True]) -> AsyncHolySheepClient: ...


def shared_client(
    config: ClientConfig, *, asynchronous: bool = False
) -> HolySheepClient | AsyncHolySheepClient:
    """The process's client for these settings, created on first use."""
    seen = _recent.get((asynchronous, id(config)))
    if seen is not None and seen[0] is config and not seen[1]._closed:
        return seen[1]
    fp = (asynchronous, *_fingerprint(config))
    with _lock:
        client = _clients.get(fp)
        if client is None or client._closed:
            client = AsyncHolySheepClient(config) if asynchronous else HolySheepClient(config)
            _clients[fp] = client
        _recent[(asynchronous, id(config))] = (config, client)
        if len(_recent) > _RECENT:
            _recent.popitem(last=False)
        return client
