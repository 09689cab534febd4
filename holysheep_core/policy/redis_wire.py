"""One pipelined Redis connection per event loop for the policy scripts.

A decision waits on Redis before every attempt, so this path is kept to what a round trip
needs: an asyncio protocol, replies parsed in its callback (hiredis when installed), no
task per call and no timer per read.

* Order: one connection, so Redis applies a process's operations in the order it made
  them (a settlement made before the next decision is applied before it).
* Writes: a call made while nothing is on the wire is written at once; calls made while
  replies are awaited go together in one write at the end of the tick.
* Failure: a reply not back within ``policy_timeout`` of its write, or a lost connection,
  fails every call on the wire with :class:`StoreUnavailable` and drops the connection (a
  late reply must never be read as another call's); the next call connects afresh.
* Scripts Redis has forgotten (restart, ``SCRIPT FLUSH``) are sent again with ``EVAL``,
  which runs the source and keeps it for the ``EVALSHA`` calls that follow.
* URLs: ``redis://``, ``rediss://`` (TLS; ``ssl_cert_reqs``, ``ssl_ca_certs``,
  ``ssl_certfile``, ``ssl_keyfile``, ``ssl_check_hostname`` in the query) and ``unix://``,
  with a user name and password (``AUTH``) and a database (``SELECT``), as redis-py reads
  them.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from .redis_link import Script, _Health

__all__ = ["Endpoint", "ScriptError", "Wire"]


class ScriptError(RuntimeError):
    """Redis answered a script call with an error (a bug, not Redis being away)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to connect, read from a redis-py style URL."""

    host: str | None
    port: int
    path: str | None
    tls: ssl.SSLContext | None
    username: str | None
    password: str | None
    db: int

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError("a Redis URL starts with redis://, rediss:// or unix://")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        db = query.get("db")  # before the path, as redis-py has it
        if db is None and scheme != "unix" and parts.path.strip("/"):
            db = parts.path.strip("/")
        return cls(
            host=None if scheme == "unix" else parts.hostname or "localhost",
            port=parts.port or 6379,
            path=unquote(parts.path) if scheme == "unix" else None,
            tls=_tls(query) if scheme == "rediss" else None,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else query.get("password"),
            db=int(db or 0),
        )

    def handshake(self) -> list[tuple[str, ...]]:
        """The commands a new connection sends first."""
        commands: list[tuple[str, ...]] = []
        if self.password is not None:
            user = (self.username,) if self.username else ()
            commands.append(("AUTH", *user, self.password))
        if self.db:
            commands.append(("SELECT", str(self.db)))
        return commands


def _tls(query: dict[str, str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=query.get("ssl_ca_certs"))
    if query.get("ssl_certfile"):
        context.load_cert_chain(query["ssl_certfile"], query.get("ssl_keyfile"))
    reqs = query.get("ssl_cert_reqs", "required").lower()
    check = query.get("ssl_check_hostname", "true" if reqs == "required" else "false")
    context.check_hostname = check.lower() in ("1", "true", "yes")
    context.verify_mode = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL}.get(
        reqs, ssl.CERT_REQUIRED
    )
    return context


def _pack(command: tuple[Any, ...]) -> bytes:
    """One command in RESP (arguments are text or numbers)."""
    parts = [arg if type(arg) is str else str(arg) for arg in command]
    text = "".join([f"${len(part)}\r\n{part}\r\n" for part in parts])
    if text.isascii():  # a length in characters is one in bytes
        return f"*{len(parts)}\r\n{text}".encode()
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _packer() -> Callable[[tuple[Any, ...]], bytes]:
    """hiredis's packer when installed (C: half the time of :func:`_pack` for a
    settlement's fifty arguments, and the same bytes), else :func:`_pack`."""
    try:
        from hiredis import pack_command
    except ImportError:  # no hiredis, or one older than 2.1
        return _pack

    def pack(command: tuple[Any, ...]) -> bytes:
        try:
            return pack_command(command)
        except TypeError:  # an argument it does not take (it takes str, int, float, bytes)
            return _pack(command)

    return pack


_PACK = _packer()

_Args = tuple[tuple[str, ...], tuple[Any, ...]]  # a script call's keys and args


