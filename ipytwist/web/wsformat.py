"""Kernel messages as WebSocket frames (pure functions, no I/O).

Two formats, as Jupyter Server speaks them:

* legacy (no subprotocol): a text frame of JSON with a ``channel`` key; a
  message with buffers is a binary frame: big-endian uint32 count ``n``,
  ``n`` uint32 offsets, the JSON part, then the buffers.
* ``v1.kernel.websocket.jupyter.org``: a binary frame: little-endian uint64
  count ``n``, ``n`` uint64 offsets, the channel name, then header,
  parent_header, metadata, content and the buffers.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from itertools import pairwise
from typing import Any

from ..kernel.outputlog import Envelope, Gap
from ..wire import MAX_JSON_DEPTH, BadJSON, Message, dumps, dumps_strings, loads_untrusted

#: A legacy frame is one JSON object around the message parts: one level more.
ENVELOPE_DEPTH = MAX_JSON_DEPTH + 1

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
CHANNELS = ("shell", "control", "stdin", "iopub")


class FrameError(ValueError):
    """A WebSocket message that is not a well-formed kernel message."""


def encode_legacy(msg: Message, channel: str) -> tuple[bytes, bool]:
    """``(payload, is_binary)`` for the legacy JSON protocol."""
    body = {
        "header": msg["header"],
        "msg_id": msg["header"].get("msg_id", ""),
        "msg_type": msg["header"].get("msg_type", ""),
        "parent_header": msg.get("parent_header") or {},
        "metadata": msg.get("metadata") or {},
        "content": msg.get("content") or {},
        "buffers": [],
        "channel": channel,
    }
    buffers = [bytes(b) for b in msg.get("buffers") or ()]
    if not buffers:
        # Stream output is most of a flood, and holds strings only.
        encode = dumps_strings if body["msg_type"] == "stream" else dumps
        return encode(body), False
    del body["buffers"]
    parts = [dumps(body), *buffers]
    offsets = [4 * (len(parts) + 1)]
    for part in parts[:-1]:
        offsets.append(offsets[-1] + len(part))
    return struct.pack(f"!{len(parts) + 1}I", len(parts), *offsets) + b"".join(parts), True


def encode_v1(msg: Message, channel: str) -> bytes:
    """The payload of ``msg`` on ``channel`` in the v1 binary protocol."""
    parts = [
        dumps(msg["header"]),
        dumps(msg.get("parent_header") or {}),
        dumps(msg.get("metadata") or {}),
        dumps(msg.get("content") or {}),
        *[bytes(b) for b in msg.get("buffers") or ()],
    ]
    chan = channel.encode()
    offsets = [8 * (2 + len(parts) + 1)]
    offsets.append(offsets[-1] + len(chan))
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = struct.pack(f"<{len(offsets) + 1}Q", len(offsets), *offsets)
    return head + chan + b"".join(parts)


def _check(msg: Any, channel: Any) -> Message:
    if channel not in CHANNELS or channel == "iopub":
        raise FrameError(f"unknown channel {str(channel)[:32]!r}")
    if not isinstance(msg, dict):
        raise FrameError("message is not a JSON object")
    header = msg.get("header")
    if not isinstance(header, dict) or not isinstance(header.get("msg_type"), str):
        raise FrameError("header is not an object with a msg_type")
    for key in ("parent_header", "metadata", "content"):
        value = msg.get(key)
        if value is None:
            msg[key] = {}
        elif not isinstance(value, dict):
            raise FrameError(f"{key} is not an object")
    if not isinstance(header.get("msg_id", ""), str):
        raise FrameError("msg_id is not a string")
    msg["msg_type"] = header["msg_type"]
    msg["msg_id"] = header.get("msg_id", "")
    msg["channel"] = channel
    return msg


def _parts(payload: bytes, offsets: list[int], table_end: int) -> list[bytes]:
    """The parts of ``payload`` between consecutive ``offsets``, which must ascend from
    the end of the offset table to at most the end of the payload: the parts then
    never overlap, and together take no more than the payload's own size (offsets
    that went back and forth would copy most of the payload once per part)."""
    if offsets[0] < table_end or offsets[-1] > len(payload):
        raise FrameError("bad offsets")
    if any(a > b for a, b in pairwise(offsets)):
        raise FrameError("bad offsets")
    return [payload[a:b] for a, b in pairwise(offsets)]


def decode_legacy(payload: bytes, is_binary: bool) -> Message:
    """A kernel message from a legacy payload (JSON text, or binary with buffers)."""
    if not is_binary:
        try:
            msg = loads_untrusted(payload, ENVELOPE_DEPTH)
        except BadJSON as e:
            raise FrameError(str(e)) from None
        if isinstance(msg, dict):
            msg["buffers"] = []
        return _check(msg, msg.get("channel") if isinstance(msg, dict) else None)
    try:
        (n,) = struct.unpack_from("!I", payload, 0)
        if not 1 <= n <= 1 << 16:
            raise FrameError("bad buffer count")
        offsets = struct.unpack_from(f"!{n}I", payload, 4)
    except struct.error as e:
        raise FrameError(f"bad binary frame ({type(e).__name__})") from None
    parts = _parts(payload, [*offsets, len(payload)], 4 * (n + 1))
    try:
        msg = loads_untrusted(parts[0], ENVELOPE_DEPTH)
    except BadJSON as e:
        raise FrameError(str(e)) from None
    if isinstance(msg, dict):
        msg["buffers"] = parts[1:]
    return _check(msg, msg.get("channel") if isinstance(msg, dict) else None)


def decode_v1(payload: bytes) -> Message:
    """A kernel message from a v1 binary-protocol payload."""
    try:
        (n,) = struct.unpack_from("<Q", payload, 0)
        if not 6 <= n <= 1 << 16:
            raise FrameError("bad offset count")
        offsets = struct.unpack_from(f"<{n}Q", payload, 8)
    except struct.error as e:
        raise FrameError(f"bad v1 frame ({type(e).__name__})") from None
    chan, *parts = _parts(payload, list(offsets), 8 * (n + 1))
    try:
        channel = chan.decode()
    except UnicodeDecodeError:
        raise FrameError("bad v1 frame (channel is not UTF-8)") from None
    try:
        header, parent, metadata, content = (loads_untrusted(p) for p in parts[:4])
    except BadJSON as e:
        raise FrameError(str(e)) from None
    msg = {
        "header": header,
        "parent_header": parent,
        "metadata": metadata,
        "content": content,
        "buffers": parts[4:],
    }
    return _check(msg, channel)


def ws_frame(payload: bytes, is_binary: bool) -> bytes:
    """One complete, unmasked, unfragmented WebSocket frame (server to client).

    Server frames carry no mask, so the bytes are the same for every
    connection: an iopub message is framed once and written as is to all.
    """
    n = len(payload)
    b0 = 0x82 if is_binary else 0x81
    if n <= 125:
        head = struct.pack("!BB", b0, n)
    elif n <= 0xFFFF:
        head = struct.pack("!BBH", b0, 126, n)
    else:
        head = struct.pack("!BBQ", b0, 127, n)
    return head + payload


def legacy_frame(msg: Message, channel: str) -> bytes:
    """``msg`` on ``channel`` as one legacy WebSocket frame."""
    return ws_frame(*encode_legacy(msg, channel))


def v1_frame(msg: Message, channel: str) -> bytes:
    """``msg`` on ``channel`` as one ``v1.kernel.websocket.jupyter.org`` frame."""
    return ws_frame(encode_v1(msg, channel), True)


class WireFramer:
    """One wire format's frames for the connections of one kernel: each iopub message
    is framed once and the bytes are kept on its envelope, shared by every connection
    of that format; the notice standing for a gap is made by ``notice``."""

    def __init__(self, v1: bool, notice: Callable[[Gap], Message]) -> None:
        self.frame = v1_frame if v1 else legacy_frame
        self.key = "ws-v1-frame" if v1 else "ws-legacy-frame"
        self.notice = notice

    def iopub(self, envelope: Envelope) -> bytes:
        """An iopub message's frame, made on first use."""
        data: bytes = envelope.encoded(self.key, self._iopub)
        return data

    def _iopub(self, msg: Message) -> bytes:
        return self.frame(msg, "iopub")

    def reply(self, channel: str, msg: Message) -> bytes:
        """A reply's (or input request's) frame."""
        return self.frame(msg, channel)

    def gap(self, gap: Gap) -> bytes:
        """The frame of the notice that stands for what a reader missed."""
        return self.frame(self.notice(gap), "iopub")
