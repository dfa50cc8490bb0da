"""Large messages as JSON pieces and WebSocket fragments: the same bytes as the whole
encodings, in bounded slices, without an encoding kept per format (no I/O)."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from ipytwist.kernel.envelope import LARGE_MESSAGE_BYTES, MESSAGE_OVERHEAD
from ipytwist.kernel.outputlog import OutputLog
from ipytwist.kernel.payload import LARGE_STRING, BigText, json_pieces, message_parts
from ipytwist.web.wsformat import (
    FRAGMENT_BYTES,
    MESSAGE_END,
    MID_FRAME,
    WireFramer,
    Writes,
    encode_legacy,
    encode_v1,
    framed,
    legacy_payload,
    v1_payload,
    ws_fragments,
    ws_frame,
)
from ipytwist.wire import dumps, new_message

MIB = 1 << 20
BIG = LARGE_STRING * 3 + 7
STRINGS = {
    "base64": "QUJD+/9=" * (BIG // 8),
    "escaped": 'a"b\\c\n\x01' * (BIG // 7),
    "unicode": "h\u00e9llo \u4e16\u754c \U0001f600 " * (BIG // 12),
    "surrogates": "ok \udc80 " * (BIG // 5),
}


def message(data: str, buffers: list[bytes] | None = None) -> dict[str, Any]:
    parent = new_message("execute_request", {"code": "x"}, "client")
    content = {"data": {"image/png": data, "text/plain": "<image>"}, "metadata": {}}
    return new_message("display_data", content, "k", parent, {"big": data}, buffers)


def client_frames(data: list[bytes]) -> list[Any]:
    """The frames a client reads from ``data``."""
    protocol = ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN, max_size=None)
    protocol.receive_data(b"".join(data))
    return protocol.events_received()


def client_read(data: list[bytes]) -> tuple[Opcode, bytes]:
    """The one message a client reads from ``data`` (its fragments joined)."""
    events = client_frames(data)
    assert [e.fin for e in events] == [False] * (len(events) - 1) + [True]
    assert all(e.opcode == Opcode.CONT for e in events[1:])
    return events[0].opcode, b"".join(e.data for e in events)


@pytest.mark.parametrize("kind", sorted(STRINGS))
def test_pieces_hold_the_same_json_as_dumps(kind: str) -> None:
    """Whatever a large string holds (base64, escapes, other scripts, lone surrogates),
    its pieces read back to the same value, slice by slice as a whole."""
    value = {"a": [1, {"deep": STRINGS[kind]}], "b": STRINGS[kind][:10], "c": STRINGS[kind]}
    pieces = json_pieces(value)
    assert sum(isinstance(p, BigText) for p in pieces.items) == 2
    whole = bytes(pieces.fill())
    assert len(whole) == pieces.size == len(b"".join(pieces.chunks(1000)))
    assert max(len(c) for c in pieces.chunks(1000)) <= 1000
    assert json.loads(whole) == json.loads(dumps(value))
    if kind != "surrogates":
        assert whole == dumps(value)


def test_small_values_are_one_piece() -> None:
    pieces = json_pieces({"text": "x" * (LARGE_STRING - 1)})
    assert pieces.items == [dumps({"text": "x" * (LARGE_STRING - 1)})]


@pytest.mark.parametrize("buffers", [None, [b"\x00\xff" * 10, b""]])
def test_legacy_and_v1_payloads_from_pieces_are_the_whole_encodings(buffers: Any) -> None:
    """A large message's payloads, made from its shared pieces, are byte for byte what
    the whole encoders write (which jupyter_server's decoders read: test_wsformat)."""
    msg = message(STRINGS["base64"], buffers)
    parts = message_parts(msg)
    legacy, binary = legacy_payload(msg, parts, "iopub")
    assert (bytes(legacy.fill()), binary) == encode_legacy(msg, "iopub")
    assert bytes(v1_payload(parts, "iopub").fill()) == encode_v1(msg, "iopub")


def written(writes: bytes | Writes) -> list[tuple[bytes, int]]:
    """Each write's bytes and what it ends."""
    if isinstance(writes, bytes):
        return [(writes, MESSAGE_END)]
    return [(b"".join(data), ends) for data, ends in writes]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65536, 70_000, FRAGMENT_BYTES, 2_500_000])
def test_fragments_read_as_one_message(size: int) -> None:
    """A payload written as fragments (first frame, continuations, the last with FIN)
    is one message to a client; no write is larger than a chunk (plus a header), no
    frame larger than FRAGMENT_BYTES, and only the last write ends the message."""
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    chunks = [payload[i : i + 65536] for i in range(0, len(payload), 65536)]
    writes = written(ws_fragments(chunks, size, True))
    assert [ends for _, ends in writes][-1] == MESSAGE_END
    assert MESSAGE_END not in [ends for _, ends in writes][:-1]
    assert max(len(data) for data, _ in writes) <= 65536 + 10
    frames = client_frames([data for data, _ in writes])
    assert max(len(f.data) for f in frames) <= FRAGMENT_BYTES
    assert client_read([data for data, _ in writes]) == (Opcode.BINARY, payload)


def test_a_frame_larger_than_the_chunk_is_written_in_slices() -> None:
    """A message framed whole (kept on its envelope) goes out in slices of at most the
    chunk, one frame; one that fits goes out as it is, in one write."""
    payload = b'{"x":"' + b"y" * 200_000 + b'"}'
    frame = ws_frame(payload, False)
    writes = written(framed(frame, 65536))
    assert [ends for _, ends in writes] == [MID_FRAME] * 3 + [MESSAGE_END]
    assert b"".join(data for data, _ in writes) == frame
    assert framed(ws_frame(b"{}", False), 65536) == ws_frame(b"{}", False)


@pytest.mark.parametrize("v1", [False, True])
def test_a_large_iopub_message_is_framed_from_pieces_and_kept_once(v1: bool) -> None:
    """The framer writes a large message's frames from its pieces: the client reads the
    same payload as the whole frame's, and the envelope keeps no encoding per format,
    so the log charges it its strings, its overhead and the small glue between them."""
    log = OutputLog()
    env = log.publish(message("QUJD" * (LARGE_MESSAGE_BYTES // 4)))
    assert env.large
    framer = WireFramer("v1" if v1 else "legacy", lambda gap: {})
    writes = [data for data, _ in written(framer.iopub(env, 65536))]
    assert max(map(len, writes)) <= 65536 + 10
    assert client_read(writes) == client_read([framer.frame(env.msg, "iopub")])
    assert env.cost < env.nbytes + MESSAGE_OVERHEAD + 2048
    assert log.logged_bytes == env.cost


def test_writing_a_large_message_to_many_readers_copies_a_slice_at_a_time() -> None:
    """Three connections of each format write a 24 MiB message: what is allocated at
    once, besides the message, is a few slices (every format framed it whole, with a
    copy to put the header in front, before)."""
    msg = message("QUJD" * (6 * MIB))
    log = OutputLog()
    env = log.publish(msg)
    framers = [WireFramer(form, lambda gap: {}) for form in ("legacy", "v1")]
    tracemalloc.start()
    try:
        streams: list[Any] = [f.iopub(env, 65536) for f in framers for _ in range(3)]
        done = [0] * len(streams)
        while any(s is not None for s in streams):  # round robin, as the reactor does
            for i, stream in enumerate(streams):
                item = next(stream, None) if stream is not None else None
                if item is None:
                    streams[i] = None
                else:
                    done[i] += sum(map(len, item[0]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert min(done) > 2 * 24 * MIB  # (the image's string is in its metadata too)
    assert peak < 2 * MIB, peak
