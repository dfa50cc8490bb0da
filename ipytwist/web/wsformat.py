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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from itertools import pairwise
from typing import Any

from ..kernel.envelope import LARGE_MESSAGE_BYTES
from ..kernel.outputlog import Envelope, Gap
from ..kernel.payload import MessageParts, Pieces, message_parts
from ..wire import MAX_JSON_DEPTH, BadJSON, Message, dumps, dumps_strings, loads_untrusted

#: A legacy frame is one JSON object around the message parts: one level more.
ENVELOPE_DEPTH = MAX_JSON_DEPTH + 1

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
CHANNELS = ("shell", "control", "stdin", "iopub")


class FrameError(ValueError):
    """A WebSocket message that is not a well-formed kernel message."""


def encode_legacy(msg: Message, channel: str) -> tuple[bytes, bool]:
    """``(payload, is_binary)`` for the legacy JSON protocol."""
    if msg.get("buffers"):
        payload, binary = legacy_payload(msg, message_parts(msg, large=False), channel)
        return payload.join(), binary
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
    # Stream output is most of a flood, and holds strings only.
    encode = dumps_strings if body["msg_type"] == "stream" else dumps
    return encode(body), False


def legacy_payload(msg: Message, parts: MessageParts, channel: str) -> tuple[Pieces, bool]:
    """``msg`` in the legacy protocol, as pieces made from its ``parts``: the same JSON
    object as :func:`encode_legacy` writes, then its buffers (if any) in a binary frame."""
    header = msg["header"]
    opening = b",".join(
        (
            b'{"header":' + parts.header,
            b'"msg_id":' + dumps(header.get("msg_id", "")),
            b'"msg_type":' + dumps(header.get("msg_type", "")),
            b'"parent_header":' + parts.parent_header,
            b'"metadata":',
        )
    )
    closing = (b"," if parts.buffers else b',"buffers":[],') + b'"channel":' + dumps(channel)
    body = Pieces([opening, parts.metadata, b',"content":', parts.content, closing + b"}"])
    if not parts.buffers:
        return body, False
    sizes = [body.size, *map(len, parts.buffers)]
    offsets = [4 * (len(sizes) + 1)]
    for size in sizes[:-1]:
        offsets.append(offsets[-1] + size)
    head = struct.pack(f"!{len(sizes) + 1}I", len(sizes), *offsets)
    return Pieces([head, body, *parts.buffers]), True


def encode_v1(msg: Message, channel: str) -> bytes:
    """The payload of ``msg`` on ``channel`` in the v1 binary protocol."""
    return v1_payload(message_parts(msg, large=False), channel).join()


def v1_payload(parts: MessageParts, channel: str) -> Pieces:
    """A message in the v1 binary protocol, as pieces made from its ``parts``."""
    chan = channel.encode()
    sizes = [len(chan), len(parts.header), len(parts.parent_header)]
    sizes += [parts.metadata.size, parts.content.size, *map(len, parts.buffers)]
    offsets = [8 * (len(sizes) + 2)]
    for size in sizes:
        offsets.append(offsets[-1] + size)
    head = struct.pack(f"<{len(offsets) + 1}Q", len(offsets), *offsets)
    start = head + chan + parts.header + parts.parent_header
    return Pieces([start, parts.metadata, parts.content, *parts.buffers])


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


#: Largest fragment of a large message.  A larger fragment would make a ping wait
#: longer for the end of the frame before it; a smaller one would cost clients that
#: gather fragments by appending them one to another (websocket-client) quadratic time.
FRAGMENT_BYTES = 1 << 20
#: What a write ends: the middle of a frame, a frame (the transport's own frames may
#: follow it), or the message.
MID_FRAME, FRAME_END, MESSAGE_END = 0, 1, 2
#: A message's writes, each as byte strings written back to back (a frame's header, then
#: its payload: a large payload is never copied to put a header in front of it), with
#: what it ends.
Writes = Iterator[tuple[tuple[bytes, ...], int]]


def _head(opcode: int, fin: bool, n: int) -> bytes:
    b0 = (0x80 if fin else 0) | opcode
    if n <= 125:
        return struct.pack("!BB", b0, n)
    if n <= 0xFFFF:
        return struct.pack("!BBH", b0, 126, n)
    return struct.pack("!BBQ", b0, 127, n)


def ws_frame(payload: bytes, is_binary: bool) -> bytes:
    """One complete, unmasked, unfragmented WebSocket frame (server to client).

    Server frames carry no mask, so the bytes are the same for every
    connection: an iopub message is framed once and written as is to all.
    """
    return _head(0x2 if is_binary else 0x1, True, len(payload)) + payload


