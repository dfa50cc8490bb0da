"""Hostile multipart messages for a kernel's ZeroMQ ROUTERs."""

from __future__ import annotations

from collections import deque
from typing import Any

from support.zmq_client import DELIM, ZmqClient, dumps

from .hostile import CHANNEL_TYPES, MARKER, Hostile, Pool, deep_json, hostile_depth, huge_int_json


class ZmqFuzzer:
    """Hostile multipart messages for the shell, control and stdin ROUTERs."""

    KINDS = {  # kind: weight
        "random-frames": 8,
        "no-delimiter": 5,
        "too-few-frames": 5,
        "bad-signature": 8,
        "wrong-key": 6,
        "signature-of-other-frames": 3,
        "replay": 4,
        "unsigned-json": 6,
        "signed-not-json": 5,
        "signed-not-object": 6,
        "signed-bad-header": 8,
        "signed-unknown-type": 8,
        "signed-hostile-content": 12,
        "signed-huge-int": 4,
        "signed-deep": 5,
        "signed-buffers": 3,
        "signed-idents": 3,
        "signed-big": 1,
    }

    def __init__(self, zk: ZmqClient, pool: Pool, replays: deque[list[bytes]]) -> None:
        self.zk = zk
        self.h = Hostile(pool)
        self.rnd = pool.rnd
        self.pool = pool
        self.replays = replays
        self._kinds = list(self.KINDS)
        self._weights = list(self.KINDS.values())

    def message(self) -> tuple[str, str, list[bytes]]:
        """``(channel, kind, frames)``."""
        channel = self.rnd.choice(("shell", "shell", "control", "stdin"))
        kind = self.rnd.choices(self._kinds, self._weights)[0]
        return channel, kind, getattr(self, "_" + kind.replace("-", "_"))(channel)

    # parts: header, parent_header, metadata, content
    def _parts(self, channel: str, msg_type: Any = None) -> list[bytes]:
        if msg_type is None:
            msg_type = self.rnd.choice(CHANNEL_TYPES[channel])
        content = self.h.content(msg_type) if isinstance(msg_type, str) else {}
        parent = self.rnd.choice(({}, {"msg_id": MARKER}, {MARKER: self.h.value()}))
        return [dumps(self.h.header(msg_type)), dumps(parent), dumps({}), dumps(content)]

    def _garbage(self) -> bytes:
        blob = self.rnd.choice(self.pool.blobs)
        return blob + MARKER.encode() + self.rnd.randbytes(self.rnd.randrange(64))

    def _random_frames(self, channel: str) -> list[bytes]:
        frames = [self._garbage() for _ in range(self.rnd.randrange(1, 7))]
        if self.rnd.random() < 0.3:
            frames.insert(self.rnd.randrange(len(frames) + 1), DELIM)
        return frames

    def _no_delimiter(self, channel: str) -> list[bytes]:
        return self.zk.signed(self._parts(channel))[1:]

    def _too_few_frames(self, channel: str) -> list[bytes]:
        return self.zk.signed(self._parts(channel))[: self.rnd.randrange(1, 6)]

    def _bad_signature(self, channel: str) -> list[bytes]:
        parts = self._parts(channel)
        good = self.zk.sign(parts)
        sig = self.rnd.choice(
            (
                b"",
                b"0" * 64,
                good.upper(),
                good[:-1] + (b"0" if good[-1:] != b"0" else b"1"),
                good[:32],
                good + b"00",
                self._garbage(),
            )
        )
        return [DELIM, sig, *parts]

    def _wrong_key(self, channel: str) -> list[bytes]:
        return self.zk.signed(self._parts(channel), key=self.rnd.randbytes(32))

    def _signature_of_other_frames(self, channel: str) -> list[bytes]:
        return [DELIM, self.zk.sign(self._parts(channel)), *self._parts(channel)]

    def _replay(self, channel: str) -> list[bytes]:
        if self.replays:
            return self.rnd.choice(self.replays)
        return self._bad_signature(channel)

    def _unsigned_json(self, channel: str) -> list[bytes]:
        parts = [dumps(self.h.value()) for _ in range(4)]
        return [DELIM, self._garbage(), *parts]

    def _keep(self, frames: list[bytes]) -> list[bytes]:
        self.replays.append(frames)
        return frames

    def _signed_not_json(self, channel: str) -> list[bytes]:
        parts = self._parts(channel)
        parts[self.rnd.randrange(4)] = self.rnd.choice(
            (self._garbage(), b"\xff\xfe" + MARKER.encode(), b"", b"{" + MARKER.encode(), b"NaN]")
        )
        return self._keep(self.zk.signed(parts))

    def _signed_not_object(self, channel: str) -> list[bytes]:
        parts = self._parts(channel)
        parts[self.rnd.randrange(4)] = dumps(self.h.not_a_dict())
        return self._keep(self.zk.signed(parts))

    def _signed_bad_header(self, channel: str) -> list[bytes]:
        header = self.h.header(self.rnd.choice(CHANNEL_TYPES[channel]))
        field_, value = self.rnd.choice(
            (
                ("msg_type", self.h.non_string()),
                ("msg_type", None),
                ("msg_id", self.h.non_string()),
                ("session", self.h.value()),
                ("date", self.h.value()),
            )
        )
        if value is None:
            header.pop(field_, None)
        else:
            header[field_] = value
        parts = self._parts(channel)
        parts[0] = dumps(header)
        return self._keep(self.zk.signed(parts))

    def _signed_unknown_type(self, channel: str) -> list[bytes]:
        word = "".join(self.rnd.choices("abcdefghijklmnopqrstuvwxyz_", k=self.rnd.randrange(1, 30)))
        msg_type = self.rnd.choice((word, word + "_request", word + "_reply", "", "x" * 1000))
        return self._keep(self.zk.signed(self._parts(channel, msg_type)))

    def _signed_hostile_content(self, channel: str) -> list[bytes]:
        return self._keep(self.zk.signed(self._parts(channel)))

    def _signed_huge_int(self, channel: str) -> list[bytes]:
        parts = self._parts(channel, "kernel_info_request")
        parts[self.rnd.randrange(4)] = huge_int_json(self.rnd.choice((20, 400, 4000, 5000, 20000)))
        return self._keep(self.zk.signed(parts))

    def _signed_deep(self, channel: str) -> list[bytes]:
        parts = self._parts(
            channel, self.rnd.choice(("kernel_info_request", "is_complete_request"))
        )
        deep = deep_json(hostile_depth(self.rnd))
        i = self.rnd.randrange(4)
        if i == 0:  # the header keeps its msg_type, so the message goes on to the kernel
            parts[0] = parts[0][:-1] + b', "deep": ' + deep + b"}"
        else:
            parts[i] = deep
        return self._keep(self.zk.signed(parts))

    def _signed_buffers(self, channel: str) -> list[bytes]:
        buffers = [self._garbage() for _ in range(self.rnd.randrange(1, 5))]
        return self._keep(self.zk.signed(self._parts(channel)) + buffers)

    def _signed_idents(self, channel: str) -> list[bytes]:
        idents = [self._garbage() for _ in range(self.rnd.randrange(1, 4))]
        return self._keep(idents + self.zk.signed(self._parts(channel)))

    def _signed_big(self, channel: str) -> list[bytes]:
        parts = self._parts(channel, "kernel_info_request")
        parts[3] = dumps({"big": MARKER * self.rnd.randrange(1_000, 30_000)})
        return self._keep(self.zk.signed(parts))
