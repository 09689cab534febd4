"""The wire under :class:`~holysheep_core.policy.redis_store.RedisStore`: clients, scripts,
batching and Redis's own health. No policy decision is made here.

* Clients are made on first use in each process (and, for asyncio, per event loop): a store
  built before ``fork`` (gunicorn ``--preload``, Celery prefork) or unpickled elsewhere
  connects afresh in its new home and never touches its parent's sockets.
* Scripts go by ``EVALSHA``; a server that answers ``NOSCRIPT`` (restarted, flushed) gets
  the script once with ``SCRIPT LOAD`` and the call is repeated.
* The asyncio path gathers the decisions made in one event-loop tick into one pipeline:
  one round trip however many callers decided at once, and the loop never blocks.
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
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ..errors import HolySheepError

__all__ = ["RedisLink", "Script", "StoreUnavailable"]


class StoreUnavailable(HolySheepError):
    """Redis did not answer in time (or is resting after failures). Decisions degrade as
    the store is configured; a view that cannot degrade (a shared budget's spending, the
    shared ledger) raises this. ``sent``: the command may have reached Redis (False: it
    was never sent, Redis being left alone after failures)."""

    sent: bool = True


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
    client: Any
    pending: list[tuple[Script, tuple[str, ...], tuple[Any, ...], asyncio.Future[Any]]] = field(
        default_factory=list
    )
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


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
            raise StoreUnavailable(f"Redis did not answer: {type(exc).__name__}") from None
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
            raise StoreUnavailable(f"Redis did not answer: {type(exc).__name__}") from None
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
            state = self._loops[loop] = _LoopState(aredis.Redis.from_url(self.url, **options))
        return state

    async def run_async(self, script: Script, keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
        """Like :meth:`run`, batched with the other calls made in this loop's tick."""
        if not self.health.may_ask():
            raise StoreUnavailable("Redis is resting after failures", sent=False)
        loop = asyncio.get_running_loop()
        state = self._loop_state(loop)
        future: asyncio.Future[Any] = loop.create_future()
        if not state.pending:
            loop.call_soon(self._flush_soon, state)
        state.pending.append((script, keys, args, future))
        return await future

    def _flush_soon(self, state: _LoopState) -> None:
        batch, state.pending = state.pending, []
        task = asyncio.get_running_loop().create_task(self._flush(state, batch))
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)

    async def _flush(self, state: _LoopState, batch: list[Any]) -> None:
        import redis.exceptions as rx

        try:
            # A bound on the whole round trip, connecting included: the socket timeouts
            # bound each read and the connect, not a pool wait.
            async with asyncio.timeout(self.connect_timeout + self.policy_timeout):
                replies = await self._pipeline(state.client, batch)
                missing = [i for i, r in enumerate(replies) if isinstance(r, rx.NoScriptError)]
                if missing:
                    for script in {batch[i][0] for i in missing}:
                        await state.client.script_load(script.source)
                    again = await self._pipeline(state.client, [batch[i] for i in missing])
                    for i, reply in zip(missing, again, strict=True):
                        replies[i] = reply
        except (
            rx.ConnectionError,
            rx.TimeoutError,
            rx.BusyLoadingError,
            OSError,
            TimeoutError,
        ) as exc:
            self.health.failed()
            # A timed-out connection may still get the late reply: never reuse it.
            await _drop_connections(state.client)
            error = f"Redis did not answer: {type(exc).__name__}"
            for *_, future in batch:
                if not future.done():
                    future.set_exception(StoreUnavailable(error))
            return
        except BaseException as exc:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            raise
        self.health.answered()
        for (*_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue  # its caller was cancelled; the decision stands in Redis
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    @staticmethod
    async def _pipeline(client: Any, batch: list[Any]) -> list[Any]:
        if len(batch) == 1:  # alone in its tick: a plain call costs less than a pipeline
            import redis.exceptions as rx

            script, keys, args, _ = batch[0]
            try:
                return [await client.evalsha(script.sha, len(keys), *keys, *args)]
            except rx.ResponseError as exc:  # NOSCRIPT or a script error, as a pipeline gives
                return [exc]
        pipe = client.pipeline(transaction=False)
        for script, keys, args, _ in batch:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))

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
            raise StoreUnavailable(f"Redis did not answer: {type(exc).__name__}") from None
        self.health.answered()
        return reply

    async def aclose(self) -> None:
        """Close this loop's client (its connections)."""
        state = self._loops.pop(asyncio.get_running_loop(), None)
        if state is not None:
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
