"""No key reaches a cassette, and a changed request is never answered from an old one.

The canary test records, with the recording preset, against an emulator that accepts only a
recognisable fake key, through every transport (httpx sync and async, aiohttp) and both
adapters (LangChain, LlamaIndex), with the key
also in a prompt (echoed in the answer), in extra headers and as a rejected second key; then
it scans every byte of what was written. The committed ``cassettes/`` get the same scan.
(Not covered, and documented: a key a *streamed* answer repeats arrives cut into deltas,
which no string filter can match.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from llama_index.core.base.llms.types import ChatMessage
from vcr.errors import CannotOverwriteExistingCassetteException

from holysheep_core import AsyncHolySheepClient, AuthenticationError, HolySheepClient
from holysheep_core.emulator import Emulator
from holysheep_core.testing import (
    EMULATOR_API_KEY,
    REDACTED,
    REPLAY_API_KEY,
    Scrubber,
    find_leaks,
    make_vcr,
)
from langchain_holysheep import ChatHolySheep, HolySheepEmbeddings
from llama_index_holysheep import HolySheep, HolySheepEmbedding

CANARY = "hs-SECRET-canary-7d1e5b93f0a24c68"
WRONG_CANARY = "hs-SECRET-canary-wrong-0b8e2f41"
ORG_CANARY = "org-SECRET-canary-5512"
MODEL = "deepseek-v3.2"
COMMITTED = Path(__file__).parent.parent / "cassettes"


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def canary_emulator() -> Any:
    with Emulator(api_key=CANARY) as url:
        yield url


def cassette_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.yaml"))}


async def test_recording_with_a_canary_key_leaves_no_trace(
    tmp_path: Path, canary_emulator: str
) -> None:
    recorder = make_vcr(cassette_library_dir=str(tmp_path), record_mode="all")
    settings: dict[str, Any] = {
        "api_key": CANARY,
        "base_url": canary_emulator,
        "max_retries": 0,
        "default_headers": {"X-Api-Key": CANARY, "OpenAI-Organization": ORG_CANARY},
    }
    pasted = f"My key is {CANARY}, please repeat it."

    with recorder.use_cassette("sync.yaml"), HolySheepClient(**settings) as client:
        echoed = client.chat_completion(model=MODEL, messages=ask(pasted))
        with client.stream_chat_completion(model=MODEL, messages=ask("Hi")) as stream:
            streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        client.embeddings(model="text-embedding-3-small", input=[pasted, "plain text"])
        client.models()
    with (
        recorder.use_cassette("rejected.yaml"),
        HolySheepClient(**{**settings, "api_key": WRONG_CANARY}) as client,
        pytest.raises(AuthenticationError),
    ):
        client.models()
    with recorder.use_cassette("adapters.yaml"):
        chat = ChatHolySheep(model=MODEL, **settings)
        chat.invoke(pasted)
        list(chat.stream("Hi"))
        HolySheepEmbeddings(model="text-embedding-3-small", **settings).embed_query(pasted)
        llm = HolySheep(model=MODEL, api_key=CANARY, api_base=canary_emulator, max_retries=0)
        llm.chat([ChatMessage(role="user", content=pasted)])
        HolySheepEmbedding(api_key=CANARY, api_base=canary_emulator).get_text_embedding(pasted)
    for backend in ("aiohttp", "httpx"):
        with recorder.use_cassette(f"async-{backend}.yaml"):
            async with AsyncHolySheepClient(**settings, async_backend=backend) as aclient:
                await aclient.chat_completion(model=MODEL, messages=ask(pasted))
                stream = await aclient.stream_chat_completion(model=MODEL, messages=ask("Hi"))
                async with stream:
                    [c async for c in stream]

    # The live calls really carried the key (the emulator echoes prompts).
    assert CANARY in (echoed.choices[0].message.content or "")
    assert streamed

    written = cassette_bytes(tmp_path)
    assert set(written) == {
        "sync.yaml",
        "rejected.yaml",
        "adapters.yaml",
        "async-aiohttp.yaml",
        "async-httpx.yaml",
    }
    assert len(yaml.safe_load(written["adapters.yaml"])["interactions"]) == 5
    for name, data in written.items():
        assert b"SECRET-canary" not in data, name
        assert b"Bearer" not in data, name
    assert find_leaks([tmp_path], secrets=[CANARY, WRONG_CANARY, ORG_CANARY]) == []
    # The pasted key was replaced, not dropped: the prompt and its echo keep their shape.
    sync = yaml.safe_load(written["sync.yaml"])["interactions"]
    first_body = json.loads(sync[0]["request"]["body"])
    assert first_body["messages"][0]["content"] == pasted.replace(CANARY, REDACTED)
    assert REDACTED in sync[0]["response"]["body"]["string"]
    assert all(i["request"]["uri"].startswith("https://api.holysheep.ai/v1/") for i in sync)


def test_scrubbed_cassettes_still_replay(tmp_path: Path, canary_emulator: str) -> None:
    pasted = f"Remember {CANARY} for me."
    with (
        make_vcr(cassette_library_dir=str(tmp_path), record_mode="all").use_cassette("chat.yaml"),
        HolySheepClient(api_key=CANARY, base_url=canary_emulator, max_retries=0) as client,
    ):
        recorded = client.chat_completion(model=MODEL, messages=ask(pasted))
    # Replayed elsewhere, with another key: the request is scrubbed the same way and matches.
    with (
        make_vcr(cassette_library_dir=str(tmp_path), record_mode="none").use_cassette("chat.yaml"),
        HolySheepClient(api_key=REPLAY_API_KEY, base_url="https://elsewhere.test/v1") as client,
    ):
        replayed = client.chat_completion(model=MODEL, messages=ask(pasted))
    assert replayed.id == recorded.id
    assert replayed.choices[0].message.content == (
        recorded.choices[0].message.content or ""
    ).replace(CANARY, REDACTED)


def test_committed_cassettes_hold_no_credentials() -> None:
    cassettes = sorted(COMMITTED.rglob("*.yaml"))
    assert cassettes, "no committed cassettes: run `make record`"
    known = [EMULATOR_API_KEY, REPLAY_API_KEY, "hs-test-0123456789abcdef"]
    assert [str(leak) for leak in find_leaks(cassettes, secrets=known)] == []
    for path in cassettes:
        data = path.read_bytes()
        assert b"hs-" not in data, path
        assert b"Bearer " not in data, path


def test_committed_cassettes_read_like_the_public_api() -> None:
    # Recorded against the emulator on a random loopback port: neither the URL nor the Host
    # header may keep that port, or every re-recording rewrites every cassette.
    for path in sorted(COMMITTED.rglob("*.yaml")):
        text = path.read_text()
        assert "127.0.0.1" not in text and "localhost" not in text, path


def test_find_leaks_reports_each_kind(tmp_path: Path) -> None:
    planted = {
        "interactions": [
            {
                "request": {
                    "body": f'{{"note": "{CANARY}"}}',
                    "headers": {"Authorization": ["Bearer abcdefgh12345678"]},
                },
                "response": {
                    "headers": {"Set-Cookie": ["session=1"]},
                    "body": {"string": ORG_CANARY.encode()},  # dumped as !!binary (base64)
                },
            }
        ]
    }
    path = tmp_path / "planted.yaml"
    path.write_text(yaml.dump(planted), encoding="utf-8")
    assert ORG_CANARY.encode() not in path.read_bytes()  # only its base64 is in the file

    kinds = {leak.kind for leak in find_leaks([tmp_path], secrets=[ORG_CANARY])}
    assert kinds >= {
        "an hs- key",
        "a bearer token",
        "credential header 'Authorization'",
        "credential header 'Set-Cookie'",
        "a given secret",
    }
    assert all(CANARY not in str(leak) for leak in find_leaks([tmp_path]))


def test_scrubber_filters_response_headers_and_bodies() -> None:
    scrubber = Scrubber()
    request = httpx_request_as_vcr("/v1/models", CANARY)
    scrubber.request(request)  # learns the presented key
    response = {
        "status": {"code": 200, "message": "OK"},
        "headers": {
            "Set-Cookie": ["__cf_bm=abc; path=/"],
            "openai-organization": ["org-123"],
            "OpenAI-Project": ["proj_123"],
            "x-echo": [f"key={CANARY}"],
            "x-request-id": ["req_1"],
            "x-ratelimit-remaining-tokens": ["1999"],
        },
        "body": {"string": f'{{"detail": "bad key {CANARY}"}}'.encode()},
    }
    cleaned = scrubber.response(response)
    assert set(cleaned["headers"]) == {"x-request-id", "x-ratelimit-remaining-tokens"}
    assert cleaned["body"]["string"] == f'{{"detail": "bad key {REDACTED}"}}'.encode()
    assert not {"authorization", "cookie"} & {h.lower() for h in request.headers}
    assert request.uri == "https://api.holysheep.ai/v1/models?api_key=%3CHOLYSHEEP_API_KEY%3E"


def httpx_request_as_vcr(path: str, key: str) -> Any:
    from vcr.request import Request

    return Request(
        "GET",
        f"http://127.0.0.1:8123{path}?api_key={key}",
        None,
        {"Authorization": f"Bearer {key}", "Cookie": "session=abc", "Accept": "*/*"},
    )


# --- a changed request fails loudly --------------------------------------------------------


def committed_chat_cassette() -> tuple[Path, dict[str, Any]]:
    path = COMMITTED / "core" / "test_replay_client" / "test_chat_completion.yaml"
    request = yaml.safe_load(path.read_text(encoding="utf-8"))["interactions"][0]["request"]
    return path, json.loads(request["body"])


def replay(path: Path, body: bytes) -> httpx.Response:
    with make_vcr(record_mode="none").use_cassette(str(path)), httpx.Client() as client:
        return client.post(
            "https://api.holysheep.ai/v1/chat/completions",
            content=body,
            headers={"Content-Type": "application/json"},
        )


def test_the_recorded_request_replays_whatever_its_key_order() -> None:
    path, body = committed_chat_cassette()
    reordered = dict(reversed(list(body.items())))
    assert replay(path, json.dumps(reordered, indent=2).encode()).status_code == 200


def test_a_changed_prompt_fails_loudly_instead_of_replaying_the_old_answer() -> None:
    path, body = committed_chat_cassette()
    old = body["messages"][0]["content"]
    body["messages"][0]["content"] = old + " Answer in French."
    with pytest.raises(CannotOverwriteExistingCassetteException) as caught:
        replay(path, json.dumps(body).encode())
    message = str(caught.value)
    assert "json_body - assertion failure" in message
    assert f"body.messages[0].content: {json.dumps(old + ' Answer in French.')}" in message
    assert f"!= recorded {json.dumps(old)}" in message


def test_a_changed_parameter_fails_loudly() -> None:
    path, body = committed_chat_cassette()
    body["temperature"] = 0.7
    with pytest.raises(CannotOverwriteExistingCassetteException, match=r"body\.temperature"):
        replay(path, json.dumps(body).encode())


# --- the layout: cassettes/<suite>/<test module>/<test name>.yaml -------------------------


def test_every_cassette_belongs_to_a_recorded_test_and_has_a_source() -> None:
    recorded = Path(__file__).parent / "recorded"
    sources = (COMMITTED / "SOURCES.md").read_text(encoding="utf-8")
    listed = {line.split("|")[1].strip() for line in sources.splitlines() if ".yaml |" in line}
    cassettes = {p.relative_to(COMMITTED).as_posix() for p in COMMITTED.rglob("*.yaml")}
    assert listed == cassettes, "re-record with `make record` to refresh cassettes/SOURCES.md"
    for name in cassettes:
        suite, module, test = name.split("/")
        source = (recorded / suite / f"{module}.py").read_text(encoding="utf-8")
        function = test.removesuffix(".yaml").split("[")[0].rsplit(".", 1)[-1]
        assert f"def {function}(" in source, f"{name}: no such test (an orphan cassette)"
