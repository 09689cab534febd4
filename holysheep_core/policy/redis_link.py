"""The wire under :class:`~holysheep_core.policy.redis_store.RedisStore`: clients, scripts,
batching and Redis's own health. No policy decision is made here.

* Clients are made on first use in each process (and, for asyncio, per event loop): a store
  built before ``fork`` (gunicorn ``--preload``, Celery prefork) or unpickled elsewhere
  connects afresh in its new home and never touches its parent's sockets.
* Scripts go by ``EVALSHA``; a server that answers ``NOSCRIPT`` (restarted, flushed) gets
  the script once with ``SCRIPT LOAD`` and the call is repeated.
* The asyncio path pipelines each event loop's script calls on one connection
  (:mod:`.redis_wire`): applied in the order they are made, those of one tick in one
  write, none waiting for another's round trip; the loop never blocks.
* Redis's health: ``error_threshold`` consecutive failures (errors or replies slower than
  the policy timeout) mark it down; while down no call waits on it, and every
  ``retry_interval`` seconds one call probes it. A probe that succeeds brings every call
  back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..errors import HolySheepError
from .redis_wire import Endpoint, Wire

__all__ = ["RedisLink", "Script", "StoreUnavailable"]


class StoreUnavailable(HolySheepError):
    """Redis did not answer in time (or is resting after failures). Decisions degrade as
    the store is configured; a view that cannot degrade (a shared budget's spending, the
    shared ledger) raises this. ``sent``: the command may have reached Redis (False: it
    was never sent, Redis being left alone after failures)."""

    sent: bool = True

    @classmethod
    def after(cls, exc: BaseException) -> StoreUnavailable:
        """The error for a call Redis failed with ``exc`` (named, never quoted: a
        connection error may carry the URL)."""
        return cls(f"Redis did not answer: {type(exc).__name__}")


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str
    sha: str

    @classmethod
    def load(cls, name: str, *parts: str) -> Script:
        """The script ``name``.lua from this package, after the ``parts`` it builds on."""
        folder = resources.files("holysheep_core.policy") / "lua"
        text = "\n".join(
            (folder / f"{part}.lua").read_text(encoding="utf-8") for part in (*parts, name)
        )
        return cls(name, text, hashlib.sha1(text.encode()).hexdigest())


class _Health:
    """Consecutive failures, and when Redis may next be asked. Shared by threads and loops."""

    def __init__(self, threshold: int, interval: float) -> None:
        self.threshold = threshold
        self.interval = interval
        self._lock = threading.Lock()
        self._failures = 0
        self._next_probe = 0.0

    @property
    def up(self) -> bool:
        return self._failures < self.threshold

    def may_ask(self) -> bool:
        """Whether this call may go to Redis: always while up; while down, one call per
        ``interval`` (the probe)."""
        if self._failures < self.threshold:
            return True
        now = time.monotonic()
        with self._lock:
            if now < self._next_probe:
                return False
            self._next_probe = now + self.interval
            return True

    def failed(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures == self.threshold:
                self._next_probe = time.monotonic() + self.interval

    def answered(self) -> None:
        if self._failures:
            with self._lock:
                self._failures = 0


@dataclass
class _LoopState:
    """One event loop's Redis: a client for plain commands (views), and the wire the policy
    scripts go by."""

    client: Any
    wire: Wire


class RedisLink:
    """Sync and asyncio redis-py clients for one URL, made lazily per process."""

    def __init__(
        self,
        url: str,
        *,
        policy_timeout: float,
        connect_timeout: float,
        error_threshold: int,
        retry_interval: float,
    ) -> None:
        try:
            import redis  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                'RedisStore needs redis-py: pip install "holysheep-integrations[redis]"'
            ) from exc
        self.url = url
        self._endpoint = Endpoint.from_url(url)
        self.policy_timeout = policy_timeout
        self.connect_timeout = connect_timeout
        self.health = _Health(error_threshold, retry_interval)
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._sync: Any = None
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )

    def _options(self) -> dict[str, Any]:
        return {
            "socket_timeout": self.policy_timeout,
            "socket_connect_timeout": self.connect_timeout,
            "retry_on_timeout": False,
            "retry": None,
            "health_check_interval": 0,
        }

    def _here(self) -> None:
        if self._pid != os.getpid():
            # A new process (fork): the parent's clients are left alone, unclosed — closing
            # would shut sockets the parent still uses; redis-py never shuts a socket from
            # another pid, and these are dropped here.
            self._reset()

    # --- sync ---------------------------------------------------------------------------

    def sync_client(self) -> Any:
        self._here()
        client = self._sync
        if client is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            with self._lock:
                if self._sync is None:
                    options = {**self._options(), "retry": Retry(NoBackoff(), 0)}
                    self._sync = redis.Redis.from_url(self.url, **options)
                client = self._sync
        return client

    def run(self, script: Script, keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
        """Run ``script`` once, or raise :class:`StoreUnavailable`."""
        if not self.health.may_ask():
            raise StoreUnavailable("Redis is resting after failures", sent=False)
        import redis.exceptions as rx

        client = self.sync_client()
        try:
            try:
                reply = client.evalsha(script.sha, len(keys), *keys, *args)
            except rx.NoScriptError:
                client.script_load(script.source)
                reply = client.evalsha(script.sha, len(keys), *keys, *args)
        except (rx.ConnectionError, rx.TimeoutError, rx.BusyLoadingError, OSError) as exc:
            self.health.failed()
            raise StoreUnavailable.after(exc) from None
        self.health.answered()
        return reply

    def command(self, *args: Any) -> Any:
        """One plain command (reads for views), or :class:`StoreUnavailable`."""
        if not self.health.may_ask():
            raise StoreUnavailable("Redis is resting after failures", sent=False)
        import redis.exceptions as rx

        try:
            reply = self.sync_client().execute_command(*args)
        except (rx.ConnectionError, rx.TimeoutError, rx.BusyLoadingError, OSError) as exc:
            self.health.failed()
            raise StoreUnavailable.after(exc) from None
        self.health.answered()
        return reply

    # --- asyncio ------------------------------------------------------------------------

    def _loop_state(self, loop: asyncio.AbstractEventLoop) -> _LoopState:
        self._here()
        state = self._loops.get(loop)
        if state is None:
            import redis.asyncio as aredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            options = {**self._options(), "retry": Retry(NoBackoff(), 0)}
            wire = Wire(
                self._endpoint,
                self.health,
                connect_timeout=self.connect_timeout,
                policy_timeout=self.policy_timeout,
            )
            state = self._loops[loop] = _LoopState(aredis.Redis.from_url(self.url, **options), wire)
        return state

    def submit(
        self,
        script: Script,
        keys: tuple[str, ...],
        args: tuple[Any, ...],
        *,
        at_once: bool = True,
    ) -> asyncio.Future[Any]:
        """Queue one script call on this loop's wire, without waiting: the future gets its
        reply (or :class:`StoreUnavailable`). Calls are applied in the order they are made;
        those made in one tick go in one write."""
        if not self.health.may_ask():
            raise StoreUnavailable("Redis is resting after failures", sent=False)
        return self._loop_state(asyncio.get_running_loop()).wire.submit(
            script, keys, args, at_once=at_once
        )

    def submit_later(
        self, script: Script, build: Callable[[], tuple[tuple[str, ...], tuple[Any, ...]]]
    ) -> asyncio.Future[Any]:
        """Queue a call no decision needs to see first, built when written
        (:meth:`Wire.submit_later`)."""
        if not self.health.may_ask():
            raise StoreUnavailable("Redis is resting after failures", sent=False)
        return self._loop_state(asyncio.get_running_loop()).wire.submit_later(script, build)

    async def run_async(self, script: Script, keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
        """Like :meth:`run`, on this loop's wire."""
        return await self.submit(script, keys, args)

    async def command_async(self, *args: Any) -> Any:
        if not self.health.may_ask():
            raise StoreUnavailable("Redis is resting after failures", sent=False)
        import redis.exceptions as rx

        client = self._loop_state(asyncio.get_running_loop()).client
        try:
            async with asyncio.timeout(self.connect_timeout + self.policy_timeout):
                reply = await client.execute_command(*args)
        except (rx.ConnectionError, rx.TimeoutError, OSError, TimeoutError) as exc:
            self.health.failed()
            await _drop_connections(client)
            raise StoreUnavailable.after(exc) from None
        self.health.answered()
        return reply

    async def aclose(self) -> None:
        """Close this loop's connections (what is on the wire is answered first)."""
        state = self._loops.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state.wire.aclose()
            await state.client.aclose()

    def close(self) -> None:
        self._here()
        if self._sync is not None:
            self._sync.close()
            self._sync = None


async def _drop_connections(client: Any) -> None:
    # Best effort: the pool makes new connections on demand.
    with contextlib.suppress(Exception):
        await client.connection_pool.disconnect(inuse_connections=True)
