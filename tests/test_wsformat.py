"""WebSocket kernel message formats: round trips, jupyter_server compatibility, bad input."""

from __future__ import annotations

import json
import struct
import tracemalloc
from typing import Any

import pytest
from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)

from ipytwist.web.wsformat import (
    V1_PROTOCOL,
    FrameError,
    decode_legacy,
    decode_v1,
    encode_legacy,
    encode_v1,
)
from ipytwist.wire import MAX_JSON_DEPTH, new_message

BUFFERS = [b"\x00\x01\x02", b"", b"binary \xff payload"]


def request(msg_type: str = "execute_request", buffers: list[bytes] | None = None) -> Any:
    parent = new_message("kernel_info_request", {}, "client-session")
    return new_message(
        msg_type,
        {"code": "print('h\u00e9llo')", "silent": False},
        "client-session",
        parent=parent,
        metadata={"cellId": "c1"},
        buffers=buffers,
    )


def same_message(decoded: Any, msg: Any, channel: str) -> None:
    assert decoded["channel"] == channel
    for key in ("header", "parent_header", "metadata", "content"):
        assert decoded[key] == msg[key], key
    assert decoded["msg_type"] == msg["header"]["msg_type"]
    assert decoded["msg_id"] == msg["header"]["msg_id"]
    assert [bytes(b) for b in decoded["buffers"]] == [bytes(b) for b in msg["buffers"]]


def test_v1_protocol_name() -> None:
    """The subprotocol name is the one JupyterLab offers."""
    assert V1_PROTOCOL == "v1.kernel.websocket.jupyter.org"


@pytest.mark.parametrize("channel", ["shell", "control", "stdin"])
def test_legacy_text_round_trip(channel: str) -> None:
    """A message without buffers is a legacy text frame of JSON that decodes to the same
    message on the same channel."""
    msg = request()
    payload, binary = encode_legacy(msg, channel)
    assert binary is False
    body = json.loads(payload)
    assert body["channel"] == channel and body["buffers"] == []
    same_message(decode_legacy(payload, False), msg, channel)


def test_legacy_binary_round_trip_with_buffers() -> None:
    """A message with buffers is a binary frame (big-endian count + offsets, JSON, buffers)
    that decodes to the same message and buffers."""
    msg = request(buffers=BUFFERS)
    payload, binary = encode_legacy(msg, "shell")
    assert binary is True
    (n,) = struct.unpack_from("!I", payload)
    assert n == 1 + len(BUFFERS)
    same_message(decode_legacy(payload, True), msg, "shell")


def test_v1_round_trip_with_and_without_buffers() -> None:
    """v1 frames decode to the same message, with or without buffers."""
    for buffers in (None, BUFFERS):
        msg = request(buffers=buffers)
        payload = encode_v1(msg, "control")
        same_message(decode_v1(payload), msg, "control")


def test_legacy_binary_matches_jupyter_server() -> None:
    """Our legacy binary frames read with jupyter_server's deserialize_binary_message, and
    frames from its serialize_binary_message decode with ours."""
    msg = request(buffers=BUFFERS)
    payload, _ = encode_legacy(msg, "iopub")
    theirs = deserialize_binary_message(payload)
    assert theirs["channel"] == "iopub"
    assert theirs["content"] == msg["content"]
    assert theirs["header"]["msg_id"] == msg["header"]["msg_id"]
    assert [bytes(b) for b in theirs["buffers"]] == BUFFERS

    outgoing = {k: msg[k] for k in ("header", "parent_header", "metadata", "content")}
    outgoing["channel"] = "shell"
    outgoing["buffers"] = BUFFERS
    same_message(decode_legacy(serialize_binary_message(outgoing), True), msg, "shell")


def test_v1_matches_jupyter_server() -> None:
    """Our v1 frames read with jupyter_server's deserialize_msg_from_ws_v1 (channel, four
    JSON parts, buffers), and its serialize_msg_to_ws_v1 frames decode with ours."""
    msg = request(buffers=BUFFERS)
    channel, parts = deserialize_msg_from_ws_v1(encode_v1(msg, "iopub"))
    assert channel == "iopub"
    assert [json.loads(p) for p in parts[:4]] == [
        msg["header"],
        msg["parent_header"],
        msg["metadata"],
        msg["content"],
    ]
    assert parts[4:] == BUFFERS

    packed = [
        json.dumps(msg[k]).encode() for k in ("header", "parent_header", "metadata", "content")
    ]
    same_message(decode_v1(serialize_msg_to_ws_v1(packed + BUFFERS, "shell")), msg, "shell")
    plain = request()
    frame = serialize_msg_to_ws_v1(plain, "stdin", pack=lambda o: json.dumps(o).encode())
    same_message(decode_v1(frame), plain, "stdin")


