"""Request records into the worker's pipe: a large one a piece at a time, in order."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator

import pytest
from support.fake_process import FakePipeWriter

from ipytwist.framing import RecordDecoder, encode_record, record_parts
from ipytwist.kernel.pipefeed import PIECE, PipeFeeder


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETFL, fcntl.fcntl(w, fcntl.F_GETFL) | os.O_NONBLOCK)
    yield r, w
    os.close(r)
    os.close(w)


def read_all(fd: int) -> bytes:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            return out
        out += chunk


def test_an_idle_pipe_takes_a_small_record_at_once(pipe: tuple[int, int]) -> None:
    r, w = pipe
    writer = FakePipeWriter(w)
    PipeFeeder(writer).write(record_parts({"req": "complete"}))
    assert writer.queued == [] and writer.producer is None
    assert read_all(r) == encode_record({"req": "complete"})


def test_a_large_buffer_goes_in_pieces_and_the_next_record_waits_behind_it(
    pipe: tuple[int, int],
) -> None:
    """A 2 MiB buffer fills the pipe, then goes a piece at a time as the writer asks
    (never joined whole); a record sent meanwhile follows it; the bytes are the records'."""
    r, w = pipe
    writer = FakePipeWriter(w)
    feeder = PipeFeeder(writer)
    big = {"req": "comm", "content": {}, "buffers": [memoryview(os.urandom(2 << 20))]}
    feeder.write(record_parts(big))
    feeder.write(record_parts({"req": "execute", "content": {"code": "1"}}))
    wire = read_all(r)
    assert 0 < len(wire) < 1 << 20  # what the pipe took at once
    pieces = []
    while writer.producer is not None:
        pieces += writer.queued
        writer.queued.clear()
        writer.drain()
    assert max(map(len, pieces)) <= PIECE
    wire += b"".join(pieces)
    assert wire == encode_record(big) + encode_record({"req": "execute", "content": {"code": "1"}})
    assert RecordDecoder().feed(wire)[0]["buffers"] == [bytes(big["buffers"][0])]


def test_pieces_are_at_most_a_piece(pipe: tuple[int, int]) -> None:
    _, w = pipe
    writer = FakePipeWriter(w)
    writer.dataBuffer = b"x"  # Twisted still has bytes to write: nothing goes at once
    feeder = PipeFeeder(writer)
    feeder.write(record_parts({"req": "comm", "buffers": [b"\0" * (3 * PIECE + 5)]}))
    while writer.producer is not None:
        writer.drain()
    sizes = [len(p) for p in writer.queued]
    assert max(sizes) == PIECE and sum(sizes) == len(
        encode_record({"req": "comm", "buffers": [b"\0" * (3 * PIECE + 5)]})
    )


def test_a_pipe_the_worker_closed_drops_the_record() -> None:
    r, w = os.pipe()
    os.close(r)
    try:
        writer = FakePipeWriter(w)
        PipeFeeder(writer).write(record_parts({"req": "complete"}))
        assert writer.queued == [] and writer.producer is None
    finally:
        os.close(w)
