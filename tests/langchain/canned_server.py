"""A loopback server with canned chat answers that carry ``logprobs`` (the emulator sends
none), recording each request's headers and JSON body."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LOGPROBS", "CannedServer"]

TOKENS = ("Hello", " there")
LOGPROBS = [
    {"token": t, "logprob": -0.5 * (i + 1), "bytes": list(t.encode()), "top_logprobs": []}
    for i, t in enumerate(TOKENS)
]
USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
HEAD = {"id": "chatcmpl-canned", "created": 1, "model": "deepseek-v3.2"}


def _completion() -> bytes:
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": "".join(TOKENS)},
        "logprobs": {"content": LOGPROBS},
        "finish_reason": "stop",
    }
    return json.dumps(
        {**HEAD, "object": "chat.completion", "choices": [choice], "usage": USAGE}
    ).encode()


def _stream() -> bytes:
    def chunk(choices: list[Any], **extra: Any) -> str:
        body = {**HEAD, "object": "chat.completion.chunk", "choices": choices, **extra}
        return f"data: {json.dumps(body)}\n\n"

    events = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
    for token, logprob in zip(TOKENS, LOGPROBS, strict=True):
        delta = {"index": 0, "delta": {"content": token}, "logprobs": {"content": [logprob]}}
        events.append(chunk([delta]))
    events.append(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    events.append(chunk([], usage=USAGE))
    events.append("data: [DONE]\n\n")
    return "".join(events).encode()


class CannedServer:
    """``with CannedServer() as server:`` serves ``server.url`` (ending in ``/v1``)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                owner.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                stream = bool(body.get("stream"))
                payload = _stream() if stream else _completion()
                self.send_response(200)
                kind = "text/event-stream" if stream else "application/json"
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> CannedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
