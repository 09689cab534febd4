"""Fault injection, observed at the HTTP level: header grammar, schedule, and every mode."""

import json
import threading
import time
from email.utils import parsedate_to_datetime

import httpx
import pytest
from emulator_helpers import MODEL, auth, error_of, sse_data, stream, user
from hypothesis import given
from hypothesis import strategies as st

from holysheep_core.emulator import FAULT_HEADER, Emulator, Fault

STREAM_BODY = {
    "model": MODEL,
    "messages": [user("Tell me a long story about a lighthouse keeper and the sea.")],
    "stream": True,
}
JSON_BODY = {key: value for key, value in STREAM_BODY.items() if key != "stream"}


def faulty(client: httpx.Client, fault: Fault | str, body: dict = STREAM_BODY) -> httpx.Response:
    header = fault if isinstance(fault, str) else fault.to_header()
    return client.post("/chat/completions", json=body, headers={FAULT_HEADER: header})


def normal_events(client: httpx.Client) -> list[str]:
    return sse_data(client.post("/chat/completions", json=STREAM_BODY).text)


FAULTS = st.one_of(
    st.builds(
        Fault.status,
        st.integers(400, 599),
        body=st.sampled_from(["json", "html"]),
        retry_after=st.none() | st.integers(0, 100) | st.floats(0, 100, allow_nan=False),
        retry_after_date=st.booleans(),
        retry_after_ms=st.none() | st.integers(0, 10**6),
        should_retry=st.none() | st.booleans(),
    ),
    st.builds(Fault.slow_first_byte, st.floats(0, 10)),
    st.builds(Fault.stall_mid_stream, after=st.integers(0, 50), seconds=st.floats(0, 10)),
    st.builds(Fault.drop_mid_stream, after=st.integers(0, 50)),
    st.builds(Fault.malformed_sse, after=st.integers(0, 50)),
    st.builds(Fault.oversized_line, after=st.integers(0, 50), size=st.integers(1, 10**8)),
    st.builds(Fault.error_event, after=st.integers(0, 50)),
    st.builds(Fault.error_data, after=st.integers(0, 50)),
    st.just(Fault.wrong_content_type()),
    st.just(Fault.no_final_newline()),
)


@given(FAULTS)
def test_every_fault_round_trips_through_its_header(fault: Fault) -> None:
    assert Fault.from_header(fault.to_header()) == fault


@pytest.mark.parametrize(
    "header",
    [
        "teleport",
        "status",
        "status=abc",
        "status=200",
        "drop=3",
        "drop;seconds=1",
        "stall=-1",
        "status=503;body=xml",
    ],
)
def test_bad_fault_headers_are_refused(client: httpx.Client, header: str) -> None:
    response = faulty(client, header)
    assert error_of(response, 400)["param"] == FAULT_HEADER
    assert response.json()["error"]["message"].startswith(f"Invalid {FAULT_HEADER} header: ")


def test_stream_faults_need_a_streaming_request(client: httpx.Client) -> None:
    assert error_of(faulty(client, "drop;after=1", JSON_BODY), 400)["param"] == FAULT_HEADER


def test_429_with_retry_after_seconds_and_ms(client: httpx.Client) -> None:
    response = faulty(
        client, "status=429;retry-after=2;retry-after-ms=1500;should-retry=true", JSON_BODY
    )
    error = error_of(response, 429)
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert response.headers["retry-after"] == "2"
    assert response.headers["retry-after-ms"] == "1500"
    assert response.headers["x-should-retry"] == "true"


