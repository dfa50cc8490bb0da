"""Hostile frames for a kernel WebSocket."""

from __future__ import annotations

import struct
from typing import Any

import websocket
from benchlib.frames import pack_v1
from benchlib.messages import make_message

from support.zmq_client import dumps

from .hostile import CHANNEL_TYPES, MARKER, Hostile, Pool, deep_json, hostile_depth, huge_int_json


class WsFuzzer:
    """Hostile frames for a kernel WebSocket: ``(opcode, payload)`` pairs that are
    well-formed WebSocket frames carrying anything but a well-formed kernel message."""

    KINDS = {
        "garbage-text": 8,
        "almost-json": 8,
        "json-not-object": 5,
        "wrong-channel": 8,
        "bad-header": 8,
        "bad-parts": 6,
        "hostile-content": 14,
        "deep": 4,
        "huge-int": 3,
        "legacy-binary": 8,
        "v1-binary": 10,
        "empty": 2,
        "big": 1,
    }

    def __init__(self, pool: Pool, session: str) -> None:
        self.h = Hostile(pool)
        self.rnd = pool.rnd
        self.pool = pool
        self.session = session
        self._kinds = list(self.KINDS)
        self._weights = list(self.KINDS.values())

    def frame(self) -> tuple[str, int, bytes]:
        """``(kind, opcode, payload)``."""
        kind = self.rnd.choices(self._kinds, self._weights)[0]
        opcode, payload = getattr(self, "_" + kind.replace("-", "_"))()
        return kind, opcode, payload

    def message(self, channel: str | None = None) -> dict[str, Any]:
        channel = channel or self.rnd.choice(("shell", "shell", "control", "stdin"))
        msg_type = self.rnd.choice(CHANNEL_TYPES[channel])
        msg = make_message(msg_type, self.h.content(msg_type), self.session)
        msg["header"] = self.h.header(msg_type, self.session)
        msg["channel"] = channel
        return msg

    def _text(self, value: Any) -> tuple[int, bytes]:
        return websocket.ABNF.OPCODE_TEXT, dumps(value)

    def _garbage_text(self) -> tuple[int, bytes]:
        text = self.h.text() + MARKER + self.h.text()
        return websocket.ABNF.OPCODE_TEXT, text.encode("utf-8", "replace")

    def _almost_json(self) -> tuple[int, bytes]:
        raw = dumps(self.message())
        i = self.rnd.randrange(len(raw))
        cut = self.rnd.choice((raw[:i], raw[:i] + raw[i + 1 :], raw[:i] + b"\x00" + raw[i:]))
        return websocket.ABNF.OPCODE_TEXT, cut

    def _json_not_object(self) -> tuple[int, bytes]:
        return self._text(self.h.not_a_dict())

    def _wrong_channel(self) -> tuple[int, bytes]:
        msg = self.message()
        msg["channel"] = self.rnd.choice(("iopub", "hb", "", "SHELL", None, 5, ["shell"], "x" * 40))
        if self.rnd.random() < 0.3:
            del msg["channel"]
        return self._text(msg)

    def _bad_header(self) -> tuple[int, bytes]:
        msg = self.message()
        choice = self.rnd.randrange(5)
        if choice == 0:
            msg["header"] = self.h.not_a_dict()
        elif choice == 1:
            msg["header"]["msg_type"] = self.h.non_string()
        elif choice == 2:
            msg["header"]["msg_id"] = self.rnd.choice((self.h.non_string(), [1], {"a": 1}))
        elif choice == 3:
            del msg["header"]["msg_id"]
        else:
            del msg["header"]
        return self._text(msg)

    def _bad_parts(self) -> tuple[int, bytes]:
        msg = self.message()
        msg[self.rnd.choice(("parent_header", "metadata", "content"))] = self.h.not_a_dict()
        return self._text(msg)

    def _hostile_content(self) -> tuple[int, bytes]:
        msg = self.message()
        if self.rnd.random() < 0.3:
            msg["msg_id"], msg["msg_type"] = self.h.value(), self.h.value()
        return self._text(msg)

    def _deep(self) -> tuple[int, bytes]:
        raw = dumps(self.message())
        deep = deep_json(hostile_depth(self.rnd))
        return websocket.ABNF.OPCODE_TEXT, raw[:-1] + b', "deep": ' + deep + b"}"

    def _huge_int(self) -> tuple[int, bytes]:
        raw = dumps(self.message())
        big = huge_int_json(self.rnd.choice((400, 4000, 5000, 20000)))
        return websocket.ABNF.OPCODE_TEXT, raw[:-1] + b', "n": ' + big + b"}"

    def _legacy_binary(self) -> tuple[int, bytes]:
        """Big-endian count and offsets, then JSON and buffers; the table is bogus."""
        body = dumps(self.message())
        buffers = [self._blob() for _ in range(self.rnd.randrange(3))]
        parts = [body, *buffers]
        n = len(parts)
        offsets = [4 * (n + 1)]
        for p in parts[:-1]:
            offsets.append(offsets[-1] + len(p))
        mangle = self.rnd.randrange(7)
        if mangle == 0:
            n = self.rnd.choice((0, 2**16 + 1, 2**32 - 1))
        elif mangle == 1:
            offsets[-1] = self.rnd.choice((2**32 - 1, 0, 3))
        elif mangle == 2:
            offsets.reverse()
        elif mangle == 3:
            offsets[0] += self.rnd.randrange(1, 8)
        elif mangle == 4:
            parts[0] = self._blob()
        elif mangle == 5:
            return websocket.ABNF.OPCODE_BINARY, self._blob()[:3]
        head = struct.pack("!I", n) + b"".join(struct.pack("!I", o & 0xFFFFFFFF) for o in offsets)
        return websocket.ABNF.OPCODE_BINARY, head + b"".join(parts)

    def _v1_binary(self) -> tuple[int, bytes]:
        """Little-endian uint64 count and offsets, channel, four JSON parts, buffers."""
        msg = self.message()
        msg["buffers"] = [self._blob() for _ in range(self.rnd.randrange(3))]
        data = bytearray(pack_v1(msg, msg["channel"]))
        n = int.from_bytes(data[:8], "little")
        mangle = self.rnd.randrange(8)
        if mangle == 0:
            data[:8] = self.rnd.choice((0, 1, 5, 2**16 + 1, 2**63, 2**64 - 1)).to_bytes(8, "little")
        elif mangle == 1:  # an offset past the end, or backwards
            i = self.rnd.randrange(1, n + 1)
            value = self.rnd.choice((len(data) + 1, 2**63, 0))
            data[8 * i : 8 * i + 8] = value.to_bytes(8, "little")
        elif mangle == 2:  # offsets that cut the JSON parts in the wrong places
            i = self.rnd.randrange(2, n + 1)
            old = int.from_bytes(data[8 * i : 8 * i + 8], "little")
            data[8 * i : 8 * i + 8] = max(0, old - self.rnd.randrange(1, 4)).to_bytes(8, "little")
        elif mangle == 3:
            return websocket.ABNF.OPCODE_BINARY, bytes(data[: self.rnd.randrange(len(data))])
        elif mangle == 4:
            return websocket.ABNF.OPCODE_BINARY, self._blob()
        elif mangle == 5:  # a channel name that is not UTF-8
            raw = pack_v1(msg, "shell").replace(b"shell", b"\xffshe", 1)
            return websocket.ABNF.OPCODE_BINARY, raw
        elif mangle == 6:  # a well-formed frame in the other format
            return self._legacy_binary()
        return websocket.ABNF.OPCODE_BINARY, bytes(data)

    def _blob(self) -> bytes:
        return self.rnd.choice(self.pool.blobs) + MARKER.encode()

    def _empty(self) -> tuple[int, bytes]:
        return self.rnd.choice((websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY)), b""

    def _big(self) -> tuple[int, bytes]:
        return websocket.ABNF.OPCODE_TEXT, (MARKER * self.rnd.randrange(1_000, 30_000)).encode()
