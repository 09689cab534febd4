"""Authentication, request validation, context limits, unknown routes and the common headers."""

import httpx
import pytest
from emulator_helpers import API_KEY, MODEL, auth, chat, error_of, user

from holysheep_core.emulator import MESSAGE_OVERHEAD_TOKENS, Emulator


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, None),
        ({"Authorization": "Bearer"}, None),
        ({"Authorization": "Basic aGk6dGhlcmU="}, None),
        ({"Authorization": "Bearer hs-wrong-key-123"}, "invalid_api_key"),
    ],
)
def test_requests_without_the_key_get_401(emu: Emulator, headers: dict, code: str | None) -> None:
    with httpx.Client(base_url=emu.url) as http:
        response = http.post(
            "/chat/completions", json={"model": MODEL, "messages": [user("hi")]}, headers=headers
        )
    error = error_of(response, 401)
    assert (error["type"], error["code"]) == ("invalid_request_error", code)
    assert API_KEY not in response.text


def test_the_wrong_key_is_shown_masked(emu: Emulator) -> None:
    response = httpx.get(f"{emu.url}/models", headers=auth("hs-secret-value-9876"))
    assert error_of(response, 401)["message"] == "Incorrect API key provided: hs-****9876."


def test_a_server_without_a_key_accepts_any_key() -> None:
    with Emulator() as url:
        assert httpx.get(f"{url}/models", headers=auth("anything")).status_code == 200
        assert httpx.get(f"{url}/models").status_code == 401


