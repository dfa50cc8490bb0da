"""Length-prefixed JSON records between the kernel and its worker."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.chunks import fed_in_pieces

from ipytwist.framing import (
    MAX_BUFFERS,
    FramingError,
    RecordDecoder,
    RecordSplitter,
    encode_record,
)

records = st.lists(
    st.dictionaries(
        st.text(max_size=6),
        st.none() | st.integers() | st.text(max_size=30) | st.lists(st.booleans(), max_size=3),
        max_size=4,
    ),
    max_size=8,
)


def test_record_is_length_then_json() -> None:
    """A record is a 4-byte big-endian length and that many bytes of JSON."""
    data = encode_record({"ev": "ready"})
    (n,) = struct.unpack(">I", data[:4])
    assert n == len(data) - 4
    assert RecordDecoder().feed(data) == [{"ev": "ready"}]


@given(objs=records, cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20))
def test_any_chunking_gives_back_the_same_records(objs: list[dict], cuts: list[int]) -> None:
    """However the byte stream is split, the decoder returns every record once, in order."""
    decoder = RecordDecoder()
    assert fed_in_pieces(decoder.feed, b"".join(encode_record(o) for o in objs), cuts) == objs
    assert decoder.feed(b"") == []  # nothing held back


with_buffers = st.lists(
    st.fixed_dictionaries(
        {"ev": st.text(max_size=6)},
        optional={"buffers": st.lists(st.binary(max_size=40), max_size=3)},
    ),
    max_size=6,
)


@given(objs=with_buffers, cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20))
def test_binary_buffers_come_back_raw_in_any_chunking(objs: list[dict], cuts: list[int]) -> None:
    """A record's buffers travel after its JSON and come back as bytes, in order; a
    record with no buffers comes back without the key."""
    out = fed_in_pieces(RecordDecoder().feed, b"".join(encode_record(o) for o in objs), cuts)
    assert out == [{k: v for k, v in o.items() if v != []} for o in objs]


def test_a_buffer_is_written_as_its_bytes_not_as_text() -> None:
    """16 MiB of binary cost 16 MiB on the pipe (base64 in the JSON cost 21 MiB and two
    copies), and a memoryview's bytes are taken as they are."""
    image = bytes(range(256)) * (1 << 16)
    data = encode_record({"ev": "comm_msg", "buffers": [memoryview(image)]})
    assert len(data) < len(image) + 64
    assert data.endswith(image)
    (got,) = RecordDecoder().feed(data)
    assert got == {"ev": "comm_msg", "buffers": [image]}


def test_hostile_buffer_counts_and_sizes_are_refused_before_they_are_read() -> None:
    body = b'{"ev":"x"}'
    head = struct.pack(">I", len(body) | 1 << 31) + body
    with pytest.raises(FramingError, match="too many"):
        RecordDecoder().feed(head + struct.pack(">I", MAX_BUFFERS + 1))
    with pytest.raises(FramingError, match="too large"):
        RecordDecoder(max_record_bytes=1 << 20).feed(head + struct.pack(">3I", 2, 1 << 19, 1 << 20))
    with pytest.raises(FramingError, match="buffers without an object"):
        RecordDecoder().feed(
            struct.pack(">I", 2 | 1 << 31) + b"[]" + struct.pack(">2I", 1, 1) + b"x"
        )


def test_partial_record_is_held_back() -> None:
    """Bytes of an unfinished record wait until the rest arrives."""
    data = encode_record({"a": "é" * 10})
    decoder = RecordDecoder()
    assert decoder.feed(data[:7]) == []
    assert decoder.feed(b"") == []
    assert decoder.feed(data[7:]) == [{"a": "é" * 10}]
    assert decoder.feed(b"") == []


def test_oversized_record_is_refused_from_its_length() -> None:
    """A length above the limit is an error before any payload arrives."""
    decoder = RecordDecoder(max_record_bytes=10)
    with pytest.raises(FramingError):
        decoder.feed(struct.pack(">I", 11))


def test_non_json_record_is_refused() -> None:
    """A complete record that is not JSON raises FramingError."""
    with pytest.raises(FramingError):
        RecordDecoder().feed(struct.pack(">I", 3) + b"{{{")


def test_a_record_nested_too_deep_is_refused_like_other_bad_json() -> None:
    """Nesting deep enough to exhaust the parser's recursion is a FramingError too."""
    body = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(FramingError, match="RecursionError"):
        RecordDecoder(max_record_bytes=1 << 20).feed(struct.pack(">I", len(body)) + body)


def test_a_large_record_costs_at_most_twice_its_size_on_the_way_in() -> None:
    """An image of 16 MiB arrives in pipe-sized pieces: the decoder's buffer and the
    text decoded from it, then that text and the parsed string, are all it holds at
    once (the bytes were copied out of the buffer twice, then decoded, before)."""
    image = "QUJD" * (4 << 20)
    data = encode_record({"ev": "display", "data": {"image/png": image}})
    decoder = RecordDecoder()
    tracemalloc.start()
    try:
        got = []
        for i in range(0, len(data), 1 << 16):
            got += decoder.feed(data[i : i + (1 << 16)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got[0]["data"]["image/png"] == image
    assert peak < 2.3 * len(data), peak / len(data)


@given(objs=with_buffers, cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20))
def test_the_splitter_gives_back_each_record_as_written(objs: list[dict], cuts: list[int]) -> None:
    """The keeper's splitter cuts the event pipe's bytes at record boundaries without
    parsing them: each piece is one record's bytes, which decode to that record."""
    written = [encode_record(o) for o in objs]
    pieces = fed_in_pieces(RecordSplitter().feed, b"".join(written), cuts)
    assert pieces == written


def test_the_splitter_refuses_an_oversized_record_at_its_header() -> None:
    with pytest.raises(FramingError, match="too large"):
        RecordSplitter(max_record_bytes=10).feed(struct.pack(">I", 11))