def test_429_with_retry_after_as_an_http_date(client: httpx.Client) -> None:
    response = faulty(client, Fault.status(429, retry_after=30, retry_after_date=True))
    wait = parsedate_to_datetime(response.headers["retry-after"]).timestamp() - time.time()
    assert 28 <= wait <= 31
    assert "retry-after-ms" not in response.headers
    assert "x-should-retry" not in response.headers


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_with_json_bodies(client: httpx.Client, status: int) -> None:
    response = faulty(client, Fault.status(status, should_retry=False))
    assert error_of(response, status)["type"] == "server_error"
    assert response.headers["x-should-retry"] == "false"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_with_html_bodies(client: httpx.Client, status: int) -> None:
    response = faulty(client, Fault.status(status, body="html"))
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert f"<title>{status} " in response.text
    assert response.headers["x-request-id"].startswith("req_")


def test_slow_first_byte_delays_the_headers(client: httpx.Client) -> None:
    started = time.perf_counter()
    with client.stream(
        "POST", "/chat/completions", json=STREAM_BODY, headers={FAULT_HEADER: "slow-first-byte=0.2"}
    ) as response:
        waited = time.perf_counter() - started
        body = response.read().decode()
    assert waited >= 0.2
    assert sse_data(body)[-1] == "[DONE]"


def test_stall_pauses_mid_stream_then_finishes(client: httpx.Client) -> None:
    arrivals = []
    sent = time.perf_counter()
    with client.stream(
        "POST", "/chat/completions", json=STREAM_BODY, headers={FAULT_HEADER: "stall=0.2;after=2"}
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append((time.perf_counter(), line))
    plain = client.post("/chat/completions", json=STREAM_BODY).text
    # A true bound whatever the load: the third chunk cannot leave before the stall ends.
    assert arrivals[2][0] - sent >= 0.2
    # Then the whole stream, as without the fault, and its end.
    assert len(arrivals) == sum(line.startswith("data: ") for line in plain.splitlines())
    assert arrivals[-1][1] == "data: [DONE]"


def test_drop_aborts_after_k_chunks(client: httpx.Client) -> None:
    lines = []
    headers = {FAULT_HEADER: "drop;after=3"}
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", "/chat/completions", json=STREAM_BODY, headers=headers) as response,
    ):
        lines.extend(line for line in response.iter_lines() if line.startswith("data: "))
    assert len(lines) == 3
    assert all(json.loads(line[6:])["object"] == "chat.completion.chunk" for line in lines)


def test_malformed_sse_sends_a_non_json_data_line(client: httpx.Client) -> None:
    events = sse_data(faulty(client, Fault.malformed_sse(after=2)).text)
    assert events[2] == "{malformed"
    with pytest.raises(ValueError):
        json.loads(events[2])
    assert events[:2] + events[3:] != []
    assert events[-1] == "[DONE]"
    assert len(events) == len(normal_events(client)) + 1


