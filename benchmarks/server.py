"""A loopback server that answers every chat call with the same bytes, fast enough that the
clients, not the server, set the pace.

nginx (Debian's ``nginx-light``) serves the fixed completion under ``/json/`` and the fixed
SSE stream under ``/stream/``, with keep-alive and one worker, so on a two-core machine the
server has a core and the client under test has the other. Without nginx a minimal asyncio
server stands in (slower; the report says which one ran). Its CPU time is read from /proc
around each measurement, so the report can show how busy the server was.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .payloads import CHAT_JSON, CHAT_SSE

__all__ = ["FixedServer", "process_cpu_seconds", "start_server"]

NGINX_CONF = """\
worker_processes {workers};
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 8192; multi_accept on; }}
http {{
    access_log off;
    server_tokens off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        add_header x-request-id req_bench_0001 always;
        location /json/ {{
            default_type application/json;
            return 200 '{json}';
        }}
        location /stream/ {{
            default_type text/event-stream;
            add_header cache-control no-cache always;
            return 200 '{sse}';
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _quote_safe(text: str) -> str:
    # nginx reads `$` as a variable and `\` / `'` as quoting inside a single-quoted string.
    if any(c in text for c in "$\\'"):
        raise ValueError("a fixed body must not contain $, \\ or ' (nginx quoting)")
    return text


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the server did not listen on port {port} within {timeout}s")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _own_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 of /proc/PID/stat (1-based), here 11 and 12.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds used by a process and its direct children (nginx's master and workers)."""
    return sum(_own_cpu_seconds(p) for p in (pid, *_children(pid)))


class FixedServer:
    """A started server: ``json_url`` / ``stream_url`` are base URLs ending in ``/v1``."""

    def __init__(self, kind: str, proc: subprocess.Popen[bytes], port: int, tmp: str) -> None:
        self.kind = kind
        self.port = port
        self._proc = proc
        self._tmp = tmp
        self.pid = proc.pid
        root = f"http://127.0.0.1:{port}"
        self.json_url = f"{root}/json/v1"
        self.stream_url = f"{root}/stream/v1"

    def url(self, mode: str) -> str:
        return self.json_url if mode == "json" else self.stream_url

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server's processes (master and workers)."""
        return process_cpu_seconds(self._proc.pid)

    def stop(self) -> None:
        if self._proc.poll() is None:
            # nginx: SIGQUIT is a graceful stop; the fallback treats it like SIGTERM.
            self._proc.send_signal(signal.SIGQUIT if self.kind == "nginx" else signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> FixedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _start_nginx(nginx: str, workers: int) -> FixedServer:
    tmp = tempfile.mkdtemp(prefix="holysheep-bench-")
    port = free_port()
    conf = Path(tmp) / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            workers=workers,
            tmp=tmp,
            port=port,
            json=_quote_safe(CHAT_JSON),
            sse=_quote_safe(CHAT_SSE),
        )
    )
    proc = subprocess.Popen(
        [nginx, "-p", tmp, "-c", str(conf), "-e", f"{tmp}/error.log"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_listening(port, proc)
    except RuntimeError as exc:
        err = proc.stderr.read().decode() if proc.stderr and proc.poll() is not None else ""
        shutil.rmtree(tmp, ignore_errors=True)
        if proc.poll() is None:
            proc.kill()
        raise RuntimeError(f"nginx did not start: {exc} {err}") from None
    return FixedServer("nginx", proc, port, tmp)


def _start_fallback() -> FixedServer:
    tmp = tempfile.mkdtemp(prefix="holysheep-bench-")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.server", str(port)],
        cwd=Path(__file__).resolve().parent.parent,
    )
    _wait_listening(port, proc)
    return FixedServer("asyncio fallback", proc, port, tmp)


def start_server(*, workers: int = 1, prefer_nginx: bool = True) -> FixedServer:
    """nginx when it is installed, else the minimal asyncio server."""
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if prefer_nginx and nginx:
        return _start_nginx(nginx, workers)
    return _start_fallback()


# --- the fallback: just enough HTTP/1.1 for keep-alive POSTs with a Content-Length --------


def _response(body: str, content_type: str) -> bytes:
    data = body.encode()
    head = (
        "HTTP/1.1 200 OK\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(data)}\r\n"
        "x-request-id: req_bench_0001\r\n"
        "Connection: keep-alive\r\n\r\n"
    )
    return head.encode() + data


_ANSWERS = {
    b"/json/": _response(CHAT_JSON, "application/json"),
    b"/stream/": _response(CHAT_SSE, "text/event-stream"),
}
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


class _Fixed(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._t = transport
        self._buf = b""

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data
        out = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(buf) < end + 4 + length:
                break
            path = head.split(b" ", 2)[1]
            answer = next((a for p, a in _ANSWERS.items() if path.startswith(p)), _NOT_FOUND)
            out.append(answer)
            buf = buf[end + 4 + length :]
        self._buf = buf
        if out:
            self._t.write(b"".join(out))  # type: ignore[attr-defined]


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Fixed, "127.0.0.1", port, backlog=4096)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1])))
