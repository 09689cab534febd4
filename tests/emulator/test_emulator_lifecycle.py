"""Starting and stopping: speed, threads, sockets, the request record, and serve()."""

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from emulator_helpers import API_KEY, MODEL, auth, cached_tokens, stream, user
from waiting import eventually

import holysheep_core
from holysheep_core.emulator import FAULT_HEADER, Emulator, state

FD_DIR = Path("/proc/self/fd")


def open_fds() -> int:
    return len(os.listdir(FD_DIR))


def test_start_returns_a_serving_loopback_url() -> None:
    # How fast it starts is a benchmark's business; here: it serves as soon as start returns.
    emulator = Emulator()
    url = emulator.start()
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", url)
        assert emulator.url == url
        assert httpx.get(url.removesuffix("/v1") + "/health").status_code == 200
    finally:
        emulator.stop()


def emulator_threads() -> int:
    return sum(t.name == "holysheep-emulator" for t in threading.enumerate())


def test_many_starts_and_stops_leave_no_thread_or_socket_behind() -> None:
    # Counted for the emulator's own threads, and as "no more descriptors than before": other
    # tests' pools may close sockets meanwhile, but 20 leaked servers would add dozens.
    threads, fds = emulator_threads(), open_fds()
    with httpx.Client(headers=auth()) as http:
        for _ in range(20):
            with Emulator() as url:
                assert http.get(f"{url}/models").status_code == 200
    assert emulator_threads() == threads
    assert open_fds() <= fds


def test_stop_closes_kept_alive_connections_and_the_listener() -> None:
    emulator = Emulator()
    url = emulator.start()
    with httpx.Client(headers=auth()) as http:
        assert http.get(f"{url}/models").status_code == 200
        emulator.stop()
        with pytest.raises(httpx.ConnectError):
            http.get(f"{url}/models")


def test_stop_during_a_stalled_stream_is_quick() -> None:
    threads = threading.active_count()
    emulator = Emulator()
    url = emulator.start()
    first_chunk, outcome = threading.Event(), []

    def read() -> None:
        headers = {**auth(), FAULT_HEADER: "stall=30;after=1"}
        body = {"model": MODEL, "messages": [user("hi")], "stream": True}
        try:
            with httpx.stream(
                "POST", f"{url}/chat/completions", json=body, headers=headers
            ) as response:
                for _ in response.iter_lines():
                    first_chunk.set()
        except httpx.HTTPError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    assert first_chunk.wait(5)
    started = time.perf_counter()
    emulator.stop()
    # A bound that tells "did not wait for the 30 s stall" even on a busy machine.
    assert time.perf_counter() - started < 10
    reader.join(5)
    assert isinstance(outcome[0], httpx.RemoteProtocolError)
    assert threading.active_count() == threads


def test_start_twice_is_refused_and_stop_is_idempotent() -> None:
    emulator = Emulator()
    with pytest.raises(RuntimeError):
        _ = emulator.url
    emulator.start()
    with pytest.raises(RuntimeError, match="already running"):
        emulator.start()
    emulator.stop()
    emulator.stop()
    with pytest.raises(RuntimeError):
        _ = emulator.url
    url = emulator.start()
    assert httpx.get(f"{url}/models", headers=auth()).status_code == 200
    emulator.stop()


def test_requests_are_recorded_without_the_authorization_header(
    emu: Emulator, client: httpx.Client
) -> None:
    body = {"model": MODEL, "messages": [user("hi")], "temperature": 0.5}
    client.post("/chat/completions", json=body, headers={"X-Trace": "abc"})
    client.get("/models")
    client.post("/embeddings", content=b"not json")
    first, second, third = emu.requests
    assert (first.method, first.path, first.body) == ("POST", "/v1/chat/completions", body)
    assert first.headers["x-trace"] == "abc"
    assert "authorization" not in first.headers
    assert API_KEY not in str(emu.requests)
    assert (second.method, second.path, second.body) == ("GET", "/v1/models", None)
    assert third.body is None
    emu.reset()
    assert emu.requests == []


