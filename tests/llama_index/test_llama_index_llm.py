"""The ``HolySheep`` LLM: settings, metadata, secrets, the eight entry points and errors."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.callbacks import CallbackManager
from llama_index.core.callbacks.schema import EventPayload
from llama_index_helpers import CHAT_METHODS, METHODS, call

from holysheep_core import (
    AuthenticationError,
    ConfigurationError,
    ContextLengthExceededError,
    HolySheepClient,
    InvalidRequestError,
    NotFoundError,
    PriceTable,
    StreamError,
)
from holysheep_core.emulator import MODELS, Fault, reply_to
from holysheep_core.pricing import DEFAULT_PROFILES
from llama_index_holysheep import (
    DEFAULT_CONTEXT_WINDOW,
    DEFAULT_NUM_OUTPUT,
    HolySheep,
    HolySheepEmbedding,
)

# --- settings and metadata -------------------------------------------------------------


@pytest.mark.parametrize("served", MODELS, ids=lambda m: m.id)
def test_metadata_matches_what_the_api_serves(served: Any, api_key: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a known model warns about nothing
        meta = HolySheep(model=served.id, api_key=api_key).metadata
    assert meta.context_window == served.context_window
    assert meta.num_output == served.max_output_tokens
    assert meta.is_chat_model and meta.is_function_calling_model
    assert meta.model_name == served.id


def test_metadata_follows_the_price_tables_profiles(api_key: str) -> None:
    table = PriceTable()
    for model in DEFAULT_PROFILES:
        profile = table.profile(model)
        meta = HolySheep(model=model, api_key=api_key).metadata
        assert (meta.context_window, meta.num_output) == (
            profile.context_window,
            profile.max_output_tokens,
        )


def test_unknown_model_warns_and_gets_the_documented_defaults(api_key: str) -> None:
    with pytest.warns(UserWarning, match="no context window for model 'brand-new-model'"):
        llm = HolySheep(model="brand-new-model", api_key=api_key)
    meta = llm.metadata
    assert meta.context_window == DEFAULT_CONTEXT_WINDOW
    assert meta.num_output == DEFAULT_NUM_OUTPUT
    assert meta.is_chat_model and meta.is_function_calling_model


def test_context_window_and_max_tokens_override_the_profile(api_key: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        llm = HolySheep(model="x-small-context", api_key=api_key, context_window=1_000)
    assert llm.metadata.context_window == 1_000
    # What a prompt helper reserves for output never leaves the prompt without room.
    assert llm.metadata.num_output == 500
    llm = HolySheep(model="gpt-4.1", api_key=api_key, max_tokens=300)
    assert llm.metadata.num_output == 300


def test_key_and_base_url_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, api_key: str, base_url: str
) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", api_key)
    monkeypatch.setenv("HOLYSHEEP_BASE_URL", base_url)
    llm = HolySheep()
    assert llm.api_base == base_url
    assert llm.complete("Hi").text == reply_to("Hi")


def test_a_missing_or_malformed_key_fails_at_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HOLYSHEEP_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="HOLYSHEEP_API_KEY"):
        HolySheep()
    with pytest.raises(ConfigurationError, match="whitespace"):
        HolySheep(api_key="hs-abc def")
    with pytest.raises(ConfigurationError):
        HolySheepEmbedding()


def test_objects_with_the_same_settings_share_one_client(
    make_llm: Any, base_url: str, api_key: str
) -> None:
    first, second = make_llm(), make_llm(model="gpt-4.1", temperature=0.7)
    embed = HolySheepEmbedding(api_key=api_key, api_base=base_url)
    assert first._clients.sync() is second._clients.sync() is embed._clients.sync()
    assert first._clients.asynchronous() is second._clients.asynchronous()
    assert make_llm(timeout=5.0)._clients.sync() is not first._clients.sync()


def test_an_injected_client_is_used_as_it_is(base_url: str, api_key: str) -> None:
    with HolySheepClient(api_key=api_key, base_url=base_url) as client:
        llm = HolySheep(client=client)
        assert llm.api_base == base_url
        llm.complete("Hi")
        assert client.stats().requests == 1


# --- the key stays secret ----------------------------------------------------------------


async def test_the_key_never_shows_in_dumps_reprs_or_payloads(
    llm: HolySheep, api_key: str, callback_log: Any, event_log: Any
) -> None:
    llm.callback_manager = CallbackManager([callback_log])
    for method in METHODS:
        await call(llm, method, "Hi")
    texts = [
        repr(llm),
        str(llm),
        json.dumps(llm.to_dict()),
        llm.to_json(),
        llm.model_dump_json(),
        repr(llm.to_payload()),
        *(repr(p) for p in callback_log.starts + callback_log.ends),
        *(e.model_dump_json() for e in event_log.events),
    ]
    assert "api_key" not in llm.to_dict()
    assert all(api_key not in text for text in texts)
    assert llm.api_key.get_secret_value() == api_key  # still there for the client


async def test_a_rejected_key_is_a_typed_error_without_the_key(make_llm: Any) -> None:
    wrong = "hs-wrong-key-0000000000"
    llm = make_llm(api_key=wrong, max_retries=0)
    with pytest.raises(AuthenticationError) as info:
        llm.chat([ChatMessage(role="user", content="Hi")])
    assert wrong not in str(info.value) and wrong not in repr(info.value)


# --- the eight entry points --------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
async def test_each_method_fires_callbacks_and_events_exactly_once(
    method: str, make_llm: Any, callback_log: Any, event_log: Any, emulator: Any
) -> None:
    llm = make_llm(callback_manager=CallbackManager([callback_log]))
    final, _ = await call(llm, method, "Hello there")
    text = final.message.content if method in CHAT_METHODS else final.text
    assert text == reply_to("Hello there")
    assert len(emulator.requests) == 1
    assert (len(callback_log.starts), len(callback_log.ends)) == (1, 1)
    kind = "Chat" if method in CHAT_METHODS else "Completion"
    other = "Completion" if kind == "Chat" else "Chat"
    counts = event_log.count()
    assert counts[f"LLM{kind}StartEvent"] == counts[f"LLM{kind}EndEvent"] == 1
    assert counts[f"LLM{other}StartEvent"] == counts[f"LLM{other}EndEvent"] == 0


@pytest.mark.parametrize("method", ["chat", "stream_complete", "achat", "astream_chat"])
async def test_settings_and_call_arguments_reach_the_request(
    method: str, make_llm: Any, emulator: Any
) -> None:
    llm = make_llm(temperature=0.3, max_tokens=50, additional_kwargs={"seed": 7, "top_p": 0.5})
    await call(llm, method, "Hi", top_p=0.9)
    body = emulator.requests[-1].body
    assert body["model"] == "deepseek-v3.2"
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.3, 50, 7)
    assert body["top_p"] == 0.9  # the call's own argument wins
    assert body["messages"] == [{"role": "user", "content": "Hi"}]


def test_unset_sampling_settings_are_not_sent(make_llm: Any, emulator: Any) -> None:
    make_llm(temperature=None).complete("Hi")
    body = emulator.requests[-1].body
    assert "temperature" not in body and "max_tokens" not in body


def test_a_stream_left_early_releases_its_connection(llm: HolySheep) -> None:
    client = llm._clients.sync()
    before = client.stats().streams_abandoned
    stream = llm.stream_complete("one two three four five six seven eight nine ten")
    next(stream)  # the role
    assert next(stream).delta
    stream.close()
    assert client.stats().streams_abandoned == before + 1
    assert llm.complete("Hi").text == reply_to("Hi")  # the pool still works


# --- errors are the core's typed errors --------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
async def test_an_unknown_model_is_the_servers_404(
    method: str, make_llm: Any, callback_log: Any
) -> None:
    with pytest.warns(UserWarning):
        llm = make_llm(model="no-such-model", callback_manager=CallbackManager([callback_log]))
    with pytest.raises(NotFoundError, match="no-such-model"):
        await call(llm, method, "Hi")
    assert isinstance(callback_log.ends[-1][EventPayload.EXCEPTION], NotFoundError)


async def test_an_overlong_prompt_is_a_context_length_error(make_llm: Any) -> None:
    llm = make_llm(model="tiny-small-context", context_window=1_000)
    with pytest.raises(ContextLengthExceededError):
        await llm.achat([ChatMessage(role="user", content="word " * 1_200)])


def test_bad_arguments_fail_before_any_request(llm: HolySheep, emulator: Any) -> None:
    with pytest.raises(InvalidRequestError, match="temperature"):
        llm.complete("Hi", temperature=5)
    with pytest.raises(InvalidRequestError, match="messages must not be empty"):
        llm.chat([])
    assert emulator.requests == []


async def test_a_stream_that_breaks_mid_way_raises_stream_error(
    llm: HolySheep, emulator: Any
) -> None:
    emulator.inject(Fault.drop_mid_stream(after=2))
    with pytest.raises(StreamError):
        await call(llm, "astream_chat", "one two three four five six seven eight nine")