class _ReplyError(str):
    """An error reply, told apart from a status or text reply."""


class _Parser:
    """RESP2 replies from a byte stream; the same interface as ``hiredis.Reader``
    (``feed``, ``gets`` returning False until a reply is whole), used without hiredis."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def gets(self) -> Any:
        parsed = self._parse(0)
        if parsed is None:
            return False
        reply, end = parsed
        del self._buf[:end]
        return reply

    def _parse(self, at: int) -> tuple[Any, int] | None:
        buf = self._buf
        eol = buf.find(b"\r\n", at)
        if eol < 0:
            return None
        kind, line = buf[at : at + 1], bytes(buf[at + 1 : eol])
        at = eol + 2
        if kind == b"+":
            return line, at
        if kind == b"-":
            return _ReplyError(line.decode(errors="replace")), at
        if kind == b":":
            return int(line), at
        if kind == b"$":
            size = int(line)
            if size < 0:
                return None, at
            if len(buf) < at + size + 2:
                return None
            return bytes(buf[at : at + size]), at + size + 2
        if kind == b"*":
            items = []
            for _ in range(max(int(line), 0)):
                parsed = self._parse(at)
                if parsed is None:
                    return None
                item, at = parsed
                items.append(item)
            return (None if int(line) < 0 else items), at
        raise ValueError(f"not a RESP reply: {bytes(kind)!r}")


def _reader() -> tuple[Any, type]:
    try:
        import hiredis
    except ImportError:
        return _Parser(), _ReplyError
    return hiredis.Reader(), hiredis.ReplyError


@dataclass(slots=True)
class _Call:
    script: Script | None  # None: a handshake command
    command: tuple[Any, ...]
    future: asyncio.Future[Any]
    deadline: float = 0.0
    build: Callable[[], _Args] | None = None  # the command's keys and args, made late
    awaited: bool = False  # a caller waits on its reply (a decision)

    def with_source(self) -> _Call:
        """The same call by ``EVAL`` (Redis forgot the script)."""
        assert self.script is not None
        _, _, *rest = self.command
        command = ("EVAL", self.script.source, *rest)
        return _Call(self.script, command, self.future, awaited=self.awaited)


def _unheeded() -> asyncio.Future[Any]:
    """A future for a reply nobody reads (a script's load: its call tells what failed)."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


class _Connection(asyncio.Protocol):
    """One connection: what it wrote, in order, and the replies that resolve it."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.transport: asyncio.Transport | None = None
        self.sent: collections.deque[_Call] = collections.deque()
        self.reader, self.error_type = _reader()
        self.lost = False
        self.loaded: set[str] = set()  # the scripts this connection has loaded
        self.awaited = 0  # calls sent whose callers wait on their replies

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def write(self, calls: list[_Call], deadline: float) -> None:
        out = []
        for call in calls:
            script = call.script
            if script is not None and script.sha not in self.loaded:
                # Loaded ahead of its first call here: sent again after a NOSCRIPT, the
                # call would run behind the calls written after it.
                self.loaded.add(script.sha)
                out.append(_Call(None, ("SCRIPT", "LOAD", script.source), _unheeded()))
            out.append(call)
        for call in out:
            call.deadline = deadline
        self.sent.extend(out)
        self.awaited += sum(call.awaited for call in calls)
        assert self.transport is not None
        self.transport.write(b"".join([_PACK(call.command) for call in out]))

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        wire = self.wire
        while self.sent and (reply := reader.gets()) is not False:
            call = self.sent.popleft()
            self.awaited -= call.awaited
            wire.health.answered()
            self._resolve(call, reply)
            if call is wire._later_behind:
                wire.answered()

    def _resolve(self, call: _Call, reply: Any) -> None:
        if isinstance(reply, self.error_type):
            if call.script is not None and str(reply).startswith("NOSCRIPT"):
                self.loaded.discard(call.script.sha)  # flushed: loaded again with its call
                self.wire.send([call.with_source()])
                return
            reply = ScriptError(str(reply))
        if call.future.done():
            return  # its caller was cancelled; the decision stands in Redis
        if isinstance(reply, ScriptError):
            call.future.set_exception(reply)
        else:
            call.future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.wire.lost(self, exc)

    def fail(self, error: BaseException) -> bool:
        """Fail what is on this connection; True when a call was waiting for it."""
        from .redis_link import StoreUnavailable

        waiting = False
        calls, self.sent = self.sent, collections.deque()
        self.awaited = 0
        for call in calls:
            if not call.future.done():
                waiting = True
                call.future.set_exception(StoreUnavailable.after(error))
        return waiting


class Wire:
    """The policy scripts' connection for one event loop: :meth:`submit` and forget."""

    def __init__(
        self,
        endpoint: Endpoint,
        health: _Health,
        *,
        connect_timeout: float,
        policy_timeout: float,
    ) -> None:
        self.endpoint = endpoint
        self.health = health
        self.connect_timeout = connect_timeout
        self.policy_timeout = policy_timeout
        self._conn: _Connection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._queued: list[_Call] = []
        self._flush_due = False
        # Calls no decision needs to see (a plain success's settlement): written when no
        # reply is awaited, so that Redis runs them while the caller makes its request,
        # at the latest with the first write after the last reply awaited when they were
        # due has come and its callers have written their requests (one round trip:
        # decisions made since do not hold them back).
        self._later: list[_Call] = []
        self._later_behind: _Call | None = None
        self._later_due = False
        self._later_hop = False  # due, but no sooner than a hop after the callers' step
        self._watchdog: asyncio.TimerHandle | None = None

    def submit(
        self,
        script: Script,
        keys: tuple[str, ...],
        args: tuple[Any, ...],
        *,
        at_once: bool = True,
    ) -> asyncio.Future[Any]:
        """Send one script call; the future gets its reply, :class:`ScriptError` or
        :class:`StoreUnavailable`. ``at_once=False`` never writes here but at the end of
        the tick (this may run in a finaliser, inside another write)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        self.send([_Call(script, command, future, awaited=at_once)], at_once=at_once)
        return future

    def submit_later(self, script: Script, build: Callable[[], _Args]) -> asyncio.Future[Any]:
        """Send one script call that no decision needs to see first, its ``(keys,
        args)`` built by ``build`` when it is written: once no reply is awaited (Redis runs
        it while the caller makes its request), at the latest once the replies awaited
        when it was made have come. Never writes here (this may run in a finaliser)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._later.append(_Call(script, (), future, build=build))
        self._flush_soon()
        return future

    def _take_later(self) -> list[_Call]:
        calls, self._later = self._later, []
        self._later_behind, self._later_due, self._later_hop = None, False, False
        ready = []
        for call in calls:
            assert call.script is not None and call.build is not None
            try:
                keys, args = call.build()
            except Exception as exc:  # a bug: its caller hears of it, the others go
                call.future.set_exception(exc)
                continue
            call.command = ("EVALSHA", call.script.sha, len(keys), *keys, *args)
            ready.append(call)
        return ready

    def _flush_soon(self) -> None:
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush)

    def send(self, calls: list[_Call], *, at_once: bool = True) -> None:
        conn = self._conn
        if at_once and conn is not None and not conn.awaited and not self._queued:
            # No decision awaited: at once. Otherwise at the end of the tick, in one write
            # with the decisions made in the same tick (settlements in flight do not count:
            # nobody waits on them).
            self._write(conn, calls)
            return
        self._queued.extend(calls)
        loop = asyncio.get_running_loop()
        if conn is None:
            if self._connecting is None:
                self._connecting = loop.create_task(self._connect())
        elif not self._flush_due:
            self._flush_due = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        conn = self._conn
        if conn is None:
            if self._later:  # a new connection takes them in order, with the rest
                self._queued.extend(self._take_later())
                if self._connecting is None:
                    self._connecting = asyncio.get_running_loop().create_task(self._connect())
            return
        calls, self._queued = self._queued, []
        if self._later:
            if self._later_hop and not calls:
                # Nothing else to write yet: the callers woken have made no decision,
                # and may be writing their requests in tasks of their own (aiohttp writes a
                # request's body a hop after its caller's step). Go after them.
                self._later_hop = False
                self._flush_soon()
            elif self._later_due or not (conn.sent or calls):
                calls += self._take_later()
            elif self._later_behind is None:
                self._later_behind = calls[-1] if calls else conn.sent[-1]
        self._write(conn, calls)

    def answered(self) -> None:
        """The reply the calls that can wait were waiting for has been read: they go with
        the decisions that the callers it woke make in their step, in one write; without
        such decisions, a hop later, once those callers have written their requests: a hop
        sooner, the settlement's build and send would go ahead of the request, on the
        call's own time."""
        self._later_behind = None
        if self._later:
            self._later_due = self._later_hop = True
            self._flush_soon()

    def _write(self, conn: _Connection, calls: list[_Call]) -> None:
        if not calls:
            return
        loop = asyncio.get_running_loop()
        conn.write(calls, loop.time() + self.policy_timeout)
        if self._watchdog is None:
            self._watchdog = loop.call_at(conn.sent[0].deadline, self._check)

    def _check(self) -> None:
        """One timer for the whole wire, at the oldest call's deadline (a timer per call
        would cost more than the round trip's own work)."""
        self._watchdog = None
        conn = self._conn
        if conn is None or not conn.sent:
            return
        loop = asyncio.get_running_loop()
        head = conn.sent[0].deadline
        if head > loop.time():
            self._watchdog = loop.call_at(head, self._check)
            return
        # Late, or only unread: a busy loop may not have read a reply that came in time.
        # Two hops on, every reply in the socket now has been read; the call is late only
        # if it is still there.
        loop.call_soon(loop.call_soon, self._late, conn, conn.sent[0])

    def _late(self, conn: _Connection, call: _Call) -> None:
        if conn.sent and conn.sent[0] is call:
            self._drop(conn, TimeoutError())
        elif self._watchdog is None:
            self._check()

    def _drop(self, conn: _Connection, error: BaseException) -> None:
        """Fail what is on ``conn`` and close it: its late replies are nobody's."""
        if self._conn is conn:
            self._conn = None
            self._later_behind = None
            if self._later:  # they waited for a reply that will not come: the next connection
                self._flush_soon()
        if conn.fail(error):
            self.health.failed()
        if conn.transport is not None:
            conn.transport.abort()

    def lost(self, conn: _Connection, exc: Exception | None) -> None:
        self._drop(conn, exc or ConnectionResetError())
        if self._queued and self._connecting is None:
            # Written to no connection yet: they go on the next one (or fail with it).
            self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        endpoint = self.endpoint
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                if endpoint.path is not None:
                    _, conn = await loop.create_unix_connection(
                        lambda: _Connection(self), endpoint.path, ssl=endpoint.tls
                    )
                else:
                    _, conn = await loop.create_connection(
                        lambda: _Connection(self), endpoint.host, endpoint.port, ssl=endpoint.tls
                    )
                handshake = [
                    _Call(None, command, loop.create_future()) for command in endpoint.handshake()
                ]
                if handshake:
                    conn.write(handshake, loop.time() + self.connect_timeout)
                    for call in handshake:
                        await call.future  # an error reply (a wrong password) fails it all
        except BaseException as exc:
            self._connecting = None
            if conn is not None and conn.transport is not None:
                conn.transport.abort()
            calls, self._queued = self._queued, []
            if calls:
                self.health.failed()
            from .redis_link import StoreUnavailable

            error = StoreUnavailable.after(exc)
            for call in calls:
                if not call.future.done():
                    if isinstance(exc, asyncio.CancelledError):
                        call.future.cancel()
                    else:
                        call.future.set_exception(error)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        self._connecting = None
        if conn.lost:
            return  # lost already: its loss has dealt with what was queued
        self._conn = conn
        self._flush()

    async def aclose(self) -> None:
        """Wait for what is on the wire (at most its timeouts), then close."""
        if self._connecting is not None:
            await asyncio.gather(self._connecting, return_exceptions=True)
        self._queued.extend(self._take_later())
        self._flush()
        conn = self._conn
        if conn is not None:
            await asyncio.gather(*(call.future for call in conn.sent), return_exceptions=True)
            self._conn = None
            if conn.transport is not None:
                conn.transport.close()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
