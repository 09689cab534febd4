"""Typed errors built from status, JSON body and headers; Retry-After parsing; pickling."""

from __future__ import annotations

import email.utils
import json
import pickle

import httpx
import pytest

from holysheep_core import errors as E
from holysheep_core.errors import error_from_response, parse_retry_after

NOW = 1_700_000_000.0


def body(message: str = "boom", **fields: object) -> bytes:
    return json.dumps({"error": {"message": message, **fields}}).encode()


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, E.BadRequestError),
        (401, E.AuthenticationError),
        (403, E.PermissionDeniedError),
        (404, E.NotFoundError),
        (409, E.ConflictError),
        (422, E.UnprocessableEntityError),
        (429, E.RateLimitError),
        (500, E.InternalServerError),
        (502, E.InternalServerError),
        (503, E.InternalServerError),
        (504, E.InternalServerError),
        (529, E.InternalServerError),
        (408, E.APIStatusError),
        (418, E.APIStatusError),
    ],
)
def test_status_picks_the_most_specific_class(status: int, cls: type) -> None:
    err = error_from_response(status, {}, body())
    assert type(err) is cls
    assert isinstance(err, E.APIStatusError)
    assert isinstance(err, E.HolySheepError)
    assert err.status_code == status


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_retryable_statuses(status: int) -> None:
    assert error_from_response(status, {}, body()).is_retryable


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 418, 422])
def test_other_client_errors_are_not_retryable(status: int) -> None:
    assert not error_from_response(status, {}, body()).is_retryable


def test_fields_from_json_body_and_headers() -> None:
    headers = {"x-request-id": "req_42", "retry-after": "3", "content-type": "application/json"}
    raw = body("Rate limit reached", type="rate_limit_error", code="rate_limited", param="model")
    err = error_from_response(429, headers, raw, method="POST", url="http://h/v1/chat")
    assert isinstance(err, E.RateLimitError)
    assert err.message == "Rate limit reached"
    assert err.request_id == "req_42"
    assert err.retry_after == 3.0
    assert err.code == "rate_limited"
    assert err.error_type == "rate_limit_error"
    assert err.param == "model"
    assert err.body == json.loads(raw)
    assert (err.method, err.url) == ("POST", "http://h/v1/chat")
    assert str(err) == "429 Rate limit reached, request_id=req_42"


def test_numeric_code_kept_as_text() -> None:
    assert error_from_response(400, {}, body(code=1234)).code == "1234"


def test_headers_are_read_case_insensitively_from_a_transport() -> None:
    headers = httpx.Headers({"X-Request-ID": "req_7", "Retry-After-Ms": "250"})
    err = error_from_response(503, headers, body())
    assert err.request_id == "req_7"
    assert err.retry_after == 0.25


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"error": "plain string"}, "plain string"),
        ({"message": "top-level message"}, "top-level message"),
        ({"error": {"code": "only_code"}}, "only_code"),
    ],
)
def test_other_json_error_shapes_give_the_message(payload: object, message: str) -> None:
    assert error_from_response(400, {}, json.dumps(payload).encode()).message == message


@pytest.mark.parametrize(
    "text",
    [
        "The model's context length is 128000 tokens",
        "This model's maximum context length is 8192 tokens",
        # LiteLLM's proxy, code "400":
        "litellm.ContextWindowExceededError: litellm.BadRequestError: "
        "ContextWindowExceededError: OpenAIException - context window exceeded",
        "prompt is too long: 210000 tokens > 200000 maximum",  # Anthropic
        "The input token count (1100000) exceeds the maximum number of tokens allowed",
    ],
)
def test_context_length_recognised_by_message(text: str) -> None:
    err = error_from_response(400, {}, body(text))
    assert isinstance(err, E.ContextLengthExceededError)
    assert isinstance(err, E.BadRequestError)


def test_other_bad_requests_stay_bad_requests() -> None:
    err = error_from_response(400, {}, body("temperature must be at most 2", code="400"))
    assert type(err) is E.BadRequestError


@pytest.mark.parametrize("code", ["context_length_exceeded", "context_window_exceeded"])
def test_context_length_recognised_by_code(code: str) -> None:
    err = error_from_response(400, {}, body("too long", code=code))
    assert isinstance(err, E.ContextLengthExceededError)


def test_html_502_from_a_proxy_gives_a_readable_message() -> None:
    page = (
        b"<html><head><title>502 Bad Gateway</title><style>body{color:red}</style></head>"
        b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>"
        b"</body></html>"
    )
    err = error_from_response(502, {"content-type": "text/html"}, page)
    assert isinstance(err, E.InternalServerError)
    assert err.is_retryable
    assert err.message.startswith("non-JSON HTML page: ")
    assert "502 Bad Gateway" in err.message
    assert "nginx" in err.message
    assert "<" not in err.message and ">" not in err.message
    assert err.body == page.decode()


