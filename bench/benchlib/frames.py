"""Kernel messages in WebSocket frames, built and read independently of ipytwist's own
encoders: the v1 subprotocol, legacy binary frames, and raw client frames."""

from __future__ import annotations

import json
import os
import struct
from typing import Any


def pack_v1(msg: dict[str, Any], channel: str) -> bytes:
    """The v1 subprotocol frame of ``msg`` on ``channel``."""
    parts = [
        json.dumps(msg[k]).encode() for k in ("header", "parent_header", "metadata", "content")
    ]
    parts += [bytes(b) for b in msg.get("buffers") or []]
    chan = channel.encode()
    offsets = [8 * (1 + 1 + len(parts) + 1)]
    offsets.append(offsets[-1] + len(chan))
    for p in parts:
        offsets.append(offsets[-1] + len(p))
    head = len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return head + chan + b"".join(parts)


def unpack_v1(data: bytes) -> dict[str, Any]:
    n = int.from_bytes(data[:8], "little")
    offsets = [int.from_bytes(data[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(n)]
    channel = data[offsets[0] : offsets[1]].decode()
    parts = [data[offsets[i] : offsets[i + 1]] for i in range(1, n - 1)]
    header, parent, metadata, content = (json.loads(p) for p in parts[:4])
    return {
        "channel": channel,
        "header": header,
        "parent_header": parent,
        "metadata": metadata,
        "content": content,
        "buffers": parts[4:],
        "msg_type": header["msg_type"],
    }


def unpack_legacy_binary(data: bytes) -> dict[str, Any]:
    """A legacy binary frame: big-endian count and offsets, the JSON, then buffers."""
    (n,) = struct.unpack_from("!I", data, 0)
    offsets = list(struct.unpack_from(f"!{n}I", data, 4)) + [len(data)]
    parts = [data[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    msg = json.loads(parts[0])
    msg["buffers"] = parts[1:]
    return msg


def decode_legacy(raw: str | bytes) -> dict[str, Any]:
    """A message of the legacy protocol, from a text or a binary frame."""
    msg = json.loads(raw) if isinstance(raw, str) else unpack_legacy_binary(raw)
    msg.setdefault("msg_type", msg["header"]["msg_type"])
    return msg


def client_frame(
    payload: bytes, opcode: int = 0x1, *, fin: bool = True, rsv: int = 0, mask: bool = True
) -> bytes:
    """One client frame, built by hand: masked as RFC 6455 requires of clients, unless
    told to break that or another of its rules."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    n = len(payload)
    if n < 126:
        length = bytes([n])
    elif n < 1 << 16:
        length = bytes([126]) + struct.pack("!H", n)
    else:
        length = bytes([127]) + struct.pack("!Q", n)
    if not mask:
        return head + length + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + bytes([length[0] | 0x80]) + length[1:] + key + masked