def test_decode_accepts_missing_optional_parts() -> None:
    """parent_header, metadata and content may be absent or null: they become {}."""
    header = request()["header"]
    payload = json.dumps({"channel": "shell", "header": header, "parent_header": None})
    msg = decode_legacy(payload.encode(), False)
    assert msg["parent_header"] == {} and msg["metadata"] == {} and msg["content"] == {}
    assert msg["buffers"] == []


def _text(obj: Any) -> bytes:
    return json.dumps(obj).encode()


GOOD = request()
BAD_TEXT = [
    b"",
    b"not json",
    b"\xff\xfe",
    b"[1, 2]",
    b'"string"',
    b"null",
    b"[" * 100_000,
    _text({"channel": "shell"}),
    _text({"channel": "shell", "header": "h"}),
    _text({"channel": "shell", "header": {"msg_id": "x"}}),
    _text({"channel": "shell", "header": {"msg_type": 5}}),
    _text({**GOOD, "channel": "shell", "content": [1]}),
    _text({**GOOD, "channel": "shell", "metadata": "m"}),
    _text({**GOOD, "channel": "shell", "parent_header": 3}),
    _text({**GOOD, "channel": "bogus"}),
    _text({**GOOD, "channel": "iopub"}),  # clients do not publish
    _text({**GOOD, "channel": ["shell"]}),
    _text({k: v for k, v in GOOD.items() if k != "buffers"}),  # no channel at all
    _text({**GOOD, "channel": "shell", "header": {**GOOD["header"], "msg_id": [1]}}),
    _text({**GOOD, "channel": "shell", "header": {**GOOD["header"], "msg_id": None}}),
    _text({**GOOD, "channel": "shell"})[:-1] + b', "x": ' + b"[" * 101 + b"]" * 101 + b"}",
]


@pytest.mark.parametrize("payload", BAD_TEXT, ids=range(len(BAD_TEXT)))
def test_malformed_legacy_text_raises_frame_error(payload: bytes) -> None:
    """Malformed legacy text frames raise FrameError (a ValueError), nothing else."""
    with pytest.raises(FrameError):
        decode_legacy(payload, False)


def _legacy_binary(json_part: bytes, *buffers: bytes) -> bytes:
    parts = [json_part, *buffers]
    offsets = [4 * (len(parts) + 1)]
    for p in parts[:-1]:
        offsets.append(offsets[-1] + len(p))
    return struct.pack(f"!{len(parts) + 1}I", len(parts), *offsets) + b"".join(parts)


BAD_BINARY = [
    b"",
    b"\x00\x00",
    struct.pack("!I", 0),
    struct.pack("!I", 0xFFFFFFFF) + b"x" * 64,
    struct.pack("!I", 3) + b"\x00" * 4,  # offsets cut short
    struct.pack("!2I", 1, 1000) + b"{}",  # offset past the end
    _legacy_binary(b"not json", b"buf"),
    _legacy_binary(b"[" * 100_000),
    _legacy_binary(_text({**GOOD, "channel": "nowhere"}), b"buf"),
    _legacy_binary(_text({"channel": "shell", "header": None}), b"buf"),
    struct.pack("!3I", 2, 4, 14) + b"{}" + b"x" * 10,  # the JSON part starts in the table
]


@pytest.mark.parametrize("payload", BAD_BINARY, ids=range(len(BAD_BINARY)))
def test_malformed_legacy_binary_raises_frame_error(payload: bytes) -> None:
    """Malformed legacy binary frames raise FrameError."""
    with pytest.raises(FrameError):
        decode_legacy(payload, True)


def _v1(channel: bytes, *parts: bytes) -> bytes:
    offsets = [8 * (2 + len(parts) + 1)]
    offsets.append(offsets[-1] + len(channel))
    for p in parts:
        offsets.append(offsets[-1] + len(p))
    return struct.pack(f"<{len(offsets) + 1}Q", len(offsets), *offsets) + channel + b"".join(parts)


_H = _text(GOOD["header"])
BAD_V1 = [
    b"",
    b"\x01" * 7,
    struct.pack("<Q", 5) + b"\x00" * 40,  # too few offsets for four parts
    struct.pack("<Q", 1 << 40),
    struct.pack("<Q", 6) + b"\x00" * 16,  # offsets cut short
    struct.pack("<7Q", 6, 56, 61, 70, 60, 80, 90) + b"x" * 40,  # not ascending
    struct.pack("<7Q", 6, 56, 61, 63, 65, 67, 10**12),  # past the end
    struct.pack("<7Q", 6, 8, 61, 63, 65, 67, 69) + b"x" * 13,  # the channel starts in the table
    _v1(b"\xff\xfe", _H, b"{}", b"{}", b"{}"),  # channel not UTF-8
    _v1(b"shell", b"not json", b"{}", b"{}", b"{}"),
    _v1(b"shell", b"[" * 100_000, b"{}", b"{}", b"{}"),
    _v1(b"shell", b"[1]", b"{}", b"{}", b"{}"),
    _v1(b"shell", _H, b"{}", b"{}", b"[]"),
    _v1(b"iopub", _H, b"{}", b"{}", b"{}"),
    _v1(b"nowhere", _H, b"{}", b"{}", b"{}"),
]


