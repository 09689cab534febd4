"""A chat-completions server in its own process that bills like a real provider and keeps
the books the tests compare ours with.

Run by :class:`BillingServer` as ``python billing_server.py ARGS`` (stdlib only, so it
starts fast). Each request is answered at once and noted with its arrival time
(``time.monotonic()``, shared by every process on Linux) and the tokens it billed:

* prompt: per message 4 + 2 per non-ASCII character (a pessimistic tokenizer for CJK, still
  within the 3 UTF-8 bytes a character takes) + one per ASCII word or punctuation mark +
  ``IMAGE_TOKENS`` per non-text content part (a tiled high-detail image);
* completion: ``max_tokens`` when set, capped by ``--cap-set``; ``--unset`` tokens when not.

``GET /ledger`` returns the notes as JSON.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

IMAGE_TOKENS = 1445
_ASCII_TOKEN = re.compile(r"[A-Za-z0-9_]+|[^\sA-Za-z0-9_]")


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    total = 0
    for message in messages:
        total += 4
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
        for part in parts:
            if part.get("type") != "text":
                total += IMAGE_TOKENS
                continue
            text = part.get("text") or ""
            wide = sum(1 for ch in text if ord(ch) > 127)
            ascii_text = "".join(ch for ch in text if ord(ch) <= 127)
            total += 2 * wide + len(_ASCII_TOKEN.findall(ascii_text))
    return total


def serve(cap_set: int | None, unset: int) -> None:
    ledger: list[dict[str, Any]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            with lock:
                self._reply(list(ledger))

        def do_POST(self) -> None:
            arrived = time.monotonic()
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            prompt = prompt_tokens(request["messages"])
            asked = request.get("max_tokens") or request.get("max_completion_tokens")
            completion = unset if asked is None else min(asked, cap_set or asked)
            with lock:
                ledger.append(
                    {
                        "t": arrived,
                        "model": request["model"],
                        "prompt": prompt,
                        "completion": completion,
                    }
                )
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
            self._reply(
                {
                    "id": "chatcmpl-billing",
                    "object": "chat.completion",
                    "created": 0,
                    "model": request["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "ok"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


class BillingServer:
    """Starts the server in another process: ``url``, ``ledger()``, ``stop()``."""

    def __init__(self, *, cap_set: int | None = None, unset: int = 4000) -> None:
        args = [sys.executable, __file__, str(cap_set or 0), str(unset)]
        self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        port = int(self._proc.stdout.readline())
        self.url = f"http://127.0.0.1:{port}/v1"

    def ledger(self) -> list[dict[str, Any]]:
        import urllib.request

        with urllib.request.urlopen(self.url.removesuffix("/v1") + "/ledger", timeout=10) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> BillingServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    serve(int(sys.argv[1]) or None, int(sys.argv[2]))
