"""A chat-completions server that counts what it is sent, run in its own process.

For the benchmarks: asyncio (aiohttp), so thousands of concurrent connections cost no
thread each (the tests' ``billing_server.py`` bills like a provider, one thread per
connection). ``python counting_server.py [--prompt N] [--completion N] [--latency S]``
prints its port, then answers every ``POST /v1/chat/completions`` with the same usage and
keeps the arrival time (its own monotonic clock) and tokens of each. ``GET /v1/counts``
returns them as JSON (``starts``, ``tokens``, ``models``). Timing measured here, in another
process than the clients, is what a rate limit promises: what the server saw.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = ["CountingServer", "max_in_window"]


class CountingServer:
    """Starts ``counting_server.py`` in a subprocess; ``url`` is its ``/v1`` base URL."""

    def __init__(self, *, prompt: int = 20, completion: int = 20, latency: float = 0.0) -> None:
        self.args = [
            "--prompt", str(prompt), "--completion", str(completion), "--latency", str(latency),
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> CountingServer:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *self.args],
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    def counts(self) -> dict[str, Any]:
        import httpx

        return httpx.get(self.url + "/counts", timeout=10).json()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


def _answer(model: str, prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-count",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--prompt", type=int, default=20)
    p.add_argument("--completion", type=int, default=20)
    p.add_argument("--latency", type=float, default=0.0)
    args = p.parse_args()
    starts: list[float] = []
    tokens: list[int] = []
    models: list[str] = []

    async def chat(request: web.Request) -> web.Response:
        starts.append(time.monotonic())
        body = await request.json()
        tokens.append(args.prompt + args.completion)
        models.append(body["model"])
        if args.latency:
            await asyncio.sleep(args.latency)
        answer = _answer(body["model"], args.prompt, args.completion)
        return web.json_response(answer)

    async def counts(request: web.Request) -> web.Response:
        return web.json_response({"starts": starts, "tokens": tokens, "models": models})

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_get("/v1/counts", counts)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(port, flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()


def max_in_window(times: list[float], window: float, weights: list[int] | None = None) -> float:
    """The most starts (or weights) in any ``window`` seconds."""
    pairs = sorted(zip(times, weights or [1] * len(times), strict=True))
    best = total = 0.0
    lo = 0
    for t, w in pairs:
        total += w
        while pairs[lo][0] <= t - window:
            total -= pairs[lo][1]
            lo += 1
        best = max(best, total)
    return best
