"""ChatHolySheep against the emulator: parameters on the wire, metadata, usage, reasoning,
streaming and client sharing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_helpers import chat_bodies, emulated_usage

from holysheep_core import HolySheepClient, PriceTable
from holysheep_core.emulator import reply_to
from holysheep_core.pricing import DEFAULT_PROFILES
from langchain_holysheep import ChatHolySheep
from langchain_holysheep.messages import usage_metadata

Make = Callable[..., ChatHolySheep]


def _collect(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    return full


def test_invoke_metadata_and_usage(emulator: Any, make_chat: Make) -> None:
    reply = make_chat(seed=7).invoke("Count the sheep")
    (body,) = chat_bodies(emulator)
    usage = emulated_usage(body)
    assert reply.content == reply_to("Count the sheep")
    assert reply.usage_metadata == usage_metadata(usage)
    meta = reply.response_metadata
    assert meta["model_name"] == "deepseek-v3.2"
    assert meta["finish_reason"] == "stop"
    assert meta["id"].startswith("chatcmpl-")
    assert meta["system_fingerprint"] == "fp_emulator_7"
    assert meta["request_id"].startswith("req_")
    assert meta["model_provider"] == "holysheep"
    assert meta["cost_usd"] == float(PriceTable().cost("deepseek-v3.2", usage))


def test_parameters_reach_the_wire(emulator: Any, make_chat: Make) -> None:
    model = make_chat(
        temperature=0.3,
        max_tokens=50,
        top_p=0.9,
        seed=1,
        presence_penalty=0.5,
        frequency_penalty=0.25,
        stop=["END"],
        reasoning_effort="low",
        model_kwargs={"user": "ann"},
        extra_body={"metadata": {"team": "flock"}},
    )
    model.invoke("hi")
    model.invoke("hi", stop=["STOP"], temperature=1.0, model="gpt-4.1")
    first, second = chat_bodies(emulator)
    assert {k: v for k, v in first.items() if k != "messages"} == {
        "model": "deepseek-v3.2",
        "temperature": 0.3,
        "max_tokens": 50,
        "top_p": 0.9,
        "seed": 1,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "stop": ["END"],
        "reasoning_effort": "low",
        "user": "ann",
        "metadata": {"team": "flock"},
    }
    assert (second["model"], second["stop"], second["temperature"]) == ("gpt-4.1", ["STOP"], 1.0)


def test_nothing_unasked_is_sent(emulator: Any, chat: ChatHolySheep) -> None:
    chat.invoke("hi")
    (body,) = chat_bodies(emulator)
    assert body == {"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "hi"}]}


def test_thinking_switch(emulator: Any, make_chat: Make) -> None:
    make_chat(thinking=True).invoke("hi")
    make_chat(thinking=False).invoke("hi")
    make_chat(thinking={"type": "enabled"}).invoke("hi")
    assert [b["thinking"] for b in chat_bodies(emulator)] == [
        {"type": "enabled"},
        {"type": "disabled"},
        {"type": "enabled"},
    ]


def test_n_choices_report_usage_once(emulator: Any, make_chat: Make) -> None:
    result = make_chat(n=2).generate([[HumanMessage("hi")]])
    first, second = result.generations[0]
    assert second.message.content == f"Alternative 1: {reply_to('hi')}"
    (body,) = chat_bodies(emulator)
    assert first.message.usage_metadata == usage_metadata(emulated_usage(body))
    assert second.message.usage_metadata is None
    assert "cost_usd" not in second.message.response_metadata


def test_stream_usage_on_exactly_one_chunk(emulator: Any, chat: ChatHolySheep) -> None:
    chunks = list(chat.stream("Count every sheep in the meadow"))
    with_usage = [c for c in chunks if c.usage_metadata]
    assert len(with_usage) == 1
    assert chunks[-1] is with_usage[0] and chunks[-1].chunk_position == "last"
    (body,) = chat_bodies(emulator)
    usage = emulated_usage(body)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    full = _collect(chunks)
    assert full.usage_metadata == usage_metadata(usage)
    # Strings concatenate when chunks merge: each names the call once.
    assert full.response_metadata["model_name"] == "deepseek-v3.2"
    assert full.response_metadata["finish_reason"] == "stop"
    assert full.response_metadata["request_id"].startswith("req_")
    assert full.response_metadata["cost_usd"] == float(PriceTable().cost("deepseek-v3.2", usage))
    assert full.content == reply_to("Count every sheep in the meadow")
    assert len([c for c in chunks if c.content]) > 1, "the text arrives in pieces"


async def test_astream_matches_invoke(chat: ChatHolySheep) -> None:
    chunks = [c async for c in chat.astream("Count every sheep in the meadow")]
    full = _collect(chunks)
    reply = await chat.ainvoke("Count every sheep in the meadow")
    assert full.content == reply.content
    assert full.usage_metadata == reply.usage_metadata
    assert len([c for c in chunks if c.usage_metadata]) == 1


def test_stream_usage_off(make_chat: Make, chat: ChatHolySheep) -> None:
    assert not any(c.usage_metadata for c in make_chat(stream_usage=False).stream("hi"))
    assert not any(c.usage_metadata for c in chat.stream("hi", stream_usage=False))


def test_streaming_flag_streams_invoke(emulator: Any, make_chat: Make) -> None:
    reply = make_chat(streaming=True).invoke("hi")
    (body,) = chat_bodies(emulator)
    assert body["stream"] is True
    assert reply.content == reply_to("hi") and reply.usage_metadata is not None


def test_lcel_chain_streams(chat: ChatHolySheep) -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a shepherd."), ("human", "Tell me about {topic}")]
    )
    chain = prompt | chat | StrOutputParser()
    pieces = list(chain.stream({"topic": "wool"}))
    assert len([p for p in pieces if p]) > 1
    assert "".join(pieces) == reply_to("Tell me about wool")


def test_reasoning_surfaced(make_chat: Make) -> None:
    model = make_chat(thinking=True)
    reply = model.invoke("Why is wool warm?")
    reasoning = "The user asks about: Why is wool warm?. I will answer briefly."
    assert reply.additional_kwargs["reasoning_content"] == reasoning
    assert reply.content_blocks[0] == {"type": "reasoning", "reasoning": reasoning}
    streamed = _collect(list(model.stream("Why is wool warm?")))
    assert streamed.additional_kwargs["reasoning_content"] == reasoning
    assert streamed.content_blocks[0] == {"type": "reasoning", "reasoning": reasoning}
    assert streamed.usage_metadata["output_token_details"]["reasoning"] > 0
    v1 = make_chat(thinking=True, output_version="v1").invoke("Why is wool warm?")
    assert v1.content[0] == {"type": "reasoning", "reasoning": reasoning}


def test_cache_reads_reported(make_chat: Make) -> None:
    model = make_chat()
    messages = [("system", "You keep sheep. " * 20), ("human", "hi")]
    first = model.invoke(messages)
    second = model.invoke(messages)
    assert first.usage_metadata["input_token_details"]["cache_read"] == 0
    cached = second.usage_metadata["input_token_details"]["cache_read"]
    assert 0 < cached < second.usage_metadata["input_tokens"]


def test_leaving_a_stream_early_releases_it(api_key: str, base_url: str) -> None:
    with HolySheepClient(api_key=api_key, base_url=base_url) as client:
        model = ChatHolySheep(client=client)
        for chunk in model.stream("tell me a long story about the flock"):
            if chunk.content:
                break
        stats = client.stats()
        assert stats.streams_abandoned == 1
        # The pool still works: the connection went back.
        assert model.invoke("hi").content == reply_to("hi")


def test_models_with_the_same_settings_share_a_client(api_key: str, base_url: str) -> None:
    a = ChatHolySheep(api_key=api_key, base_url=base_url, model="gpt-4.1", temperature=0)
    b = ChatHolySheep(api_key=api_key, base_url=base_url, model="deepseek-v3.2")
    c = ChatHolySheep(api_key=api_key, base_url=base_url, timeout=5)
    assert a._sync_client() is b._sync_client()
    assert a._async_client() is b._async_client()
    assert a._sync_client() is not c._sync_client()


def test_injected_client_is_used(emulator: Any, api_key: str, base_url: str) -> None:
    with HolySheepClient(api_key=api_key, base_url=base_url) as client:
        model = ChatHolySheep(client=client, model="gpt-4.1")
        model.invoke("hi")
        assert client.stats().requests == 1
        assert model.profile["max_input_tokens"] == 1_047_576


def test_ls_params(make_chat: Make) -> None:
    model = make_chat(temperature=0.2, max_tokens=64, stop=["x"])
    params = model._get_ls_params()
    assert params == {
        "ls_provider": "holysheep",
        "ls_model_name": "deepseek-v3.2",
        "ls_model_type": "chat",
        "ls_temperature": 0.2,
        "ls_max_tokens": 64,
        "ls_stop": ["x"],
    }
    assert model._get_ls_params(model="gpt-4.1")["ls_model_name"] == "gpt-4.1"


@pytest.mark.parametrize("model", DEFAULT_PROFILES)
def test_profile_for_every_served_model(make_chat: Make, model: str) -> None:
    core = PriceTable().profile(model)
    assert core is not None
    profile = make_chat(model=model).profile
    assert profile is not None
    assert profile["max_input_tokens"] == core.context_window
    assert profile["max_output_tokens"] == core.max_output_tokens
    assert profile["tool_calling"] == core.supports_tools
    assert profile["structured_output"] == core.supports_json_schema
    assert profile["reasoning_output"] == core.supports_reasoning
    assert profile["image_inputs"] == core.supports_vision


def test_unknown_model_has_no_profile(make_chat: Make) -> None:
    assert make_chat(model="my-finetune").profile is None


def test_alias_names(api_key: str, base_url: str) -> None:
    model = ChatHolySheep(
        model_name="gpt-4.1",
        holysheep_api_key=api_key,
        base_url=base_url,
        max_completion_tokens=9,
        request_timeout=3,
        stop_sequences=["x"],
    )
    assert (model.model, model.max_tokens, model.timeout, model.stop) == ("gpt-4.1", 9, 3, ["x"])
    assert model.api_key is not None and model.api_key.get_secret_value() == api_key


def test_misspelt_argument_is_refused(api_key: str) -> None:
    with pytest.raises(ValueError, match="temprature=: did you mean temperature="):
        ChatHolySheep(api_key=api_key, temprature=0)


def test_batch(emulator: Any, chat: ChatHolySheep) -> None:
    replies = chat.batch(["one", "two", "three"], config={"max_concurrency": 3})
    assert [r.content for r in replies] == [reply_to("one"), reply_to("two"), reply_to("three")]
    assert all(isinstance(r, AIMessage) and r.usage_metadata for r in replies)
    assert len(chat_bodies(emulator)) == 3
