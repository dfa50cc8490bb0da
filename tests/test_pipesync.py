"""Unit tests for ordering worker stream output against worker events."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ipytwist.pipesync import MarkerSplitter, PipeSync
from ipytwist.worker import sync_marker

MARKER = sync_marker("0123abcd")


@given(
    pieces=st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\x00", b"\x00i")), max_size=6),
    cuts=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=40),
)
def test_splitter_finds_every_marker_in_any_chunking(pieces: list[bytes], cuts: list[int]) -> None:
    """However the pipe bytes are chunked, the bytes between markers come back whole,
    tagged with the number of markers before them, and nothing else is lost."""
    data = MARKER.join(pieces)
    splitter = MarkerSplitter(MARKER)
    got: dict[int, bytes] = {}
    pos, i = 0, 0
    while pos < len(data):
        n = cuts[i % len(cuts)]
        for epoch, chunk in splitter.feed(data[pos : pos + n]):
            got[epoch] = got.get(epoch, b"") + chunk
        pos, i = pos + n, i + 1
    for epoch, chunk in splitter.release_tail():
        got[epoch] = got.get(epoch, b"") + chunk
    assert [got.get(e, b"") for e in range(len(pieces))] == pieces
    assert splitter.seen == max(0, len(pieces) - 1)


def test_output_after_an_event_waits_for_that_event() -> None:
    """Bytes read after the n-th marker are delivered only once event n is out;
    bytes before it go out at once."""
    delivered: list[tuple[str, bytes]] = []
    sync = PipeSync(MARKER, lambda name, data: delivered.append((name, data)))
    sync.output("stdout", b"a\n" + MARKER + b"b\n")
    sync.output("stderr", MARKER + b"e\n")
    assert delivered == [("stdout", b"a\n")]
    sync.event_delivered()
    assert delivered == [("stdout", b"a\n"), ("stdout", b"b\n"), ("stderr", b"e\n")]
    sync.output("stdout", b"c\n")
    assert delivered[-1] == ("stdout", b"c\n")


def test_without_markers_output_flows_straight_through() -> None:
    """A worker that writes no markers (or whose fd 1 was replaced) loses nothing."""
    delivered: list[bytes] = []
    sync = PipeSync(b"", lambda name, data: delivered.append(data))
    sync.event_delivered()
    sync.output("stdout", b"x")
    sync.output("stdout", b"\x00")
    assert delivered == [b"x", b"\x00"]


def test_partial_marker_is_released_when_the_pipe_is_empty_or_the_worker_ends() -> None:
    """A trailing NUL that might start a marker is held only until the pipe is known
    empty; anything still held when the worker exits is delivered in order."""
    delivered: list[bytes] = []
    sync = PipeSync(MARKER, lambda name, data: delivered.append(data))
    sync.output("stdout", b"x\x00")
    assert delivered == [b"x"]
    sync.pipe_empty("stdout")
    assert delivered == [b"x", b"\x00"]
    sync.output("stdout", MARKER + b"late")
    assert delivered == [b"x", b"\x00"]
    sync.flush()
    assert delivered == [b"x", b"\x00", b"late"]
