"""ChunkParser: a chat stream's bytes, split anywhere, become normalised chunks or a StreamError."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holysheep_core import ChatCompletionChunk, StreamError
from holysheep_core.chunk_parser import ChunkParser

USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "c1", "object": "chat.completion.chunk", "created": 5, "model": "m",
            "choices": choices, **extra}  # fmt: skip


def event(payload: Any, name: str | None = None, eol: str = "\n") -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    head = f"event: {name}{eol}" if name else ""
    return f"{head}data: {data}{eol}{eol}".encode()


def text_stream(words: list[str], usage: dict | None = USAGE, done: bool = True) -> bytes:
    out = [event(chunk({"role": "assistant", "content": ""}))]
    out += [event(chunk({"content": w})) for w in words]
    out.append(event(chunk({}, "stop")))
    if usage is not None:
        out.append(event(chunk(None, usage=usage)))
    if done:
        out.append(event("[DONE]"))
    return b"".join(out)


def parse(*pieces: bytes, eof: bool = True) -> tuple[list[ChatCompletionChunk], ChunkParser]:
    parser = ChunkParser(request_id="req_s")
    out: list[ChatCompletionChunk] = []
    for piece in pieces:
        out += parser.feed(piece)
    if eof:
        out += parser.feed(b"")
    return out, parser


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *cuts})
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def content(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def dump(chunks: list[ChatCompletionChunk]) -> list[dict]:
    return [c.model_dump() for c in chunks]


# --- a well-formed stream -------------------------------------------------------------------


def test_text_stream_gives_content_then_one_usage_chunk() -> None:
    chunks, parser = parse(text_stream(["Hel", "lo", " world"]))
    assert content(chunks) == "Hello world"
    assert [c.usage is not None for c in chunks] == [False] * 5 + [True]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage.model_dump(exclude_none=True) == USAGE
    assert (last.id, last.model, last.created) == ("c1", "m", 5)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert parser.done
    assert parser.usage.total_tokens == 13


def test_every_split_point_gives_the_same_chunks() -> None:
    data = text_stream(["Hé", "llo", " wörld"])  # multi-byte characters split too
    whole, _ = parse(data)
    for cut in range(1, len(data)):
        assert dump(parse(data[:cut], data[cut:])[0]) == dump(whole), cut


def test_byte_by_byte_gives_the_same_chunks() -> None:
    data = text_stream(["a", "b"])
    whole, _ = parse(data)
    assert dump(parse(*[data[i : i + 1] for i in range(len(data))])[0]) == dump(whole)


@settings(max_examples=150, deadline=None, database=None)
@given(cuts=st.lists(st.integers(0, 2000), max_size=30), crlf=st.booleans())
def test_random_splits_and_line_endings_give_the_same_chunks(cuts: list[int], crlf: bool) -> None:
    data = text_stream(["Hi", " there", ",", " friend"])
    whole, _ = parse(data)
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    cut = [c % (len(data) + 1) for c in cuts]
    assert dump(parse(*split(data, cut))[0]) == dump(whole)


def test_comments_and_keepalives_are_ignored() -> None:
    data = b": keep-alive\n\n" + text_stream(["x"]).replace(b"\n\n", b"\n\n: ping\n\n", 2)
    assert content(parse(data)[0]) == "x"


def test_no_usage_means_no_usage_chunk() -> None:
    chunks, parser = parse(text_stream(["a"], usage=None))
    assert all(c.choices for c in chunks)
    assert parser.usage is None


def test_unknown_fields_are_kept() -> None:
    extra = chunk({"content": "a", "audio": {"id": "x"}}, provider="hs")
    chunks, _ = parse(event(extra) + event(chunk({}, "stop")) + event("[DONE]"))
    assert chunks[0].provider == "hs"
    assert chunks[0].choices[0].delta.audio == {"id": "x"}


def test_anything_after_done_is_ignored() -> None:
    data = text_stream(["a"]) + event(chunk({"content": "ghost"})) + b"data: {broken\n\n"
    assert content(parse(data)[0]) == "a"


def test_last_event_without_a_blank_line_is_not_lost() -> None:
    data = text_stream(["a"], done=False) + b"data: [DONE]"
    chunks, parser = parse(data)
    assert parser.done
    assert chunks[-1].usage is not None


def test_stream_without_done_is_complete_when_every_choice_finished() -> None:
    chunks, parser = parse(text_stream(["a", "b"], done=False))
    assert parser.done
    assert content(chunks) == "ab"
    assert chunks[-1].usage.total_tokens == 13  # still delivered, once


def test_usage_is_not_delivered_before_the_stream_ends() -> None:
    data = text_stream(["a"])
    before_done = data[: data.index(b"data: [DONE]")]
    chunks, _ = parse(before_done, eof=False)
    assert all(c.usage is None for c in chunks)


# --- usage quirks ---------------------------------------------------------------------------


def test_usage_on_every_chunk_is_delivered_once_with_the_last_value() -> None:
    events = [
        event(chunk({"content": "a"}, usage={**USAGE, "completion_tokens": 1})),
        event(chunk({"content": "b"}, usage={**USAGE, "completion_tokens": 2})),
        event(chunk({}, "stop", usage=USAGE)),
        event("[DONE]"),
    ]
    chunks, _ = parse(b"".join(events))
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1
    assert with_usage[0] is chunks[-1] and chunks[-1].choices == []
    assert with_usage[0].usage.completion_tokens == 4
    assert content(chunks) == "ab"


def test_usage_inside_the_final_content_chunk_moves_to_its_own_chunk() -> None:
    data = event(chunk({"content": "a"})) + event(chunk({}, "stop", usage=USAGE)) + event("[DONE]")
    chunks, _ = parse(data)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-2].usage is None
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 13


# --- tool calls -----------------------------------------------------------------------------


def tool_delta(index: int | None = None, id: str | None = None, name: str | None = None,
               args: str | None = None) -> dict:  # fmt: skip
    call: dict[str, Any] = {"function": {}}
    if index is not None:
        call["index"] = index
    if id is not None:
        call.update(id=id, type="function")
    if name is not None:
        call["function"]["name"] = name
    if args is not None:
        call["function"]["arguments"] = args
    return {"tool_calls": [call]}


def merge_tool_calls(chunks: list[ChatCompletionChunk]) -> dict[int, dict[str, str]]:
    """What a consumer does with deltas: group them by index."""
    calls: dict[int, dict[str, str]] = {}
    for c in chunks:
        for choice in c.choices:
            for call in choice.delta.tool_calls or ():
                assert call.index is not None  # always filled in
                slot = calls.setdefault(call.index, {"id": "", "name": "", "args": ""})
                slot["id"] += call.id or ""
                if call.function is not None:
                    slot["name"] += call.function.name or ""
                    slot["args"] += call.function.arguments or ""
    return calls


def tool_stream(deltas: list[dict]) -> bytes:
    body = b"".join(event(chunk(d)) for d in deltas)
    return body + event(chunk({}, "tool_calls")) + event(chunk(None, usage=USAGE)) + event("[DONE]")


EXPECTED_CALLS = {
    0: {"id": "call_a", "name": "get_weather", "args": '{"city": "Oslo"}'},
    1: {"id": "call_b", "name": "get_time", "args": '{"tz": "CET"}'},
}


def test_tool_calls_with_indices_pass_through() -> None:
    deltas = [
        tool_delta(0, "call_a", "get_weather", ""),
        tool_delta(0, args='{"city": '),
        tool_delta(0, args='"Oslo"}'),
        tool_delta(1, "call_b", "get_time", '{"tz": '),
        tool_delta(1, args='"CET"}'),
    ]
    assert merge_tool_calls(parse(tool_stream(deltas))[0]) == EXPECTED_CALLS


def test_missing_indices_are_filled_in_without_splitting_or_merging_calls() -> None:
    deltas = [
        tool_delta(None, "call_a", "get_weather", ""),
        tool_delta(None, args='{"city": '),
        tool_delta(None, args='"Oslo"}'),
        tool_delta(None, "call_b", "get_time", '{"tz": '),
        tool_delta(None, args='"CET"}'),
    ]
    assert merge_tool_calls(parse(tool_stream(deltas))[0]) == EXPECTED_CALLS


def test_a_repeated_id_continues_its_own_call() -> None:
    # Some servers repeat the id on every delta, and may interleave parallel calls.
    deltas = [
        tool_delta(None, "call_a", "get_weather", '{"city": '),
        tool_delta(None, "call_b", "get_time", '{"tz": '),
        {"tool_calls": [{"id": "call_a", "function": {"arguments": '"Oslo"}'}}]},
        {"tool_calls": [{"id": "call_b", "function": {"arguments": '"CET"}'}}]},
    ]
    calls = merge_tool_calls(parse(tool_stream(deltas))[0])
    assert calls[0]["args"] == '{"city": "Oslo"}'
    assert calls[1]["args"] == '{"tz": "CET"}'
    assert calls[0]["id"].startswith("call_a") and calls[1]["id"].startswith("call_b")


def test_empty_id_on_a_continuation_is_a_continuation() -> None:
    deltas = [
        tool_delta(None, "call_a", "get_weather", '{"city": "Oslo"}'),
        {"tool_calls": [{"id": "", "function": {"arguments": ""}}]},
        tool_delta(None, "call_b", "get_time", '{"tz": "CET"}'),
    ]
    assert merge_tool_calls(parse(tool_stream(deltas))[0]) == EXPECTED_CALLS


def test_tool_indices_are_per_choice() -> None:
    def choice_chunk(i: int, delta: dict) -> dict:
        c = chunk(delta)
        c["choices"][0]["index"] = i
        return c

    events = [
        event(choice_chunk(0, tool_delta(None, "call_a", "f", "{}"))),
        event(choice_chunk(1, tool_delta(None, "call_x", "g", "{}"))),
        event(choice_chunk(1, tool_delta(None, "call_y", "h", "{}"))),
        event(choice_chunk(0, {})),
        event("[DONE]"),
    ]
    chunks, _ = parse(b"".join(events))
    indices = [
        (c.choices[0].index, c.choices[0].delta.tool_calls[0].index)
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    ]
    assert indices == [(0, 0), (1, 0), (1, 1)]


# --- failures -------------------------------------------------------------------------------


def test_error_event_raises_a_stream_error_with_the_servers_message() -> None:
    payload = {"error": {"message": "upstream overloaded", "code": "overloaded"}}
    data = event(chunk({"content": "Hel"})) + event(payload, name="error")
    with pytest.raises(StreamError) as info:
        parse(data)
    err = info.value
    assert "upstream overloaded" in str(err)
    assert err.code == "overloaded"
    assert err.request_id == "req_s"
    assert err.partial_content == "Hel"


def test_error_json_payload_without_event_name_raises() -> None:
    data = event(chunk({"content": "a"})) + event({"error": {"message": "quota", "code": 429}})
    with pytest.raises(StreamError) as info:
        parse(data)
    assert "quota" in str(info.value)
    assert info.value.code == "429"


def test_error_as_a_plain_string_raises() -> None:
    with pytest.raises(StreamError, match="went wrong"):
        parse(event({"error": "it went wrong"}))


def test_non_json_data_line_is_a_stream_error_not_a_json_error() -> None:
    data = event(chunk({"content": "Hi"})) + b"data: {malformed\n\n"
    with pytest.raises(StreamError) as info:
        parse(data, eof=False)
    assert not isinstance(info.value, json.JSONDecodeError)
    assert "malformed" in str(info.value)
    assert info.value.partial_content == "Hi"


def test_json_that_is_not_a_chunk_is_a_stream_error() -> None:
    with pytest.raises(StreamError):
        parse(event({"id": "x", "object": "chat.completion.chunk"}))  # no choices


def test_truncated_stream_raises_with_what_arrived() -> None:
    cut = event(chunk({"content": "Hel"})) + event(chunk({"content": "lo"}))  # no finish, no DONE
    chunks, parser = parse(cut, eof=False)
    assert content(chunks) == "Hello"
    with pytest.raises(StreamError) as info:
        parser.feed(b"")
    assert info.value.partial_content == "Hello"
    assert "ended before it was complete" in str(info.value)


def test_truncated_after_usage_keeps_the_partial_usage() -> None:
    events = [event(chunk({"content": "a"}, usage=USAGE)), event(chunk({"content": "b"}))]
    with pytest.raises(StreamError) as info:
        parse(b"".join(events))
    assert info.value.partial_usage.total_tokens == 13


def test_empty_stream_is_an_error() -> None:
    with pytest.raises(StreamError):
        parse(b"")


def test_only_comments_is_an_error() -> None:
    with pytest.raises(StreamError):
        parse(b": hello\n\n")


def test_error_helper_carries_the_cause_and_the_partial_answer() -> None:
    _, parser = parse(event(chunk({"content": "so far"})), eof=False)
    cause = ConnectionResetError("peer reset")
    err = parser.error("the stream broke", cause)
    assert err.__cause__ is cause
    assert err.partial_content == "so far"
    assert err.request_id == "req_s"


def test_price_last_puts_the_cost_on_the_usage_chunk_only() -> None:
    from decimal import Decimal

    chunks, _ = parse(text_stream(["a"]))
    ChunkParser.price_last(chunks, Decimal("0.01"))
    assert [c.cost_usd for c in chunks] == [None] * (len(chunks) - 1) + [Decimal("0.01")]
