"""Tests for the sans-IO SSE decoder: each parsing rule, then split-invariance properties."""

from __future__ import annotations

import dataclasses
import itertools
import operator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holysheep_core.errors import HolySheepError, StreamError
from holysheep_core.sse_decoder import Need, SSEDecoder, SSEEvent, SSEStateError

PROPERTY = settings(max_examples=200, deadline=None, database=None)


def decode(*chunks: bytes, eof: bool = True, **kwargs: int) -> list[SSEEvent]:
    """Feed the chunks like a driver (draining after each), then EOF."""
    decoder = SSEDecoder(**kwargs)
    events: list[SSEEvent] = []
    for chunk in chunks:
        if not chunk:
            continue  # b"" would mean EOF
        decoder.feed(chunk)
        events.extend(decoder.events())
    if eof:
        decoder.feed(b"")
        events.extend(decoder.events())
        assert decoder.next_event() is Need.END
    return events


def decode_split(stream: bytes, cuts: list[int]) -> list[SSEEvent]:
    bounds = sorted({0, len(stream), *cuts})
    return decode(*(stream[a:b] for a, b in itertools.pairwise(bounds)))


def datas(events: list[SSEEvent]) -> list[str]:
    return [e.data for e in events]


# --- fields -----------------------------------------------------------------------------------


def test_single_event() -> None:
    assert decode(b"data: hello\n\n") == [SSEEvent("hello")]


