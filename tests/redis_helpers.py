"""A real ``redis-server`` for the tests: started on a free loopback port, stopped after.

No mock stands in for Redis: policy stores and caches are tested against the server our
users run. Fault tests use :meth:`RedisServer.kill`, :meth:`RedisServer.restart` and
:meth:`RedisServer.slow` (``DEBUG SLEEP``) and ``SCRIPT FLUSH`` through a client.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["RedisServer", "redis_server_binary"]


def redis_server_binary() -> str | None:
    """The ``redis-server`` to run: on PATH, or where Debian puts it."""
    found = shutil.which("redis-server")
    if found:
        return found
    return "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, no persistence, its own data directory."""

    def __init__(self, binary: str | None = None, *, extra: tuple[str, ...] = ()) -> None:
        binary = binary or redis_server_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        self.binary = binary
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="holysheep-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra = extra  # more redis-server options: ("--requirepass", "secret"), ...

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--enable-debug-command", "local",
            "--loglevel", "warning",
            *self.extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"redis-server exited at start: {err.strip()}")
            if self.ping():
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port} in {timeout}s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))  # up (perhaps locked)
        except OSError:
            return False

    def kill(self) -> None:
        """Stop it at once (SIGKILL): clients see their connections drop."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> None:
        """Start it again on the same port (empty: no persistence)."""
        self.kill()
        self.start()

    def slow(self, seconds: float) -> None:
        """Block the server for ``seconds`` (``DEBUG SLEEP``), without waiting for it."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        s.sendall(f"DEBUG SLEEP {seconds}\r\n".encode())
        # Left to the OS to close: the reply comes after the sleep.
        self._sleepers = [*getattr(self, "_sleepers", []), s]

    def command(self, *args: str) -> bytes:
        """Send one command (inline form) and return the raw first reply line."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall((" ".join(args) + "\r\n").encode())
            return s.recv(65536)

    def stop(self) -> None:
        self.kill()
        for s in getattr(self, "_sleepers", []):
            s.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