@pytest.mark.parametrize("payload", BAD_V1, ids=range(len(BAD_V1)))
def test_malformed_v1_raises_frame_error(payload: bytes) -> None:
    """Malformed v1 frames raise FrameError."""
    with pytest.raises(FrameError):
        decode_v1(payload)


def test_helper_frames_are_valid() -> None:
    """The builders used for the bad-input cases make valid frames when given valid parts,
    so each bad case fails for the reason it names."""
    assert decode_v1(_v1(b"shell", _H, b"{}", b"{}", b"{}"))["msg_type"] == "execute_request"
    good = _text({**GOOD, "channel": "shell", "buffers": None})
    assert decode_legacy(_legacy_binary(good, b"buf"), True)["buffers"] == [b"buf"]
    assert issubclass(FrameError, ValueError)


def test_nesting_up_to_the_limit_is_accepted_and_past_it_refused() -> None:
    """Parts nested MAX_JSON_DEPTH deep decode, one level more is a FrameError in both
    formats (the kernel could not encode the reply's parent_header again)."""
    for depth, ok in ((MAX_JSON_DEPTH, True), (MAX_JSON_DEPTH + 1, False)):
        deep: Any = []
        for _ in range(depth - 2):
            deep = [deep]
        msg = request()
        msg["content"] = {"deep": deep}
        legacy = _text({**msg, "channel": "shell"})
        v1 = serialize_msg_to_ws_v1(msg, "shell", pack=lambda o: json.dumps(o).encode())
        for decoded in (lambda: decode_legacy(legacy, False), lambda: decode_v1(v1)):  # noqa: B023
            if ok:
                assert decoded()["content"] == {"deep": deep}
            else:
                with pytest.raises(FrameError, match="nested"):
                    decoded()


def _back_and_forth(size: int, n: int, v1: bool) -> bytes:
    """A frame of about ``size`` bytes whose ``n`` offsets go back and forth between the
    end of its first part and the end of the frame: every other part would be a copy
    of almost the whole frame."""
    width, fmt = (8, "<Q") if v1 else (4, "!I")
    table = width * (n + 1)
    first = b"shell" if v1 else _text({**GOOD, "channel": "shell"})
    end = max(size, table + len(first))
    offsets = [table] + [table + len(first) if i % 2 else end for i in range(1, n)]
    head = struct.pack(fmt[0] + f"{n + 1}" + fmt[1], n, *offsets)
    return head + first + b"x" * (end - table - len(first))


@pytest.mark.parametrize("v1", [False, True], ids=["legacy", "v1"])
def test_offsets_that_go_back_are_refused_before_any_copy(v1: bool) -> None:
    """Issue 16: offsets going back and forth made every other buffer a copy of the
    frame (a 99 KiB legacy frame cost 294 MB).  Such a frame is a FrameError, and
    decoding it allocates less than twice its size."""
    frame = _back_and_forth(100 << 10, 2000, v1)
    tracemalloc.start()
    try:
        with pytest.raises(FrameError, match="bad offsets"):
            decode_v1(frame) if v1 else decode_legacy(frame, True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * len(frame), (peak, len(frame))


#: What decoding a frame may allocate, at most, per byte of the frame: its parts are
#: copied once, and each buffer costs a Python object (65,536 buffers of 2 bytes are
#: the worst case: about 15 times their frame).
FRAME_COST = 16


@pytest.mark.parametrize(
    "shape", ["one 8 MiB buffer", "65,535 buffers of 2 bytes", "65,535 empty buffers"]
)
def test_a_valid_frame_costs_a_small_constant_times_its_size(shape: str) -> None:
    """Decoding a legacy binary frame allocates at most FRAME_COST times its size,
    whatever its buffers."""
    good = _text({**GOOD, "channel": "shell", "buffers": None})
    buffers = {
        "one 8 MiB buffer": [b"x" * (8 << 20)],
        "65,535 buffers of 2 bytes": [b"xy"] * 65_535,
        "65,535 empty buffers": [b""] * 65_535,
    }[shape]
    frame = _legacy_binary(good, *buffers)
    tracemalloc.start()
    try:
        msg = decode_legacy(frame, True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert msg["buffers"] == buffers
    assert peak < FRAME_COST * len(frame), (peak, len(frame))
