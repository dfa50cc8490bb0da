"""Length-prefixed JSON records between the kernel and its worker."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipytwist.framing import FramingError, RecordDecoder, encode_record

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
    data = b"".join(encode_record(o) for o in objs)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    decoder = RecordDecoder()
    out: list[dict] = []
    for a, b in zip(points, points[1:], strict=False):
        out.extend(decoder.feed(data[a:b]))
    assert out == objs
    assert decoder.feed(b"") == []  # nothing held back


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