def ws_fragments(
    chunks: Iterable[bytes], size: int, is_binary: bool, fragment: int = FRAGMENT_BYTES
) -> Writes:
    """A payload of ``size`` bytes, given in ``chunks``, as one fragmented WebSocket
    message (RFC 6455 5.4): frames of at most ``fragment`` bytes, written a chunk at a
    time.  The transport's own frames (ping, pong, close) may go between two
    fragments, so a ping never waits for the whole of a large message."""
    opcode = 0x2 if is_binary else 0x1
    left, in_frame = size, 0
    for chunk in chunks:
        while chunk:
            head = b""
            if not in_frame:
                in_frame = min(fragment, left)
                head = _head(opcode, in_frame == left, in_frame)
                opcode = 0x0
            piece, chunk = chunk[:in_frame], chunk[in_frame:]
            in_frame -= len(piece)
            left -= len(piece)
            ends = MESSAGE_END if not left else FRAME_END if not in_frame else MID_FRAME
            yield ((head, piece) if head else (piece,)), ends
    if left or not size:
        assert not left, f"a payload of {size} bytes came short by {left}"
        yield (_head(opcode, True, 0),), MESSAGE_END


def framed(frame: bytes, chunk: int) -> bytes | Writes:
    """A message framed whole by :func:`ws_frame`: written as it is when it fits in
    ``chunk`` bytes (most messages), else in slices of ``chunk`` bytes."""
    if len(frame) <= chunk:
        return frame
    return _slices(frame, chunk)


def _slices(frame: bytes, chunk: int) -> Writes:
    for i in range(0, len(frame), chunk):
        yield (frame[i : i + chunk],), MESSAGE_END if i + chunk >= len(frame) else MID_FRAME


def legacy_frame(msg: Message, channel: str) -> bytes:
    """``msg`` on ``channel`` as one legacy WebSocket frame."""
    return ws_frame(*encode_legacy(msg, channel))


def v1_frame(msg: Message, channel: str) -> bytes:
    """``msg`` on ``channel`` as one ``v1.kernel.websocket.jupyter.org`` frame."""
    return ws_frame(encode_v1(msg, channel), True)


def text_frame(msg: Message, channel: str) -> bytes:
    """``msg`` as one legacy text frame, its binary buffers left out: for jupyter_server's
    gateway client, which reads every frame as UTF-8 text (a binary one, that is any
    message with buffers, ends its connection to the gateway)."""
    return legacy_frame({**msg, "buffers": []} if msg.get("buffers") else msg, channel)


class WireFramer:
    """One wire format's frames for the connections of one kernel: each iopub message
    is framed once and the bytes are kept on its envelope, shared by every connection
    of that format; the notice standing for a gap is made by ``notice``.

    A large message (see :data:`~ipytwist.kernel.envelope.LARGE_MESSAGE_BYTES`) is
    not framed ahead: it is written as fragments, made a chunk at a time as a
    connection writes them, from the JSON pieces its envelope keeps for every
    format."""

    def __init__(self, form: str, notice: Callable[[Gap], Message]) -> None:
        self.v1 = form == "v1"
        self.text = form == "text"
        self.frame = {"v1": v1_frame, "text": text_frame}.get(form, legacy_frame)
        self.key = f"ws-{form}-frame"
        self.notice = notice

    def iopub(self, envelope: Envelope, chunk: int) -> bytes | Writes:
        """An iopub message's frame (or frames), made on first use."""
        if envelope.large:
            return self._pieces(envelope.msg, envelope.parts(), "iopub", chunk)
        data: bytes = envelope.encoded(self.key, self._iopub)
        return framed(data, chunk)

    def _iopub(self, msg: Message) -> bytes:
        return self.frame(msg, "iopub")

    def _pieces(self, msg: Message, parts: MessageParts, channel: str, chunk: int) -> Writes:
        if self.v1:
            payload, binary = v1_payload(parts, channel), True
        elif self.text:
            payload, binary = legacy_payload(msg, replace(parts, buffers=[]), channel)
        else:
            payload, binary = legacy_payload(msg, parts, channel)
        return ws_fragments(payload.chunks(chunk), payload.size, binary)

    def reply(self, channel: str, msg: Message, nbytes: int, chunk: int) -> bytes | Writes:
        """A reply's (or input request's) frames; ``nbytes`` is its output bytes."""
        if nbytes >= LARGE_MESSAGE_BYTES:
            return self._pieces(msg, message_parts(msg), channel, chunk)
        return framed(self.frame(msg, channel), chunk)

    def gap(self, gap: Gap, chunk: int) -> bytes | Writes:
        """The frame of the notice that stands for what a reader missed."""
        return framed(self.frame(self.notice(gap), "iopub"), chunk)


class Framers:
    """The framers of one kernel's connections, one for each wire format."""

    def __init__(self, notice: Callable[[Gap], Message]) -> None:
        self._by_form = {form: WireFramer(form, notice) for form in ("legacy", "v1", "text")}

    def of(self, v1: bool, origin: str) -> WireFramer:
        """A connection's framer: v1 if it chose it, text frames for a gateway client."""
        return self._by_form["v1" if v1 else "text" if origin == "gateway" else "legacy"]