def test_the_record_is_complete_under_concurrent_clients(emu: Emulator) -> None:
    def send(worker: int) -> None:
        with httpx.Client(base_url=emu.url, headers=auth()) as http:
            for i in range(10):
                http.post("/embeddings", json={"model": "e", "input": f"w{worker} r{i}"})

    workers = [threading.Thread(target=send, args=(n,)) for n in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    inputs = sorted(request.body["input"] for request in emu.requests)
    assert inputs == sorted(f"w{n} r{i}" for n in range(6) for i in range(10))


def test_reset_forgets_the_prompt_cache(emu: Emulator, client: httpx.Client) -> None:
    messages = [{"role": "system", "content": "Cache me."}, user("hi")]
    assert [cached_tokens(client, messages=messages) for _ in range(2)] == [0, 7]
    emu.reset()
    assert cached_tokens(client, messages=messages) == 0


async def test_concurrent_async_streams(emu: Emulator) -> None:
    async with httpx.AsyncClient(base_url=emu.url, headers=auth()) as http:

        async def one(i: int) -> str:
            body = {"model": MODEL, "messages": [user(f"number {i}")], "stream": True}
            response = await http.post("/chat/completions", json=body)
            return response.text

        bodies = await asyncio.gather(*(one(i) for i in range(30)))
    assert all(
        f"number {i}" in body and body.endswith("data: [DONE]\n\n") for i, body in enumerate(bodies)
    )


def test_an_emulator_runs_inside_a_running_event_loop() -> None:
    async def main() -> int:
        with Emulator() as url:
            async with httpx.AsyncClient(headers=auth()) as http:
                return (await http.get(f"{url}/models")).status_code

    assert asyncio.run(main()) == 200


def test_serve_runs_in_the_foreground_until_interrupted() -> None:
    root = str(Path(holysheep_core.__path__[0]).parent)
    code = "from holysheep_core.emulator import serve; serve(port=0, api_key='hs-cli')"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        line = process.stdout.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+/v1)", line).group(1)
        assert httpx.get(url.removesuffix("/v1") + "/health").status_code == 200
        assert httpx.get(f"{url}/models", headers=auth("hs-cli")).status_code == 200
        assert httpx.get(f"{url}/models", headers=auth("hs-other")).status_code == 401
        with httpx.Client(base_url=url, headers=auth("hs-cli")) as http:
            assert stream(http)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(5) == 0
        process.stdout.close()


def test_the_record_keeps_only_the_latest_requests() -> None:
    def send(emulator: Emulator, count: int) -> list[str]:
        with httpx.Client(base_url=emulator.url, headers=auth()) as http:
            for i in range(count):
                http.post("/embeddings", json={"model": "e", "input": f"r{i}"})
        return [request.body["input"] for request in emulator.requests]

    bounded, everything, nothing = (
        Emulator(keep_requests=3),
        Emulator(keep_requests=None),
        Emulator(keep_requests=0),
    )
    for emulator in (bounded, everything, nothing):
        emulator.start()
    try:
        assert send(bounded, 5) == ["r2", "r3", "r4"]
        assert send(everything, 5) == [f"r{i}" for i in range(5)]
        assert send(nothing, 5) == []
    finally:
        for emulator in (bounded, everything, nothing):
            emulator.stop()


@pytest.mark.parametrize("keep", [-1, 2.5, True, "10"])
def test_a_bad_record_size_is_refused(keep: object) -> None:
    with pytest.raises(ValueError, match="keep_requests"):
        Emulator(keep_requests=keep)  # type: ignore[arg-type]


def test_the_prompt_cache_is_bounded(
    emu: Emulator, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state, "PROMPT_CACHE_ENTRIES", 2)
    prompts = [[{"role": "system", "content": f"Prompt {i}."}, user("hi")] for i in range(3)]
    for messages in prompts:
        cached_tokens(client, messages=messages)
    # The oldest entry was dropped to make room; the latest two are still cached.
    assert cached_tokens(client, messages=prompts[0]) == 0
    assert cached_tokens(client, messages=prompts[2]) > 0


def test_active_requests_and_open_connections_are_counted() -> None:
    emu = Emulator()
    emu.start()
    try:
        check_counts(emu)
    finally:
        emu.stop()
    assert emu.open_connections == 0


def check_counts(emu: Emulator) -> None:
    assert (emu.active_requests, emu.open_connections) == (0, 0)
    headers = {**auth(), FAULT_HEADER: "stall=30;after=1"}
    body = {"model": MODEL, "messages": [user("hi")], "stream": True}
    with (
        httpx.Client(base_url=emu.url) as http,
        http.stream("POST", "/chat/completions", json=body, headers=headers) as response,
    ):
        lines = response.iter_lines()  # kept: a dropped iterator closes the connection
        next(lines)
        assert (emu.active_requests, emu.open_connections) == (1, 1)
    # The client left the stalled stream: the server stops answering and sees the socket close.
    assert eventually(lambda: (emu.active_requests, emu.open_connections) == (0, 0))
