"""A loopback HTTP server that misbehaves byte by byte, in a process of its own.

Timing tests need a server whose pace does not depend on the process under test: this one
runs as a subprocess (``python raw_server.py`` prints its port, then serves until killed),
one thread per connection, writing raw bytes. The first path segment picks the fault, so one
server covers them all: ``http://127.0.0.1:PORT/<fault>/v1/...``.

Faults:

``trickle-headers``   a status line, then one header byte every 0.5 s, forever
``trickle-body``      a JSON answer's headers (Content-Length 100000), then one byte / 0.5 s
``keepalive-sse``     a stream's first chunk, then ``: keep-alive`` comments every 0.5 s
``done-then-hold``    a whole stream up to ``data: [DONE]``, then the connection held open
``redirect-loop``     ``307`` to the same URL, every time
``litellm-context``   ``400`` worded as LiteLLM's proxy words a context-window overflow
``short-embeddings``  an embeddings answer with one vector fewer than the inputs
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

TICK = 0.5
USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def _chunk(delta: dict | None, finish: str | None = None, **extra: object) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    body = {
        "id": "chatcmpl-raw",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "deepseek-v3.2",
        "choices": choices,
        **extra,
    }
    return f"data: {json.dumps(body)}\n\n".encode()


def _framed(data: bytes) -> bytes:
    """One HTTP/1.1 chunk of a chunked body."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _read_request(conn: socket.socket) -> tuple[str, bytes] | None:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    target = lines[0].split(" ", 2)[1]
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            return None
        rest += data
    return target, rest[:length]


class _Handler:
    def serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                while True:
                    request = _read_request(conn)
                    if request is None:
                        return
                    if not self.answer(conn, *request):
                        return
            except OSError:
                return  # the client gave up: that is the point of most faults

    def answer(self, conn: socket.socket, target: str, body: bytes) -> bool:
        """Write one answer; False when the connection is done with."""
        fault = target.strip("/").split("/", 1)[0]
        sse_head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        if fault == "trickle-headers":
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while True:
                time.sleep(TICK)
                conn.sendall(b"a")
        if fault == "trickle-body":
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n{"
            )
            while True:
                time.sleep(TICK)
                conn.sendall(b" ")
        if fault == "keepalive-sse":
            conn.sendall(sse_head + _framed(_chunk({"role": "assistant", "content": ""})))
            while True:
                time.sleep(TICK)
                conn.sendall(_framed(b": keep-alive\n\n"))
        if fault == "done-then-hold":
            events = [
                _chunk({"role": "assistant", "content": ""}),
                _chunk({"content": "ok"}),
                _chunk({}, "stop"),
                _chunk(None, usage=USAGE),
                b"data: [DONE]\n\n",
            ]
            conn.sendall(sse_head + b"".join(_framed(e) for e in events))
            time.sleep(120)
            return False
        if fault == "redirect-loop":
            conn.sendall(
                f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}\r\n"
                "Content-Length: 0\r\n\r\n".encode()
            )
            return True
        if fault == "litellm-context":
            error = {
                "message": "litellm.ContextWindowExceededError: litellm.BadRequestError: "
                "ContextWindowExceededError: OpenAIException - context window exceeded",
                "type": None,
                "param": None,
                "code": "400",
            }
            answer = json.dumps({"error": error}).encode()
            head = (
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(answer)}\r\n\r\n"
            )
            conn.sendall(head.encode() + answer)
            return True
        if fault == "short-embeddings":
            texts = json.loads(body)["input"]
            texts = [texts] if isinstance(texts, str) else texts
            data = [
                {"object": "embedding", "index": i, "embedding": [1.0, 0.0]}
                for i in range(len(texts) - 1)
            ]
            usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
            answer = json.dumps(
                {"object": "list", "data": data, "model": "m", "usage": usage}
            ).encode()
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(answer)}\r\n\r\n"
            )
            conn.sendall(head.encode() + answer)
            return True
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        return True


def main() -> None:
    handler = _Handler()
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handler.serve, args=(conn,), daemon=True).start()


class RawServer:
    """The server above in a subprocess; ``url(fault)`` is a base URL ending in ``/v1``."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        self.port = int(self._proc.stdout.readline())

    def url(self, fault: str) -> str:
        return f"http://127.0.0.1:{self.port}/{fault}/v1"

    def stop(self) -> None:
        self._proc.kill()
        self._proc.wait(10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


if __name__ == "__main__":
    main()
