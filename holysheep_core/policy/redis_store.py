"""Policy state shared by every process that names the same Redis and namespace.

``RedisStore`` applies the policy operations of :mod:`.operations` as Lua scripts, one
round trip per decision: ``before.lua`` (budget holds, the breaker's pass, the limiter's
turn, all or nothing) and ``after.lua`` (the breaker's verdict, the limiter's corrections,
budget settlements, the shared ledger). The scripts mirror :func:`.operations.apply`
float operation for float operation; a differential test holds them to it.

* One clock: the scripts read Redis ``TIME`` (a ``clock=`` given to the store replaces it,
  for tests).
* Exact money: budgets count integer nano-USD. A hold is kept per call id (sending it again
  holds nothing more) and expires after ``hold_ttl`` seconds, counted as spent: its process
  is gone and the server may have billed the call it was sending.
* Keys: ``{hs:<namespace>}:<key>``, one Cluster hash slot per namespace; every key expires
  when idle (``idle_ttl``; budgets and the ledger ``budget_ttl``).
* Redis slow or down (no answer within ``policy_timeout``; after ``error_threshold``
  failures it is not asked again for ``retry_interval`` seconds, then probed): the breaker
  keeps a circuit in this process; the limiter gives this process its share of each limit
  (the limit divided by the processes seen alive by heartbeat) and, when Redis is back,
  charges the shared buckets with what it let through; a budget refuses every call
  (``budget_fallback="refuse"``, the default: a cap is a cap), or spends a lease taken
  from it beforehand (``budget_fallback="lease"``). What happened after an attempt
  (verdicts, corrections, settlements, ledger) is replayed in Redis once it is back, each
  operation applied once.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import functools
import itertools
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal

from ..accounting import TokenUsage
from ..errors import BudgetUnavailableError
from .breaker import (
    Admission,
    BreakerPolicy,
    Circuit,
    CircuitState,
    Outcome,
    Refusal,
    transition,
)
from .operations import (
    AfterAttempt,
    BeforeAttempt,
    BucketBack,
    BudgetHold,
    BudgetRefusal,
    BudgetSettle,
    Entered,
    InMemoryStore,
    Left,
    Operation,
    Spending,
    nano_usd,
    usd,
)
from .ratelimit import Bucket, BucketSpec, LimiterTuning
from .redis_link import RedisLink, Script, StoreUnavailable

__all__ = ["RedisStore", "SharedUsage", "StoreUnavailable"]

log = logging.getLogger("holysheep")

_DEFAULT_TUNING = LimiterTuning()
_STATES = (CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN)
_STATE_CODES = {s: i for i, s in enumerate(_STATES)}
_REPLAY_LIMIT = 100_000
_SEND_AT_ONCE = 500  # queued operations put on a wire in one go
# Seconds Redis remembers an after-attempt operation was applied, so that sending it again
# (its first reply was lost) changes nothing: longer than any replay waits for a slow Redis.
_DONE_TTL = "300"  # seconds; as the script reads it


@dataclass(frozen=True, slots=True)
class SharedUsage:
    """What every process sharing a store spent, by model, as :class:`TokenUsage`
    (``requests`` counts the calls that may have been billed: answered, or sent and never
    answered; ``unpriced_requests`` those whose cost is unknown)."""

    by_model: dict[str, TokenUsage]

    @property
    def usage(self) -> TokenUsage:
        """All models together."""
        return sum(self.by_model.values(), TokenUsage())

    @property
    def requests(self) -> int:
        return self.usage.requests

    @property
    def cost_usd(self) -> Decimal | None:
        return self.usage.cost_usd


def _can_wait(op: AfterAttempt) -> bool:
    """Whether the process's next decision may be made without ``op``: it only gives
    back (a success, an over-estimate, a hold bigger than what was spent), so a decision
    made ahead of it is only stricter than one made after it."""
    return (
        not op.backoff
        and not op.server_counts
        and (op.admission is None or op.outcome is not Outcome.FAILURE)
        and all(b.amount >= 0 for b in op.give_back)
        and all(s.spent <= s.hold for s in op.settles)
    )


@dataclass(frozen=True, slots=True)
class _Scripts:
    before: Script
    after: Script
    heartbeat: Script


@functools.cache
def _scripts() -> _Scripts:
    """The policy scripts, read from the package on first use."""
    return _Scripts(*(Script.load(name, "common") for name in ("before", "after", "heartbeat")))


@dataclass(slots=True)
class _Lease:
    """Part of a shared budget held in Redis by this process, to spend while Redis is away."""

    hold: BudgetHold
    call_id: str
    taken: float
    left: int
    spent: int = 0
    held: dict[str, int] = field(default_factory=dict)
    """Holds of calls in flight taken from the lease, by call id."""
    used: bool = False


# The policies' arguments, as the scripts read them, made once: a float's text costs more
# than the rest of an argument.


@functools.lru_cache(maxsize=64)
def _policy(p: BreakerPolicy) -> tuple[str, ...]:
    return _texts(
        p.failure_threshold, p.cool_down, p.half_open_probes, p.success_threshold, p.probe_timeout
    )


@functools.lru_cache(maxsize=256)
def _spec(s: BucketSpec) -> tuple[str, ...]:
    return _texts(0 if s.kind == "requests" else 1, float(s.rate), float(s.capacity))


@functools.lru_cache(maxsize=64)
def _tuning(t: LimiterTuning | None) -> tuple[str, ...]:
    t = t or _DEFAULT_TUNING
    return _texts(float(t.backoff), float(t.min_rate_factor), float(t.recovery))


def _texts(*values: Any) -> tuple[str, ...]:
    return tuple(map(str, values))


def _circuit(fields: list[Any]) -> Circuit:
    s, e, f, o, p, k, a = fields
    return Circuit(_STATES[int(s)], int(e), int(f), float(o), int(p), int(k), float(a))


class RedisStore:
    """A policy store on Redis: every client, in every process and on every host, that
    names the same ``url`` and ``namespace`` shares circuits, rate limits, budgets and the
    ledger (:meth:`shared_usage`). Pass it as ``policy_store=``.

    Args:
        url: ``redis://`` or ``rediss://`` URL (redis-py's syntax).
        namespace: keeps unrelated deployments apart on one Redis.
        policy_timeout: seconds a decision may wait for Redis before the policies degrade.
        connect_timeout: seconds to open a connection.
        error_threshold: consecutive failures after which Redis is left alone for
            ``retry_interval`` seconds, then probed by one call.
        idle_ttl: seconds a circuit or bucket nobody touches is kept (a bucket is kept at
            least until it would be full again).
        budget_ttl: seconds an untouched budget and the ledger are kept.
        hold_ttl: seconds a budget hold lives; one not settled by then counts as spent.
        heartbeat: seconds between this process's heartbeats (how the processes sharing a
            limit are counted while Redis is down).
        limiter_fallback: ``"share"`` (this process's share of each limit) or ``"refuse"``.
        budget_fallback: ``"refuse"`` (the default) or ``"lease"``: before Redis fails,
            each process holds ``budget_lease_usd`` of every budget it uses and spends it
            while Redis is down.
        clock: test mode: the scripts take their time from this instead of Redis ``TIME``.
    """

    inline = False
    shares_ledger = True

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "default",
        policy_timeout: float = 0.25,
        connect_timeout: float = 1.0,
        error_threshold: int = 3,
        retry_interval: float = 0.25,
        idle_ttl: float = 3600.0,
        budget_ttl: float = 30 * 86400.0,
        hold_ttl: float = 900.0,
        heartbeat: float = 2.0,
        limiter_fallback: Literal["share", "refuse"] = "share",
        budget_fallback: Literal["refuse", "lease"] = "refuse",
        budget_lease_usd: Decimal | float | str = 0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not namespace or any(c in namespace for c in "{}"):
            raise ValueError(f"namespace must be non-empty and without braces: {namespace!r}")
        for name, value in (
            ("policy_timeout", policy_timeout),
            ("connect_timeout", connect_timeout),
            ("retry_interval", retry_interval),
            ("idle_ttl", idle_ttl),
            ("budget_ttl", budget_ttl),
            ("hold_ttl", hold_ttl),
            ("heartbeat", heartbeat),
        ):
            if isinstance(value, bool) or not value > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
        if isinstance(error_threshold, bool) or not isinstance(error_threshold, int):
            raise ValueError(f"error_threshold must be an integer >= 1, got {error_threshold!r}")
        if error_threshold < 1:
            raise ValueError(f"error_threshold must be an integer >= 1, got {error_threshold!r}")
        if limiter_fallback not in ("share", "refuse"):
            raise ValueError(f"limiter_fallback must be 'share' or 'refuse': {limiter_fallback!r}")
        if budget_fallback not in ("refuse", "lease"):
            raise ValueError(f"budget_fallback must be 'refuse' or 'lease': {budget_fallback!r}")
        self._settings = {
            "url": url,
            "namespace": namespace,
            "policy_timeout": policy_timeout,
            "connect_timeout": connect_timeout,
            "error_threshold": error_threshold,
            "retry_interval": retry_interval,
            "idle_ttl": idle_ttl,
            "budget_ttl": budget_ttl,
            "hold_ttl": hold_ttl,
            "heartbeat": heartbeat,
            "limiter_fallback": limiter_fallback,
            "budget_fallback": budget_fallback,
            "budget_lease_usd": budget_lease_usd,
            "clock": clock,
        }
        self.namespace = namespace
        self.prefix = f"{{hs:{namespace}}}:"
        self._link = RedisLink(
            url,
            policy_timeout=policy_timeout,
            connect_timeout=connect_timeout,
            error_threshold=error_threshold,
            retry_interval=retry_interval,
        )
        self._test_clock = clock
        self.clock: Callable[[], float] = clock or time.time
        self._ttls = {"ttl": idle_ttl, "budget_ttl": budget_ttl, "hold_ttl": hold_ttl}
        self._ttl_args = _texts(idle_ttl, budget_ttl, hold_ttl)
        self._heartbeat = heartbeat
        self._limiter_fallback = limiter_fallback
        self._budget_fallback = budget_fallback
        self._lease = nano_usd(Decimal(str(budget_lease_usd)))
        self._lock = threading.RLock()
        self._process_state()

    @property
    def url(self) -> str:
        """The Redis URL, as given (it may hold Redis's password: never in the repr). A
        ``ResponseCache(redis=store)`` keeps its entries there, in the store's namespace."""
        return self._settings["url"]

    def _process_state(self) -> None:
        """What belongs to this process alone (made again after a fork)."""
        self._pid = os.getpid()
        self._token = uuid.uuid4().hex[:16]
        self._ops = itertools.count(1)
        self._next_beat = 0.0
        self._beats: set[asyncio.Task[None]] = set()
        self._processes = 1
        # Redis's clock less this process's monotonic one, as the last heartbeats read it
        # (each reads it late by its reply's trip: the largest is the closest).
        self._offsets: collections.deque[float] = collections.deque(maxlen=5)
        self._local = InMemoryStore(clock=time.monotonic)
        self._degraded = False
        # The latest turn Redis gave this process in each bucket (monotonic seconds, by
        # key): the shared bucket is booked until then, by calls that keep their turns if
        # Redis stops answering; this process's share of the limit starts after it.
        self._booked: dict[str, float] = {}
        # Bucket units let through while Redis was away, by spec: charged to the shared
        # buckets when it is back.
        self._charged: dict[BucketSpec, float] = {}
        # After-attempt operations Redis has not confirmed, with their ids: replayed when
        # it is back (each applies once). Also the deferred ones.
        self._replay: dict[str, AfterAttempt] = {}  # by id, oldest first
        # The queued operations on an event loop's wire now, with their replies to come.
        self._on_wire: dict[str, asyncio.Future[Any]] = {}
        self._wake = threading.Event()
        self._sender: threading.Thread | None = None
        self._leases: dict[str, _Lease] = {}

    def _here(self) -> None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._process_state()

    # --- pickling: settings travel, connections and process state do not ------------------

    def __getstate__(self) -> dict[str, Any]:
        return dict(self._settings)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"RedisStore(namespace={self.namespace!r})"

    # --- the store interface ------------------------------------------------------------

    def apply(self, op: Operation) -> Any:
        """Apply ``op`` in Redis (one round trip), or degrade as the store is configured."""
        self._here()
        if self._replay and self._link.health.up:
            self._send_soon()
        self._beat()
        flow = self._decide(op)
        try:
            call = next(flow)
            while True:
                try:
                    reply = self._link.run(*call)
                except StoreUnavailable as exc:
                    call = flow.throw(exc)
                else:
                    call = flow.send(reply)
        except StopIteration as stop:
            return stop.value

    async def apply_async(self, op: Operation) -> Any:
        """:meth:`apply` for an event loop: never blocks it; decisions made in the same
        tick share one pipeline."""
        self._here()
        if len(self._replay) > len(self._on_wire) and self._link.health.up:
            self._send_soon()  # queued while Redis was away, or on a closed loop's wire
        self._beat_soon()
        flow = self._decide(op)
        try:
            call = next(flow)
            while True:
                try:
                    reply = await self._link.submit(*call)
                except (StoreUnavailable, asyncio.CancelledError) as exc:
                    call = flow.throw(exc)
                else:
                    call = flow.send(reply)
        except StopIteration as stop:
            return stop.value

    def _decide(self, op: Operation) -> Generator[tuple[Any, ...], Any, Any]:
        """One decision, written once for both drivers: yields each script call
        ``(script, keys, args)`` and takes its reply, or the error the call raised."""
        try:
            if isinstance(op, BeforeAttempt):
                if self._degraded and self._charged:
                    # What this process let through while Redis was away reaches the
                    # shared buckets ahead of this decision, if Redis answers it.
                    self._queue_charges()
                    self._send_soon()
                result: Any = self._entered(op, (yield (_scripts().before, *self._before_call(op))))
                if result.wait > 0 and result.granted:
                    self._book(op.buckets, result.wait)
            else:
                op = self._settle_leased(op)
                op_id = self._op_id()
                call = (_scripts().after, *self._after_call(op, op_id))
                try:
                    result = self._left(op, (yield call))
                except (StoreUnavailable, asyncio.CancelledError):
                    # Sent or not, it must reach Redis exactly once: replayed when Redis
                    # answers again (the operation id makes a second delivery a no-op).
                    self._queue(op_id, op)
                    raise
        except StoreUnavailable as exc:
            return self._degrade(op, sent=exc.sent)
        if self._degraded:
            self._back_on_redis()
            self._send_soon()
        if self._lease:
            for lease_op in self._lease_work(op, result):
                with contextlib.suppress(StoreUnavailable):
                    reply = yield (_scripts().before, *self._before_call(lease_op))
                    self._leased(lease_op, self._entered(lease_op, reply))
        return result

    def defer(self, op: Operation) -> None:
        """Queue ``op`` (an :class:`AfterAttempt` whose result nobody waits for, perhaps
        from a finaliser, where no I/O may happen). In an event loop: when it can make
        the next decision stricter it is written at the end of the tick, ahead of the
        decisions made after it; when it only gives back it waits for the decision in
        flight (see :meth:`Wire.submit_later`). Elsewhere a thread of this process sends
        it (and retries while Redis is away); :meth:`flush` sends what is queued at once."""
        self._here()
        if not isinstance(op, AfterAttempt):
            raise TypeError("only an AfterAttempt can be deferred")
        op_id = self._op_id()
        self._queue(op_id, op)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._wake.set()
            self._start_sender()
            return
        self._submit(op_id, op)

    def _send_soon(self) -> None:
        """Have what is queued sent, without waiting for it: in an event loop on its wire
        at once (ahead of any decision made after it: the process reads its own writes),
        elsewhere by a thread of this process, which retries while Redis is away."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._wake.set()
            self._start_sender()
            return
        self._submit_queued()

    def _start_sender(self) -> None:
        if self._sender is None:
            with self._lock:
                if self._sender is None:
                    # At exit, what the daemon thread has not sent yet goes (if Redis answers).
                    atexit.register(_flush_at_exit, weakref.ref(self))
                    self._sender = threading.Thread(
                        target=self._send_deferred, name="holysheep-redis-deferred", daemon=True
                    )
                    self._sender.start()

    def _submit_queued(self) -> None:
        """Put the queued operations not on a wire yet on this loop's (oldest first, a
        bounded number at a time); their replies confirm them."""
        with self._lock:
            items = [(i, op) for i, op in self._replay.items() if i not in self._on_wire]
        for op_id, op in items[:_SEND_AT_ONCE]:
            if not self._submit(op_id, op):
                return

    def _submit(self, op_id: str, op: AfterAttempt) -> bool:
        """Put one queued operation on this loop's wire; False when Redis is resting (the
        sender thread retries)."""
        try:
            # Never written here: this may run in a finaliser.
            if _can_wait(op):  # once the replies awaited now are in, built then
                build = functools.partial(self._after_call, op, op_id)
                future = self._link.submit_later(_scripts().after, build)
            else:  # at the end of the tick, ahead of the decisions made after it
                call = self._after_call(op, op_id)
                future = self._link.submit(_scripts().after, *call, at_once=False)
        except StoreUnavailable:
            self._wake.set()
            self._start_sender()
            return False
        self._on_wire[op_id] = future
        future.add_done_callback(functools.partial(self._answered, op_id))
        return True

    def _answered(self, op_id: str, future: asyncio.Future[Any]) -> None:
        self._on_wire.pop(op_id, None)
        if future.cancelled():
            return  # its loop closed: it stays queued
        exc = future.exception()
        if isinstance(exc, StoreUnavailable):
            self._wake.set()  # Redis away: the sender thread retries (applied once)
            self._start_sender()
            return
        if exc is not None:  # a bug, not Redis away: never resent
            log.error("a policy operation failed in Redis: %r", exc)
        self._confirmed(op_id)
        if self._replay and not self._on_wire:
            self._submit_queued()  # more than one write's worth was queued

    def _send_deferred(self) -> None:
        """A thread of this process that sends what was deferred, retrying while Redis is
        away (finalisers must not do I/O, and nothing may be lost)."""
        while True:
            self._wake.wait()
            self._wake.clear()
            while self._replay:
                try:
                    self._send_queued()
                except Exception:  # a bug must not kill the sender: log it, try again later
                    log.exception("sending deferred policy operations failed")
                if self._replay:
                    time.sleep(self._link.health.interval)

    def flush(self) -> bool:
        """Send what is queued (deferred or unconfirmed operations) now; False when Redis
        does not answer (it stays queued)."""
        self._here()
        return self._send_queued()

    def items(self, prefix: str) -> dict[str, Any]:
        """A snapshot of the values whose keys start with ``prefix`` (circuits, buckets,
        budgets). While Redis does not answer: this process's own circuits and buckets (the
        ones in effect), and :class:`StoreUnavailable` for budgets (no local figure is
        the shared one)."""
        self._here()
        try:
            return self._items(prefix)
        except StoreUnavailable:
            if prefix.startswith("budget:"):
                raise
            return self._local.items(prefix)

    def close(self, *, timeout: float = 5.0) -> None:
        """Send what is queued (trying for up to ``timeout`` seconds while Redis does not
        answer: a worker about to exit must not lose its settlements) and close this
        process's connections."""
        self._here()
        deadline = time.monotonic() + timeout
        try:
            while not self._send_queued() and time.monotonic() < deadline:
                time.sleep(self._link.health.interval / 2)
        finally:
            self._link.close()

    async def aclose(self, *, timeout: float = 5.0) -> None:
        """:meth:`close` for an event loop (this loop's connections)."""
        deadline = time.monotonic() + timeout
        while not await self._send_queued_async() and time.monotonic() < deadline:
            await asyncio.sleep(self._link.health.interval / 2)
        await self._link.aclose()

    # --- the ledger ---------------------------------------------------------------------

    def shared_usage(self) -> SharedUsage:
        """Requests, tokens and cost counted by every process sharing this store, by model.
        Raises :class:`StoreUnavailable` when Redis does not answer."""
        self._here()
        self._send_queued()  # this process's own calls first: it reads what it wrote
        models = self._link.command("SMEMBERS", self.prefix + "ledger:models")
        by_model: dict[str, TokenUsage] = {}
        for raw in sorted(models):
            model = raw.decode()
            values = self._link.command("HGETALL", self.prefix + "ledger:model:" + model)
            c = {k.decode(): int(v) for k, v in _pairs(values)}
            priced = c.get("requests", 0) - c.get("unpriced_requests", 0)
            by_model[model] = TokenUsage(
                requests=c.get("requests", 0),
                input_tokens=c.get("input_tokens", 0),
                output_tokens=c.get("output_tokens", 0),
                cached_tokens=c.get("cached_tokens", 0),
                reasoning_tokens=c.get("reasoning_tokens", 0),
                cost_usd=usd(c.get("cost_nano", 0)) if priced > 0 else None,
                unpriced_requests=c.get("unpriced_requests", 0),
            )
        return SharedUsage(by_model)

    # --- encoding operations --------------------------------------------------------------

    def _hold_id(self, call_id: str) -> str:
        # Call ids are unique in their process only: holds in Redis are kept by process.
        return f"{self._token}:{call_id}"

    def _op_id(self) -> str:
        return f"{self._token}:{next(self._ops)}"

    def _now(self) -> str:
        return "" if self._test_clock is None else repr(float(self._test_clock()))

    def _stale_after(self) -> str:
        """When Redis should no longer apply a decision made now, on Redis's clock: its
        caller stops waiting a policy timeout after sending it; one more allows for the
        clocks' offset read late. Decisions that sat in a socket while Redis stalled would
        otherwise book turns for calls gone on without Redis, and every process would wait
        behind them for up to ``max_wait`` once it answers."""
        if not self._offsets or self._test_clock is not None:
            return ""
        return repr(time.monotonic() + max(self._offsets) + 2 * self._link.policy_timeout)

    def _budget_keys(self, key: str) -> tuple[str, str]:
        k = self.prefix + key
        return k, k + ":expiry"

    # The scripts' arguments are flat, in the order the scripts read them (a count ahead of
    # every list): no JSON to write here or to decode in Redis, on every decision.

    def _before_call(self, op: BeforeAttempt) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        keys: list[str] = []
        ttl, budget_ttl, hold_ttl = self._ttl_args
        args: list[Any] = [
            self._now(),
            self._hold_id(op.call_id),
            self._stale_after(),
            ttl,
            budget_ttl,
            hold_ttl,
            len(op.holds),
        ]
        for h in op.holds:
            args += (h.cap, h.amount)
            keys.extend(self._budget_keys(h.key))
        if op.breaker is not None:
            args += (1, *_policy(op.breaker))
            keys.append(self.prefix + op.breaker_key)
        else:
            args.append(0)
        args.append(len(op.buckets))
        if op.buckets:
            for spec in op.buckets:
                args += _spec(spec)
                keys.append(self.prefix + spec.key)
            args += (float(op.tokens), *_tuning(op.tuning))
            args.append("" if op.max_wait is None else float(op.max_wait))
        return tuple(keys), tuple(args)

    def _after_call(self, op: AfterAttempt, op_id: str) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        token, seq = op_id.split(":")
        keys = [self.prefix + "done:" + token]
        ttl, budget_ttl, _ = self._ttl_args
        args: list[Any] = [
            self._now(),
            self._hold_id(op.call_id),
            seq,
            _DONE_TTL,
            ttl,
            budget_ttl,
        ]
        if op.breaker is not None and op.admission is not None:
            outcome = {"success": 1, "failure": 2}.get(op.outcome.value, 0)
            args += (1, *_policy(op.breaker), op.admission.epoch, int(op.admission.probe), outcome)
            keys.append(self.prefix + op.breaker_key)
        else:
            args.append(0)
        args += _tuning(op.tuning)
        args.append(len(op.give_back))
        for b in op.give_back:
            args += (*_spec(b.spec), float(b.amount))
            keys.append(self.prefix + b.spec.key)
        args.append(len(op.server_counts))
        for c in op.server_counts:
            args += (*_spec(c.spec), float(c.remaining), float(c.reset or 0.0))
            keys.append(self.prefix + c.spec.key)
        args.append(len(op.backoff))
        for spec in op.backoff:
            args += _spec(spec)
            keys.append(self.prefix + spec.key)
        args.append(float(op.retry_after or 0.0))
        args.append(len(op.settles))
        for settle in op.settles:
            args.append(settle.spent)
            keys.extend(self._budget_keys(settle.key))
        ledger = op.ledger
        if ledger is not None:
            args += (1, ledger.model, *(getattr(ledger, f) for f in _LEDGER_FIELDS))
            keys.append(self.prefix + "ledger:model:" + ledger.model)
            keys.append(self.prefix + "ledger:models")
        else:
            args.append(0)
        return tuple(keys), tuple(args)

    def _entered(self, op: BeforeAttempt, reply: list[Any]) -> Entered:
        kind = reply[0]
        if kind == b"ok":
            wait = float(reply[1])
            if len(reply) == 2:
                return Entered(wait)
            admission = Admission(int(reply[2]), bool(int(reply[3])))
            if len(reply) == 4:  # the circuit's state is as it was
                return Entered(wait, True, admission)
            assert op.breaker is not None
            old = Circuit(_STATES[int(reply[4])])
            new = _circuit(reply[5])
            return Entered(
                wait, True, admission, None, None, transition(op.breaker, op.breaker_key, old, new)
            )
        if kind == b"late":
            return Entered(float(reply[1]), False)
        if kind == b"stale":  # applied nothing: as if Redis had not answered
            self._next_beat = 0.0  # Redis's clock may have jumped: read it again
            raise StoreUnavailable("Redis ran the decision after its caller stopped waiting")
        if kind == b"budget":
            hold = op.holds[int(reply[1]) - 1]
            return Entered(budget_refusal=BudgetRefusal(hold.key, int(reply[2]), int(reply[3])))
        if kind == b"open":
            state, retry_after, failures, probes = reply[1:]
            return Entered(
                refusal=Refusal(_STATES[int(state)], float(retry_after), int(failures), int(probes))
            )
        raise RuntimeError(f"unexpected reply from the policy script: {reply!r}")

    def _left(self, op: AfterAttempt, reply: list[Any]) -> Left:
        if len(reply) == 3:
            assert op.breaker is not None
            old = Circuit(_STATES[int(reply[1])])
            return Left(transition(op.breaker, op.breaker_key, old, _circuit(reply[2])))
        return Left()

    # --- Redis away ---------------------------------------------------------------------------

    def _queue(self, op_id: str, op: AfterAttempt) -> None:
        with self._lock:
            if len(self._replay) >= _REPLAY_LIMIT:
                dropped = next(iter(self._replay))
                del self._replay[dropped]
                log.warning(
                    "policy operations waiting for Redis passed %d: dropped the oldest (%s)",
                    _REPLAY_LIMIT,
                    dropped,
                )
            self._replay[op_id] = op

    def _degrade(self, op: Operation, *, sent: bool = True) -> Any:
        """Apply ``op`` in this process while Redis does not answer."""
        if not self._degraded:
            with self._lock:
                if not self._degraded:
                    self._local = InMemoryStore(clock=time.monotonic, values=self._booked_buckets())
                    self._degraded = True
                    log.warning("Redis does not answer: policies run on this process's own state")
        if isinstance(op, BeforeAttempt):
            if op.holds:
                if sent:
                    # Its operation may yet reach Redis (it timed out): release what it
                    # held there once Redis answers (nothing, if it never arrived).
                    release = tuple(BudgetSettle(h.key, h.amount, 0) for h in op.holds)
                    self._queue(self._op_id(), AfterAttempt(op.call_id, settles=release))
                self._hold_from_leases(op)
                try:
                    entered = self._degrade(replace(op, holds=()), sent=sent)
                except BaseException:
                    self._give_back_leased(op.call_id)
                    raise
                if not entered.granted or entered.refusal is not None:
                    self._give_back_leased(op.call_id)
                return entered
            if op.buckets:
                if self._limiter_fallback == "refuse":
                    return Entered(wait=float("inf"), granted=False)
                shared = op.buckets
                op = replace(op, buckets=tuple(self._share(s) for s in shared))
                entered = self._local.apply(op)
                if entered.granted and entered.budget_refusal is None and entered.refusal is None:
                    with self._lock:
                        for s in shared:
                            amount = 1.0 if s.kind == "requests" else float(op.tokens)
                            self._charged[s] = self._charged.get(s, 0.0) + amount
                return entered
            return self._local.apply(op)
        op = self._settle_leased(op)
        local = replace(
            op,
            settles=(),
            give_back=tuple(replace(b, spec=self._share(b.spec)) for b in op.give_back),
            server_counts=tuple(replace(c, spec=self._share(c.spec)) for c in op.server_counts),
            backoff=tuple(self._share(s) for s in op.backoff),
        )
        return self._local.apply(local)

    # --- budget leases (budget_fallback="lease") --------------------------------------------

    def _lease_work(self, op: Operation, result: Any) -> list[BeforeAttempt]:
        """With Redis answering: return leases that were spent from (or are old: a hold
        expires as spent) and list the leases to take for the budgets ``op`` held in."""
        now = time.monotonic()
        with self._lock:
            for key, lease in list(self._leases.items()):
                stale = now - lease.taken > self._ttls["hold_ttl"] / 2
                if (lease.used or stale) and not lease.held:
                    del self._leases[key]
                    settle = BudgetSettle(key, lease.hold.amount, lease.spent)
                    self._queue(self._op_id(), AfterAttempt(lease.call_id, settles=(settle,)))
            if not (isinstance(op, BeforeAttempt) and op.holds and result.budget_refusal is None):
                return []
            missing = [h for h in op.holds if h.key not in self._leases]
        return [
            BeforeAttempt(
                f"lease:{self._token}:{next(self._ops)}",
                holds=(BudgetHold(h.key, h.cap, self._lease),),
            )
            for h in missing
        ]

    def _leased(self, op: BeforeAttempt, entered: Entered) -> None:
        if entered.budget_refusal is None:  # else: too little left to lease; try later
            hold = op.holds[0]
            with self._lock:
                self._leases[hold.key] = _Lease(hold, op.call_id, time.monotonic(), hold.amount)

    def _hold_from_leases(self, op: BeforeAttempt) -> None:
        """Hold ``op``'s estimates in this process's leases, all or none, or refuse."""
        with self._lock:
            leases = [self._leases.get(h.key) for h in op.holds]
            short = [
                h for h, lease in zip(op.holds, leases, strict=True)
                if lease is None or lease.left < h.amount
            ]  # fmt: skip
            if not short:
                for h, lease in zip(op.holds, leases, strict=True):
                    assert lease is not None
                    lease.left -= h.amount
                    lease.held[op.call_id] = h.amount
                    lease.used = True
                return
        hold = short[0]
        leased = "" if self._budget_fallback == "refuse" else " and this process's lease is spent"
        raise BudgetUnavailableError(
            f"the shared budget {hold.key!r} cannot be asked (Redis does not answer){leased}; "
            "the call is refused rather than risk passing the cap. Nothing was sent.",
            budget_usd=usd(hold.cap),
            spent_usd=None,  # type: ignore[arg-type]
            estimate_usd=usd(hold.amount),
        )

    def _give_back_leased(self, call_id: str) -> None:
        with self._lock:
            for lease in self._leases.values():
                amount = lease.held.pop(call_id, None)
                if amount is not None:
                    lease.left += amount

    def _settle_leased(self, op: AfterAttempt) -> AfterAttempt:
        """Settle in this process the holds ``op`` ends that came from a lease (Redis never
        saw them): the lease's spending grows, and is settled in Redis with the lease."""
        if not self._leases or not op.settles:
            return op
        rest = []
        with self._lock:
            for s in op.settles:
                lease = self._leases.get(s.key)
                amount = None if lease is None else lease.held.pop(op.call_id, None)
                if lease is None or amount is None:
                    rest.append(s)
                    continue
                lease.spent += s.spent
                lease.left += amount - s.spent
        return op if len(rest) == len(op.settles) else replace(op, settles=tuple(rest))

    def _book(self, specs: tuple[BucketSpec, ...], wait: float) -> None:
        """Note a turn Redis gave ``wait`` seconds from now in ``specs``' buckets."""
        turn = time.monotonic() + wait
        booked = self._booked
        for spec in specs:
            if booked.get(spec.key, 0.0) < turn:
                booked[spec.key] = turn

    def _booked_buckets(self) -> dict[str, Bucket]:
        """This process's buckets as Redis stops answering: empty until the last turn it
        knows of in the shared bucket. The calls holding Redis turns keep them, and they
        spend the shared rate until then; the shares of the processes spend it after."""
        now = time.monotonic()
        return {key: Bucket(0.0, turn) for key, turn in self._booked.items() if turn > now}

    def _share(self, spec: BucketSpec) -> BucketSpec:
        n = max(self._processes, 1)
        if n == 1:
            return spec
        return replace(spec, rate=spec.rate / n, capacity=spec.capacity / n)

    def _send_queued(self) -> bool:
        """Send the operations Redis has not confirmed, oldest first; False when it does
        not answer (they stay queued)."""
        while self._replay:
            with self._lock:
                if not self._replay:
                    break
                op_id, op = next(iter(self._replay.items()))
            keys, args = self._after_call(op, op_id)
            try:
                self._link.run(_scripts().after, keys, args)
            except StoreUnavailable:
                return False
            except Exception as exc:  # a bug, not Redis away: never resent
                log.error("a policy operation failed in Redis: %r", exc)
            self._confirmed(op_id)
        return True

    async def _send_queued_async(self) -> bool:
        """:meth:`_send_queued` for an event loop, on its wire, waiting for the replies;
        False when Redis does not answer (they stay queued)."""
        loop = asyncio.get_running_loop()
        while True:
            self._submit_queued()
            mine = [f for f in list(self._on_wire.values()) if f.get_loop() is loop]
            if not mine:
                return not self._replay
            await asyncio.gather(*mine, return_exceptions=True)
            if any(not f.cancelled() and isinstance(f.exception(), StoreUnavailable) for f in mine):
                return False

    def _confirmed(self, op_id: str) -> None:
        with self._lock:
            self._replay.pop(op_id, None)

    def _back_on_redis(self) -> None:
        """Redis answered again: charge the shared buckets with what this process let
        through meanwhile (queued, sent next), and forget the local state."""
        with self._lock:
            if not self._degraded:
                return
            self._degraded = False
            self._local = InMemoryStore(clock=time.monotonic)
        self._queue_charges()
        log.warning("Redis answers again: policies are shared again")

    def _queue_charges(self) -> None:
        """Queue the charge of the bucket units let through in this process while Redis was
        away (each unit is charged once)."""
        with self._lock:
            charged, self._charged = self._charged, {}
        if charged:
            backs = tuple(BucketBack(spec, -amount) for spec, amount in charged.items())
            self._queue(self._op_id(), AfterAttempt(call_id="resync", give_back=backs))

    # --- heartbeats -----------------------------------------------------------------------------

    def _beat_args(self) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        now = time.monotonic()
        if now < self._next_beat:
            return None
        self._next_beat = now + self._heartbeat
        # Redis TIME even in test mode: liveness is a matter of real time.
        lasts = repr(self._heartbeat * 3)
        return (self.prefix + "processes",), ("", "", self._token, lasts)

    def _beat(self) -> None:
        call = self._beat_args()
        if call is not None:
            # Unanswered: the decision that follows degrades.
            with contextlib.suppress(StoreUnavailable):
                self._heard(self._link.run(_scripts().heartbeat, *call))

    def _beat_soon(self) -> None:
        # Never ahead of the decision that is due: the heartbeat goes in the same batch.
        call = self._beat_args()
        if call is not None:
            task = asyncio.get_running_loop().create_task(self._beat_async(call))
            self._beats.add(task)
            task.add_done_callback(self._beats.discard)

    async def _beat_async(self, call: tuple[tuple[str, ...], tuple[str, ...]]) -> None:
        with contextlib.suppress(StoreUnavailable):
            self._heard(await self._link.run_async(_scripts().heartbeat, *call))

    def _heard(self, reply: list[Any]) -> None:
        self._processes = int(reply[0])
        self._offsets.append(float(reply[1]) - time.monotonic())

    @property
    def processes(self) -> int:
        """Processes seen alive by the last heartbeat (this one included)."""
        return self._processes

    # --- reading values -------------------------------------------------------------------------

    def _items(self, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        cursor = 0
        pattern = self.prefix + _glob_escape(prefix) + "*"
        n = len(self.prefix)
        while True:
            cursor, found = self._link.command("SCAN", cursor, "MATCH", pattern, "COUNT", 500)
            for raw in found:
                key = raw.decode()[n:]
                value = self._value(key)
                if value is not None:
                    out[key] = value
            if int(cursor) == 0:
                return out

    def _value(self, key: str) -> Any:
        if key.startswith("budget:"):
            if key.endswith(":expiry"):
                return None
            spent, held = self._link.command("HMGET", self.prefix + key, "spent", "held")
            return Spending(int(spent or 0), int(held or 0))
        if key.startswith("breaker:"):
            fields = self._link.command(
                "HMGET", self.prefix + key, "s", "e", "f", "o", "p", "k", "a"
            )
            return None if fields[0] is None else _circuit(fields)
        if key.startswith("limit:"):
            fields = self._link.command("HMGET", self.prefix + key, "l", "t", "f", "g")
            return None if fields[0] is None else Bucket(*(float(v) for v in fields))
        return None


def _flush_at_exit(ref: weakref.ref[RedisStore]) -> None:
    store = ref()
    if store is not None and store._pid == os.getpid():
        with contextlib.suppress(Exception):
            store.flush()


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _pairs(values: Any) -> list[tuple[Any, Any]]:
    if isinstance(values, dict):
        return list(values.items())
    return list(zip(values[::2], values[1::2], strict=True))


_LEDGER_FIELDS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_nano",
    "unpriced_requests",
)