def test_health_needs_no_key(emu: Emulator) -> None:
    response = httpx.get(emu.url.removesuffix("/v1") + "/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


BAD_REQUESTS = {
    "missing-model": ({"model": None}, 400, "model"),
    "unknown-model": ({"model": "gpt-9"}, 404, "model"),
    "missing-messages": ({"messages": None}, 400, "messages"),
    "empty-messages": ({"messages": []}, 400, "messages"),
    "messages-not-a-list": ({"messages": "hi"}, 400, "messages"),
    "unknown-role": ({"messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages[0].role"),
    "missing-content": ({"messages": [{"role": "user"}]}, 400, "messages[0].content"),
    "bad-part": (
        {"messages": [{"role": "user", "content": [{"type": "video"}]}]},
        400,
        "messages[0].content[0]",
    ),
    "zero-max-tokens": ({"max_tokens": 0}, 400, "max_tokens"),
    "text-max-tokens": ({"max_tokens": "ten"}, 400, "max_tokens"),
    "bool-max-tokens": ({"max_tokens": True}, 400, "max_tokens"),
    "huge-max-tokens": ({"max_tokens": 10_000}, 400, "max_tokens"),
    "hot-temperature": ({"temperature": 2.5}, 400, "temperature"),
    "zero-n": ({"n": 0}, 400, "n"),
    "five-stops": ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    "stream-options-without-stream": (
        {"stream_options": {"include_usage": True}},
        400,
        "stream_options",
    ),
    "bad-response-format": ({"response_format": {"type": "yaml"}}, 400, "response_format.type"),
    "unnamed-json-schema": (
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
        400,
        "response_format.json_schema.name",
    ),
    "bad-thinking": ({"thinking": {"type": "maybe"}}, 400, "thinking.type"),
    "bad-effort": ({"reasoning_effort": "extreme"}, 400, "reasoning_effort"),
}


@pytest.mark.parametrize("name", BAD_REQUESTS)
def test_invalid_chat_requests_are_refused(client: httpx.Client, name: str) -> None:
    change, status, param = BAD_REQUESTS[name]
    body = {"model": MODEL, "messages": [user("hi")], **change}
    body = {key: value for key, value in body.items() if value is not None}
    error = error_of(client.post("/chat/completions", json=body), status)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_unknown_model_message_matches_the_api(client: httpx.Client) -> None:
    response = client.post("/chat/completions", json={"model": "gpt-9", "messages": [user("hi")]})
    error = error_of(response, 404)
    assert error["code"] == "model_not_found"
    assert error["message"] == "The model `gpt-9` does not exist or you do not have access to it."


def test_bodies_that_are_not_json_objects_are_refused(client: httpx.Client) -> None:
    response = client.post(
        "/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert "could not parse the JSON body" in error_of(response, 400)["message"]
    error_of(client.post("/chat/completions", json=[1, 2]), 400)


def test_null_parameters_count_as_omitted(client: httpx.Client) -> None:
    chat(client, temperature=None, max_tokens=None, stop=None, tools=None, tool_choice=None, n=None)


def test_prompts_over_the_context_window_are_refused(client: httpx.Client) -> None:
    model = "tiny-small-context"
    fits = "word " * (1000 - MESSAGE_OVERHEAD_TOKENS)
    chat(client, model=model, messages=[user(fits)])
    response = client.post(
        "/chat/completions", json={"model": model, "messages": [user(fits + "more")]}
    )
    error = error_of(response, 400)
    assert error["code"] == "context_length_exceeded"
    assert error["message"] == (
        "This model's maximum context length is 1000 tokens. However, your messages resulted "
        "in 1001 tokens. Please reduce the length of the messages."
    )
    response = client.post(
        "/chat/completions", json={"model": model, "messages": [user(fits)], "max_tokens": 10}
    )
    assert "(1000 in the messages, 10 in the completion)" in error_of(response, 400)["message"]


def test_catalog_context_windows_apply(client: httpx.Client) -> None:
    over = "x " * 128_000
    response = client.post(
        "/chat/completions", json={"model": "deepseek-v3.2", "messages": [user(over)]}
    )
    assert error_of(response, 400)["code"] == "context_length_exceeded"
    chat(client, model="claude-sonnet-4.5", messages=[user(over)], max_tokens=1)


def test_unknown_routes_get_openai_shaped_404s(client: httpx.Client) -> None:
    error = error_of(client.post("/completions", json={}), 404)
    assert error["message"] == "Invalid URL (POST /v1/completions)"
    error_of(client.delete("/models"), 405)


def test_retrieving_an_unknown_model_is_404(client: httpx.Client) -> None:
    assert error_of(client.get("/models/gpt-9"), 404)["code"] == "model_not_found"
    assert client.get("/models/mini-small-context").json()["owned_by"] == "holysheep"


def test_every_response_carries_a_request_id_and_rate_limit_headers(
    emu: Emulator, client: httpx.Client
) -> None:
    responses = [
        client.post("/chat/completions", json={"model": MODEL, "messages": [user("hi")]}),
        client.post(
            "/chat/completions", json={"model": MODEL, "messages": [user("hi")], "stream": True}
        ),
        client.post("/embeddings", json={"model": "e", "input": "hi"}),
        client.get("/models"),
        client.get("/models/gpt-9"),
        client.get("/nowhere"),
        httpx.get(f"{emu.url}/models"),
        httpx.get(emu.url.removesuffix("/v1") + "/health"),
    ]
    ids = [r.headers["x-request-id"] for r in responses]
    assert all(i.startswith("req_") for i in ids)
    assert len(set(ids)) == len(ids)
    for response in responses:
        for kind in ("requests", "tokens"):
            limit = int(response.headers[f"x-ratelimit-limit-{kind}"])
            assert 0 <= int(response.headers[f"x-ratelimit-remaining-{kind}"]) <= limit
            assert response.headers[f"x-ratelimit-reset-{kind}"].endswith("s")
    remaining = [int(r.headers["x-ratelimit-remaining-requests"]) for r in responses]
    assert remaining == sorted(remaining, reverse=True)
    tokens = [int(r.headers["x-ratelimit-remaining-tokens"]) for r in responses[:2]]
    assert tokens[0] < 2_000_000


def test_an_emulator_bug_is_an_openai_shaped_500(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("holysheep_core.emulator.server.complete", broken)
    error = error_of(
        client.post("/chat/completions", json={"model": MODEL, "messages": [user("hi")]}), 500
    )
    assert error["message"] == "The emulator failed: RuntimeError: boom"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/chat/completions", {"model": MODEL, "messages": [user("hi")], "temprature": 0.2}),
        ("/embeddings", {"model": "text-embedding-3-small", "input": "hi", "temprature": 0.2}),
    ],
)
def test_an_unknown_top_level_parameter_is_refused_like_the_api(
    client: httpx.Client, path: str, body: dict
) -> None:
    error = error_of(client.post(path, json=body), 400)
    assert error["message"] == "Unrecognized request argument supplied: temprature"
    assert error["type"] == "invalid_request_error"


def test_every_parameter_the_api_documents_is_accepted(client: httpx.Client) -> None:
    body = {
        "model": MODEL,
        "messages": [user("hi")],
        "user": "ann",
        "metadata": {"team": "flock"},
        "store": False,
        "logit_bias": {},
        "service_tier": "auto",
        "prompt_cache_key": "k",
    }
    assert client.post("/chat/completions", json=body).status_code == 200
