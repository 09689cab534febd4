"""Stream layout: deltas in order, chunk sizes, usage chunks, choice interleaving and quirks."""

import contextlib
import threading
import time

import httpx
from emulator_helpers import API_KEY, BOTH, MODEL, TOOLS, auth, chat, error_of, stream, user
from waiting import eventually

from holysheep_core.emulator import TOKENS_PER_CHUNK, Emulator, count_tokens


def deltas(chunks: list[dict], index: int = 0) -> list[dict]:
    return [
        c["choices"][0]["delta"]
        for c in chunks
        if c["choices"] and c["choices"][0]["index"] == index
    ]


def test_text_stream_layout(client: httpx.Client) -> None:
    messages = [user("Stream me a fairly long sentence about the Rhine river, please.")]
    expected = chat(client, messages=messages)["choices"][0]["message"]["content"]
    chunks = stream(client, messages=messages)
    assert all("usage" not in chunk for chunk in chunks)
    parts = deltas(chunks)
    assert parts[0] == {"role": "assistant", "content": ""}
    assert parts[-1] == {}
    pieces = [d["content"] for d in parts[1:-1]]
    assert "".join(pieces) == expected
    assert all(count_tokens(p) == TOKENS_PER_CHUNK for p in pieces[:-1])
    assert 1 <= count_tokens(pieces[-1]) <= TOKENS_PER_CHUNK
    finishes = [c["choices"][0]["finish_reason"] for c in chunks]
    assert finishes == [None] * (len(chunks) - 1) + ["stop"]


def test_include_usage_adds_a_final_usage_chunk(client: httpx.Client) -> None:
    expected = chat(client, max_tokens=3)["usage"]
    chunks = stream(client, max_tokens=3, stream_options={"include_usage": True})
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == expected
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"


def test_reasoning_deltas_come_before_content(client: httpx.Client) -> None:
    kinds = [next(iter(d)) for d in deltas(stream(client, thinking={"type": "enabled"}))[1:-1]]
    assert kinds == sorted(kinds, key=["reasoning_content", "content"].index)
    assert set(kinds) == {"reasoning_content", "content"}


def test_choices_interleave_and_each_reassembles(client: httpx.Client) -> None:
    expected = [c["message"]["content"] for c in chat(client, n=2)["choices"]]
    chunks = stream(client, n=2)
    assert [c["choices"][0]["index"] for c in chunks[:4]] == [0, 1, 0, 1]
    for index in (0, 1):
        assert "".join(d.get("content", "") for d in deltas(chunks, index)) == expected[index]


def test_no_tool_index_quirk_drops_tool_call_indexes(client: httpx.Client) -> None:
    chunks = stream(
        client, messages=[user(BOTH)], tools=TOOLS, headers={"x-emulator-quirks": "no-tool-index"}
    )
    tool_deltas = [t for d in deltas(chunks) for t in d.get("tool_calls", ())]
    assert len([t for t in tool_deltas if "id" in t]) == 2
    assert all("index" not in t for t in tool_deltas)


def test_usage_every_chunk_quirk_sends_running_totals(client: httpx.Client) -> None:
    body = {"thinking": {"type": "enabled"}, "headers": {"x-emulator-quirks": "usage-every-chunk"}}
    expected = chat(client, thinking={"type": "enabled"})["usage"]
    chunks = stream(client, **body)
    completion = [chunk["usage"]["completion_tokens"] for chunk in chunks]
    assert completion == sorted(completion)
    assert chunks[-1]["usage"] == expected
    assert {chunk["usage"]["prompt_tokens"] for chunk in chunks} == {expected["prompt_tokens"]}


def test_quirks_can_be_set_for_the_whole_server() -> None:
    with (
        Emulator(quirks=["usage-every-chunk"]) as url,
        httpx.Client(base_url=url, headers=auth()) as http,
    ):
        chunks = stream(http)
    assert all(chunk["usage"] for chunk in chunks)


def test_unknown_quirks_are_refused(client: httpx.Client) -> None:
    response = client.post(
        "/chat/completions",
        json={"model": MODEL, "messages": [user("hi")], "stream": True},
        headers={"x-emulator-quirks": "no-tool-index,sideways"},
    )
    assert error_of(response, 400)["param"] == "x-emulator-quirks"


def test_chunk_delay_paces_the_stream() -> None:
    with (
        Emulator(chunk_delay=0.02, api_key=API_KEY) as url,
        httpx.Client(base_url=url, headers=auth()) as http,
    ):
        started = time.perf_counter()
        chunks = stream(http)
        elapsed = time.perf_counter() - started
    assert elapsed >= 0.02 * len(chunks)


def test_latency_delays_api_responses() -> None:
    with Emulator(latency=0.15) as url, httpx.Client(headers=auth()) as http:
        started = time.perf_counter()
        assert http.get(f"{url}/models").status_code == 200
        assert time.perf_counter() - started >= 0.15  # a true lower bound, whatever the load


def test_latency_does_not_delay_health() -> None:
    # Order, not speed: health answers while an API request still waits out its 30 s.
    emulator = Emulator(latency=30)
    url = emulator.start()

    def wait_out_the_latency() -> None:
        with contextlib.suppress(httpx.HTTPError):  # ended by stop()
            httpx.get(f"{url}/models", headers=auth(), timeout=60)

    waiting = threading.Thread(target=wait_out_the_latency)
    try:
        waiting.start()
        assert eventually(lambda: emulator.active_requests == 1)
        assert httpx.get(url.removesuffix("/v1") + "/health", timeout=20).status_code == 200
        assert emulator.active_requests == 1  # the API request is still waiting
    finally:
        emulator.stop()  # ends the waiting request
        waiting.join(10)