def test_event_defaults_and_frozen() -> None:
    event = SSEEvent("x")
    assert (event.event, event.id, event.retry) == ("message", None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = "y"  # type: ignore[misc]


def test_multiline_data_joined_with_lf() -> None:
    assert datas(decode(b"data: a\ndata: b\ndata:\ndata: c\n\n")) == ["a\nb\n\nc"]


def test_only_one_leading_space_stripped() -> None:
    assert datas(decode(b"data:  two\n\ndata:none\n\ndata: \n\n")) == [" two", "none", ""]


def test_only_one_leading_space_stripped_in_every_field() -> None:
    stream = b"event:  e\nid:  7\ndata:x\n\n"
    assert decode(stream) == [SSEEvent("x", event=" e", id=" 7")]


def test_value_keeps_later_colons_and_trailing_space() -> None:
    assert datas(decode(b'data: {"a": "b:c"} \n\n')) == ['{"a": "b:c"} ']


def test_comments_ignored() -> None:
    stream = b": keep-alive\n:\ndata: a\n: between\ndata: b\n\n: trailing\n\n"
    assert datas(decode(stream)) == ["a\nb"]


def test_line_without_colon_is_field_with_empty_value() -> None:
    assert decode(b"data\n\n") == [SSEEvent("")]
    assert decode(b"data\ndata\n\n") == [SSEEvent("\n")]
    assert decode(b"event\ndata: x\n\n") == [SSEEvent("x", event="message")]


def test_event_field() -> None:
    stream = b"event: delta\ndata: 1\n\nevent:\ndata: 2\n\ndata: 3\n\n"
    assert [(e.event, e.data) for e in decode(stream)] == [
        ("delta", "1"),
        ("message", "2"),
        ("message", "3"),
    ]


def test_id_is_sticky_and_can_be_reset() -> None:
    stream = b"id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 8\n\ndata: d\n\n"
    assert [e.id for e in decode(stream)] == ["7", "7", "", "8"]


def test_id_with_nul_is_ignored() -> None:
    assert [e.id for e in decode(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")] == ["1", "1"]


def test_retry_digits_only_and_sticky() -> None:
    stream = (
        b"retry: 1500\ndata: a\n\n"
        b"retry: 1a\ndata: b\n\n"
        b"retry: -1\nretry: 1.5\nretry:\nretry: \xd9\xa3\ndata: c\n\n"  # \xd9\xa3 is Arabic 3
        b"retry: 20\n\n"  # not dispatched, but the stream's reconnection time changes
        b"data: d\n\n"
    )
    assert [(e.data, e.retry) for e in decode(stream)] == [
        ("a", 1500),
        ("b", 1500),
        ("c", 1500),
        ("d", 20),
    ]


def test_retry_with_absurdly_many_digits_is_ignored() -> None:
    stream = b"retry: " + b"9" * 10_000 + b"\ndata: x\n\n"
    assert decode(stream) == [SSEEvent("x")]


def test_unknown_and_wrong_case_fields_ignored() -> None:
    assert decode(b"foo: bar\nData: no\nDATA: no\ndata: yes\n\n") == [SSEEvent("yes")]


def test_block_without_data_not_dispatched_and_event_type_reset() -> None:
    stream = b"event: ping\n\n: only a comment\n\nid: 4\n\ndata: x\n\n"
    assert decode(stream) == [SSEEvent("x", event="message", id="4")]


def test_consecutive_blank_lines_dispatch_nothing_extra() -> None:
    assert datas(decode(b"\n\n\ndata: a\n\n\n\ndata: b\n\n")) == ["a", "b"]


# --- line endings and splitting ----------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_line_endings(eol: bytes) -> None:
    stream = eol.join([b"event: e", b"data: a", b"data: b", b"", b"data: c", b"", b""])
    assert [(e.event, e.data) for e in decode(stream)] == [("e", "a\nb"), ("message", "c")]


def test_mixed_line_endings() -> None:
    stream = b"data: a\rdata: b\r\ndata: c\n\r\ndata: d\r\rdata: e\n\r"
    assert datas(decode(stream)) == ["a\nb\nc", "d", "e"]


def test_lf_cr_is_two_line_ends() -> None:
    assert datas(decode(b"data: a\n\rdata: b\n\n")) == ["a", "b"]


def test_crlf_split_between_cr_and_lf() -> None:
    # If the LF were taken as a line of its own, "a" would be dispatched alone.
    assert datas(decode(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n")) == ["a\nb"]


def test_cr_at_chunk_end_then_cr_is_blank_line() -> None:
    assert datas(decode(b"data: a\r", b"\rdata: b\r", b"\r")) == ["a", "b"]


def test_lone_cr_then_data_in_next_chunk() -> None:
    assert datas(decode(b"data: a\r", b"data: b\r\r")) == ["a\nb"]


def test_every_split_position_of_a_mixed_stream() -> None:
    stream = "\ufeffdata: h\u00e9\r\nid: \U0001f411\rdata: \u20ac\r\n\r\n: c\ndata: z\n\n".encode()
    expected = decode(stream)
    assert [(e.data, e.id) for e in expected] == [("h\u00e9\n\u20ac", "\U0001f411"), ("z", "🐑")]
    for i, j in itertools.combinations(range(len(stream) + 1), 2):
        assert decode(stream[:i], stream[i:j], stream[j:]) == expected, (i, j)


@pytest.mark.parametrize("cut", [7, 8, 9])
def test_split_inside_multibyte_character(cut: int) -> None:
    stream = "data: \u20ac!\n\n".encode()  # the euro sign is bytes 6..8
    assert decode(stream[:cut], stream[cut:]) == [SSEEvent("\u20ac!")]


def test_invalid_utf8_replaced_not_raised() -> None:
    stream = b"event: \xff\nid: \xc3\ndata: a\xe2\x82\ndata: \x80b\n\n"
    assert decode(stream) == [SSEEvent("a\ufffd\n\ufffdb", event="\ufffd", id="\ufffd")]


def test_truncated_character_at_eof_is_replaced() -> None:
    assert decode(b"data: \xe2\x82") == [SSEEvent("\ufffd")]


# --- BOM ---------------------------------------------------------------------------------------


def test_leading_bom_skipped() -> None:
    assert decode(b"\xef\xbb\xbfdata: x\n\n") == [SSEEvent("x")]


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_leading_bom_split_across_chunks(cut: int) -> None:
    stream = b"\xef\xbb\xbfdata: x\n\n"
    assert decode(stream[:cut], stream[cut:]) == [SSEEvent("x")]


def test_only_one_bom_skipped() -> None:
    # The second BOM becomes part of the field name, which is then unknown.
    assert decode(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n") == [SSEEvent("y")]


def test_bom_later_in_stream_is_data() -> None:
    assert decode(b"data: a\n\ndata: \xef\xbb\xbfb\n\n") == [SSEEvent("a"), SSEEvent("\ufeffb")]


def test_partial_bom_then_eof() -> None:
    assert decode(b"\xef\xbb") == []
    assert decode(b"\xef", b"\xbbdata: x") == []  # field name "\ufffddata": unknown


def test_bom_only_prefix_waits_for_more_bytes() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"\xef\xbb")
    assert decoder.next_event() is Need.DATA
    decoder.feed(b"\xbfdata: x\n\n")
    assert decoder.next_event() == SSEEvent("x")


# --- end of stream -----------------------------------------------------------------------------


def test_last_event_without_blank_line_dispatched_at_eof() -> None:
    assert decode(b"data: a\n\ndata: b\n") == [SSEEvent("a"), SSEEvent("b")]


def test_last_line_without_terminator_dispatched_at_eof() -> None:
    assert decode(b"data: a\n\nevent: e\ndata: b") == [SSEEvent("a"), SSEEvent("b", event="e")]


def test_trailing_cr_at_eof() -> None:
    assert decode(b"data: a\r") == [SSEEvent("a")]


def test_no_data_at_eof_dispatches_nothing() -> None:
    assert decode(b"data: a\n\nevent: e\nid: 1") == [SSEEvent("a")]
    assert decode(b": only a comment") == []
    assert decode() == []


def test_events_not_dispatched_before_eof_without_blank_line() -> None:
    assert decode(b"data: a\n", eof=False) == []


def test_need_data_then_pending_events_then_end() -> None:
    decoder = SSEDecoder()
    assert decoder.next_event() is Need.DATA
    decoder.feed(b"data: a\n\ndata: b\n\ndata: c")
    assert decoder.next_event() == SSEEvent("a")
    decoder.feed(b"")
    assert decoder.next_event() == SSEEvent("b")
    assert decoder.next_event() == SSEEvent("c")
    assert decoder.next_event() is Need.END
    assert decoder.next_event() is Need.END
    assert list(decoder.events()) == []


def test_feed_after_eof_is_local_error() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\n")
    decoder.feed(b"")
    decoder.feed(b"")  # EOF again is harmless, like repeated socket.recv() == b""
    with pytest.raises(SSEStateError, match="after EOF") as info:
        decoder.feed(b"data: b\n\n")
    assert isinstance(info.value, RuntimeError)
    assert not isinstance(info.value, HolySheepError)
    assert decoder.next_event() == SSEEvent("a")
    assert decoder.next_event() is Need.END


# --- API details -------------------------------------------------------------------------------


def test_events_drains_only_what_is_ready() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: 1\n\ndata: 2\n\ndata: 3")
    assert datas(list(decoder.events())) == ["1", "2"]
    assert decoder.next_event() is Need.DATA
    decoder.feed(b"\n\n")
    assert datas(list(decoder.events())) == ["3"]


def test_buffered_counts_held_bytes_and_drops_consumed_ones() -> None:
    decoder = SSEDecoder()
    assert decoder.buffered == 0
    decoder.feed(b"data: abc\n")
    assert decoder.buffered == 10  # not parsed yet
    assert decoder.next_event() is Need.DATA
    assert decoder.buffered == 3  # the data value "abc" waits for its blank line
    decoder.feed(b"\ndata: pa")
    assert decoder.next_event() == SSEEvent("abc")
    assert decoder.next_event() is Need.DATA
    assert decoder.buffered == len(b"data: pa")


def test_feed_copies_mutable_buffers() -> None:
    decoder = SSEDecoder()
    chunk = bytearray(b"data: a")
    decoder.feed(chunk)
    chunk[:] = b"XXXXXXX"
    decoder.feed(memoryview(b"\n\n"))
    assert decoder.next_event() == SSEEvent("a")


def test_max_event_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_event_bytes"):
        SSEDecoder(max_event_bytes=0)


# --- size cap ----------------------------------------------------------------------------------


def test_cap_on_one_unterminated_line() -> None:
    decoder = SSEDecoder(max_event_bytes=100)
    decoder.feed(b"data: " + b"x" * 94)
    assert decoder.next_event() is Need.DATA  # exactly 100 bytes is allowed
    decoder.feed(b"x")
    with pytest.raises(StreamError, match="max_event_bytes=100") as info:
        decoder.next_event()
    assert isinstance(info.value, HolySheepError)
    assert decoder.buffered == 0  # the broken stream is not kept


def test_cap_on_many_lines_without_blank_line() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    for _ in range(62):  # 62 lines of 16 bytes: 992, still allowed
        decoder.feed(b"data: 0123456789\n")
        assert decoder.next_event() is Need.DATA
    decoder.feed(b"data: 0123456789\n")
    with pytest.raises(StreamError, match="1008 bytes"):
        decoder.next_event()


def test_cap_applies_to_a_complete_event_fed_at_once() -> None:
    # The result must not depend on how the bytes were split.
    stream = b"data: ok\n\n" + b"data: " + b"x" * 200 + b"\n\ndata: after\n\n"
    for chunks in ([stream], [stream[:50], stream[50:]], [bytes([b]) for b in stream]):
        decoder = SSEDecoder(max_event_bytes=100)
        got = []
        with pytest.raises(StreamError):
            for chunk in chunks:
                decoder.feed(chunk)
                got.extend(decoder.events())
        assert got == [SSEEvent("ok")]


def test_cap_error_repeats_and_later_data_is_ignored() -> None:
    decoder = SSEDecoder(max_event_bytes=10)
    decoder.feed(b"data: a\n\ndata: 0123456789")
    assert decoder.next_event() == SSEEvent("a")
    for _ in range(2):
        with pytest.raises(StreamError):
            decoder.next_event()
    decoder.feed(b"\n\ndata: b\n\n")
    assert decoder.buffered == 0
    with pytest.raises(StreamError):
        decoder.next_event()


def test_events_within_cap_are_fine() -> None:
    one = b"data: " + b"x" * 90 + b"\n\n"
    assert len(decode(one * 100, max_event_bytes=96)) == 100


# --- performance shape -------------------------------------------------------------------------


def test_ten_megabytes_of_small_events() -> None:
    event = b'data: {"choices":[{"delta":{"content":"tok"}}],"n":0000000000}\n\n'
    count = 10 * 1024 * 1024 // len(event)
    stream = event * count
    decoder = SSEDecoder()
    seen = 0
    for i in range(0, len(stream), 65_536):
        decoder.feed(stream[i : i + 65_536])
        for ev in decoder.events():
            seen += 1
            last = ev
    decoder.feed(b"")
    assert list(decoder.events()) == []
    assert seen == count
    assert last.data == event[6:-2].decode()
    assert decoder.buffered == 0


def test_long_line_in_small_chunks_is_not_rescanned() -> None:
    # 16 MiB in 1 KiB chunks: ~50 ms when each byte is searched once; rescanning the pending
    # line on every call (quadratic) takes seconds. No timing assertion, only the shape.
    decoder = SSEDecoder(max_event_bytes=32 * 1024 * 1024)
    piece = b"y" * 1024
    decoder.feed(b"data: ")
    for _ in range(16 * 1024):
        decoder.feed(piece)
        assert decoder.next_event() is Need.DATA
    decoder.feed(b"\n\n")
    event = decoder.next_event()
    assert isinstance(event, SSEEvent)
    assert len(event.data) == 16 * 1024 * 1024
    assert decoder.buffered == 0


# --- properties --------------------------------------------------------------------------------

# Strategies are built once: building them inside the composite dominated the run time.
_EOLS = ("\n", "\r", "\r\n")
_eol = st.sampled_from(_EOLS)
_style = st.sampled_from([*_EOLS, "mixed"])
# Leading spaces and colons are made common: they are where the parsing rules bite.
_lead = st.sampled_from(["", "", " ", "  ", ":", "\ufeff"])
_id_char = st.characters(codec="utf-8", exclude_characters="\r\n\0")
_line_text = st.builds(operator.add, _lead, st.text(_id_char | st.just("\0"), max_size=12))
_maybe_text = st.none() | _line_text
_maybe_id = st.none() | st.builds(operator.add, _lead, st.text(_id_char, max_size=12))
_maybe_retry = st.none() | st.integers(0, 10**6)
_maybe_data = st.none() | st.lists(_line_text, min_size=1, max_size=4)
_noise = st.lists(
    st.tuples(st.sampled_from([":", ": ", "x-unknown:", "Data: "]), _line_text, st.integers(0, 9)),
    max_size=2,
)
_block_count = st.integers(0, 6)
_flag = st.booleans()


@st.composite
def sse_streams(draw: st.DrawFn) -> tuple[bytes, list[SSEEvent]]:
    """A stream built from random blocks, and the events a correct decoder must return."""
    style = draw(_style)

    def join(lines: list[str]) -> str:
        out: list[str] = []
        prev = ""
        for line in lines:
            eol = draw(_eol) if style == "mixed" else style
            if prev == "\r" and not line and eol == "\n":
                eol = "\r"  # "\r" + "" + "\n" would read as one CRLF, losing the blank line
            out.append(line + eol)
            prev = eol
        return "".join(out)

    def field(name: str, value: str) -> str:
        if not value and draw(_flag):
            return name  # no colon: empty value
        space = " " if value.startswith(" ") or draw(_flag) else ""
        return f"{name}:{space}{value}"

    lines: list[str] = []
    expected: list[SSEEvent] = []
    last_id: str | None = None
    retry: int | None = None
    ends_with_event = False
    for _ in range(draw(_block_count)):
        block: list[str] = []
        event_type = draw(_maybe_text)
        if event_type is not None:
            block.append(field("event", event_type))
        new_id = draw(_maybe_id)
        if new_id is not None:
            block.append(field("id", new_id))
            last_id = new_id
        new_retry = draw(_maybe_retry)
        if new_retry is not None:
            block.append(field("retry", str(new_retry)))
            retry = new_retry
        data = draw(_maybe_data)
        for value in data or []:
            block.append(field("data", value))
        for prefix, text, where in draw(_noise):  # comments and ignored fields, anywhere
            block.insert(where % (len(block) + 1), prefix + text)
        lines.extend([*block, ""])
        ends_with_event = data is not None
        if ends_with_event:
            expected.append(SSEEvent("\n".join(data), event_type or "message", last_id, retry))
    if ends_with_event and draw(_flag):
        # The server omitted the final blank line (and maybe the last line end): still an event.
        stream = join(lines[:-1])
        if draw(_flag):
            stream = stream.removesuffix("\n").removesuffix("\r")
    else:
        stream = join(lines)
    bom = b"\xef\xbb\xbf" if draw(_flag) else b""
    return bom + stream.encode(), expected


@PROPERTY
@given(sse_streams(), st.data())
def test_property_any_split_gives_the_same_events(
    generated: tuple[bytes, list[SSEEvent]], data: st.DataObject
) -> None:
    stream, expected = generated
    assert decode(stream) == expected
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12), label="cuts")
    assert decode_split(stream, cuts) == expected


@PROPERTY
@given(sse_streams())
def test_property_one_byte_at_a_time(generated: tuple[bytes, list[SSEEvent]]) -> None:
    stream, expected = generated
    assert decode(*(stream[i : i + 1] for i in range(len(stream)))) == expected


@PROPERTY
@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=8))
def test_property_arbitrary_bytes_never_crash_and_split_invariant(
    stream: bytes, cuts: list[int]
) -> None:
    cuts = [c for c in cuts if c <= len(stream)]
    assert decode_split(stream, cuts) == decode(stream)