@pytest.mark.parametrize("body", [JSON_BODY, STREAM_BODY], ids=["json", "stream"])
def test_wrong_content_type_answers_200_html(client: httpx.Client, body: dict) -> None:
    response = faulty(client, Fault.wrong_content_type(), body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<html>")


@pytest.mark.parametrize("size", [100_000, 2 * 1024 * 1024])
def test_oversized_line_is_one_long_line_of_the_same_chunk(client: httpx.Client, size: int) -> None:
    response = faulty(client, Fault.oversized_line(after=1, size=size))
    lines = response.text.split("\n")
    long_lines = [line for line in lines if len(line) > 10_000]
    assert [len(line) for line in long_lines] == [size]
    chunk = json.loads(long_lines[0].removeprefix("data: "))
    assert chunk["choices"][0]["delta"] == {"content": 'Noted: "'}
    assert sse_data(response.text)[-1] == "[DONE]"


@pytest.mark.parametrize("after", [0, 2])
def test_error_event_ends_the_stream(client: httpx.Client, after: int) -> None:
    text = faulty(client, Fault.error_event(after=after)).text
    blocks = [block for block in text.split("\n\n") if block]
    assert len(blocks) == after + 1
    event, data = blocks[-1].split("\n")
    assert event == "event: error"
    error = json.loads(data.removeprefix("data: "))["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert "[DONE]" not in text


def test_error_data_is_a_plain_data_event(client: httpx.Client) -> None:
    events = sse_data(faulty(client, Fault.error_data(after=1)).text)
    assert len(events) == 2
    assert json.loads(events[1])["error"]["type"] == "server_error"


def test_no_final_newline_leaves_the_last_event_unterminated(client: httpx.Client) -> None:
    body = {**STREAM_BODY, "stream_options": {"include_usage": True}}
    text = faulty(client, Fault.no_final_newline(), body).text
    assert not text.endswith("\n")
    last = json.loads(text.rsplit("\n\n", 1)[1].removeprefix("data: "))
    assert last["choices"] == [] and last["usage"]["total_tokens"] > 0
    assert "[DONE]" not in text


def test_a_scheduled_fault_list_is_taken_in_order(emu: Emulator, client: httpx.Client) -> None:
    emu.inject(Fault.status(503))
    emu.inject(Fault.status(429, retry_after=1), times=2)
    statuses = [client.post("/chat/completions", json=JSON_BODY).status_code for _ in range(4)]
    assert statuses == [503, 429, 429, 200]


def test_faults_given_to_the_constructor_are_scheduled() -> None:
    with (
        Emulator(faults=[Fault.status(502, body="html")]) as url,
        httpx.Client(base_url=url, headers=auth()) as http,
    ):
        assert [http.get("/models").status_code for _ in range(2)] == [502, 200]


def test_stream_faults_wait_for_a_streaming_request(emu: Emulator, client: httpx.Client) -> None:
    emu.inject(Fault.error_data(after=0))
    assert client.post("/chat/completions", json=JSON_BODY).status_code == 200
    assert client.get("/models").status_code == 200
    events = sse_data(client.post("/chat/completions", json=STREAM_BODY).text)
    assert "error" in json.loads(events[0])
    assert len(stream(client)) > 0


def test_a_fault_for_one_path_waits_for_that_path(emu: Emulator, client: httpx.Client) -> None:
    emu.inject(Fault.status(500).at("/v1/embeddings"))
    assert client.get("/models").status_code == 200
    assert client.post("/embeddings", json={"model": "e", "input": "x"}).status_code == 500


def test_scheduled_faults_skip_health_and_header_faults_skip_the_schedule(
    emu: Emulator, client: httpx.Client
) -> None:
    emu.inject(Fault.status(503))
    assert httpx.get(emu.url.removesuffix("/v1") + "/health").status_code == 200
    assert faulty(client, "status=500", JSON_BODY).status_code == 500
    assert client.get("/models").status_code == 503


def test_reset_drops_pending_faults(emu: Emulator, client: httpx.Client) -> None:
    emu.inject(Fault.status(503), times=3)
    emu.reset()
    assert client.get("/models").status_code == 200


def test_injecting_from_many_threads_schedules_every_fault(
    emu: Emulator, client: httpx.Client
) -> None:
    threads = [threading.Thread(target=emu.inject, args=(Fault.status(503), 5)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = [client.get("/models").status_code for _ in range(41)]
    assert statuses == [503] * 40 + [200]


@pytest.mark.parametrize(
    "make",
    [
        lambda: Fault.status(200),
        lambda: Fault.status(503, body="xml"),
        lambda: Fault.drop_mid_stream(after=-1),
        lambda: Fault.oversized_line(size=0),
    ],
)
def test_invalid_faults_are_refused_when_built(make: object) -> None:
    with pytest.raises(ValueError):
        make()


def test_retry_headers_write_whole_seconds_plainly() -> None:
    headers = Fault.status(429, retry_after=1_000_000, should_retry=True).retry_headers(0)
    assert headers == {"Retry-After": "1000000", "x-should-retry": "true"}
    assert Fault.status(429, retry_after=0.25).retry_headers(0) == {"Retry-After": "0.25"}