def test_long_html_page_is_cut_short() -> None:
    page = b"<html><body>" + b"word " * 1000 + b"</body></html>"
    assert len(error_from_response(503, {}, page).message) < 250


def test_plain_text_and_empty_bodies() -> None:
    text = error_from_response(500, {}, b"upstream reset").message
    assert text == "non-JSON body: upstream reset"
    assert error_from_response(500, {}, b"").message == "empty body"


def test_undecodable_bytes_do_not_crash() -> None:
    err = error_from_response(500, {}, b"\xff\xfe bad \x80")
    assert "bad" in err.message


# --- Retry-After ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": " 1.5 "}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the precise one wins
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),  # a bad ms falls back
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after-ms": "-3"}, 0.0),
        ({"retry-after": "inf"}, None),  # no wait at all: as if absent, like nan
        ({"retry-after-ms": "inf", "retry-after": "2"}, 2.0),
        ({"retry-after": "-inf"}, None),
        ({}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),  # would otherwise reach sleep(nan) and crash there
        ({"retry-after-ms": "nan"}, None),
    ],
)
def test_retry_after_values(headers: dict[str, str], seconds: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == seconds


def test_retry_after_as_http_date() -> None:
    date = email.utils.formatdate(NOW + 30, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=NOW) == pytest.approx(30.0)


def test_retry_after_date_in_the_past_means_now() -> None:
    date = email.utils.formatdate(NOW - 30, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=NOW) == 0.0


def test_retry_after_date_uses_the_wall_clock_by_default() -> None:
    import time

    date = email.utils.formatdate(time.time() + 120, usegmt=True)
    assert 100 < parse_retry_after({"retry-after": date}) <= 120


# --- x-should-retry -----------------------------------------------------------------------


def test_should_retry_true_makes_any_status_retryable() -> None:
    err = error_from_response(400, {"x-should-retry": "true"}, body())
    assert err.is_retryable


def test_should_retry_false_stops_a_retryable_status() -> None:
    for status in (429, 500, 503):
        assert not error_from_response(status, {"x-should-retry": "false"}, body()).is_retryable


def test_unknown_should_retry_value_is_ignored() -> None:
    assert error_from_response(503, {"x-should-retry": "maybe"}, body()).is_retryable
    assert not error_from_response(400, {"x-should-retry": "maybe"}, body()).is_retryable


# --- the tree and its fields --------------------------------------------------------------


def test_local_errors_are_value_errors() -> None:
    assert issubclass(E.ConfigurationError, ValueError)
    assert issubclass(E.InvalidRequestError, ValueError)
    assert E.InvalidRequestError("bad", param="temperature").param == "temperature"


def test_connection_errors_are_retryable_and_timeouts_are_connection_errors() -> None:
    assert issubclass(E.APITimeoutError, E.APIConnectionError)
    assert E.APIConnectionError("reset").is_retryable
    assert E.APITimeoutError("slow").is_retryable


def test_local_and_stream_errors_are_not_retryable() -> None:
    for err in (
        E.InvalidRequestError("x"),
        E.ConfigurationError("x"),
        E.StreamError("x"),
        E.APIResponseValidationError("x"),
    ):
        assert not err.is_retryable
        assert err.status_code is None


@pytest.mark.parametrize(
    "err",
    [
        error_from_response(
            429,
            {"x-request-id": "req_1", "retry-after": "2", "x-should-retry": "false"},
            body("slow down", code="rl", type="rate_limit_error"),
            method="POST",
            url="http://h/v1/chat/completions",
        ),
        E.StreamError("cut", request_id="req_2", code="c", partial_content="Hel"),
        E.InvalidRequestError("bad", param="max_tokens"),
        E.APITimeoutError("slow"),
        E.APIResponseValidationError("not json", request_id="req_3"),
        E.CircuitOpenError("open", key="k", retry_after=4.0),
    ],
    ids=lambda e: type(e).__name__,
)
def test_pickling_keeps_class_message_fields_and_notes(err: E.HolySheepError) -> None:
    err.add_note("gave up after 3 attempts")
    err.attempts = 3
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert str(back) == str(err)
    assert back.args == err.args
    assert back.__dict__ == err.__dict__
    assert back.__notes__ == ["gave up after 3 attempts"]
    assert back.is_retryable == err.is_retryable


def test_the_key_is_cut_out_of_an_echoing_body() -> None:
    key = "hs-echoed-key-123456"
    page = f"<pre>Authorization: Bearer {key}</pre>".encode()
    err = error_from_response(502, {"content-type": "text/html"}, page, secret=key)
    assert key not in str(err) and key not in repr(err.body)
    assert "Bearer [redacted]" in err.message
    raw = body(f"Incorrect API key provided: {key}")
    assert error_from_response(401, {}, raw, secret=key).message.endswith("[redacted]")
