"""Helpers of ``test_fuzz.py`` and ``test_attacks.py``: hostile ZeroMQ and WebSocket
input, the service's health and log after it, and raw HTTP from any loopback address.

Hostile input is drawn from a :class:`Pool` (JSON values, byte strings and texts drawn
by hypothesis) and a ``random.Random`` seeded by hypothesis, so a batch of a few
hundred messages costs hypothesis one small example.  Every payload carries
:data:`MARKER`, which must never reach the service's log.  Requests that reach the
worker run nothing but ``1`` or a string literal: code of any other type, and
``user_expressions`` that are not a dict, are refused before anything runs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import select
import socket
import struct
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.client import HTTPConnection
from typing import Any

import websocket
import zmq
from hypothesis import strategies as st
from service_proc import Service, WSClient, make_message, pack_v1, parent_id

DELIM = b"<IDS|MSG>"
#: In every hostile payload; must never appear in the service's log.
MARKER = "FUZZ-MARKER-5c1d7e"
#: The window of the service's rate limit on logging rejected input.
LOG_WINDOW = 10.0
#: The only code hostile execute_requests carry (besides code that is not a string).
SAFE_EXECUTE_CODE = ("1", repr(MARKER))
#: Code for complete/inspect/is_complete: parsed or looked up, never run.
SAFE_PARSE_CODE = ("1", "", "pri", "print", "x = (", "# " + MARKER, "import o", "a.b.")
#: Shell requests the kernel passes to its worker (they queue behind each other).
WORKER_TYPES = ("execute_request", "complete_request", "inspect_request")
WORKER_TYPES += ("is_complete_request", "history_request")
#: Message types a hostile client sends per channel (shutdown_request is left out: it
#: is an authorised restart, not hostile input).
CHANNEL_TYPES = {
    "shell": WORKER_TYPES
    + ("kernel_info_request", "comm_info_request", "comm_open")
    + ("comm_msg", "comm_close", "input_reply"),
    "control": ("kernel_info_request", "comm_info_request", "interrupt_request")
    + ("execute_request", "usage_request", "debug_request"),
    "stdin": ("input_reply", "input_request", "kernel_info_request", "execute_request"),
}
HUGE_INTS = (2**63, -(2**63) - 1, 2**64, 10**30, 10**300, -(10**200))

# -- what hypothesis draws --------------------------------------------------------

_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=24)
)
JSON = st.recursive(
    _leaves,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)


@dataclass
class Pool:
    """What hypothesis drew for one batch; ``rnd``, seeded by all of it, combines it."""

    seed: int
    values: list[Any]
    blobs: list[bytes]
    texts: list[str]
    size: int
    rnd: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rnd = random.Random(repr((self.seed, self.values, self.blobs, self.texts)))


def pools(min_size: int, max_size: int) -> st.SearchStrategy[Pool]:
    return st.builds(
        Pool,
        seed=st.integers(min_value=0, max_value=2**64),
        values=st.lists(JSON, min_size=8, max_size=8),
        blobs=st.lists(st.binary(max_size=160), min_size=4, max_size=4),
        texts=st.lists(st.text(max_size=40), min_size=4, max_size=4),
        size=st.integers(min_value=min_size, max_value=max_size),
    )


# -- hostile message content, shared by both transports ---------------------------


class Hostile:
    """Wrongly typed, oversized and deeply nested JSON drawn from a :class:`Pool`."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.rnd = pool.rnd

    def value(self) -> Any:
        """A JSON value: drawn, huge, deep, or carrying the marker."""
        r = self.rnd.random()
        if r < 0.6:
            return self.rnd.choice(self.pool.values)
        if r < 0.75:
            return self.rnd.choice(HUGE_INTS)
        if r < 0.85:
            return nested(self.rnd.choice((5, 30, 99)), MARKER)
        return MARKER + self.rnd.choice(self.pool.texts)

    def non_string(self) -> Any:
        v = self.value()
        return 1 if isinstance(v, str) else v

    def not_a_dict(self) -> Any:
        v = self.value()
        return [v] if isinstance(v, dict) else v

    def text(self) -> str:
        return self.rnd.choice(self.pool.texts)

    def header(self, msg_type: Any, session: str = "fuzz") -> dict[str, Any]:
        """A header with the given type; other fields may be of any type."""
        h: dict[str, Any] = {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "session": session,
            "username": "fuzz",
            "date": "2024-01-01T00:00:00Z",
            "version": "5.3",
        }
        for key in self.rnd.sample(("session", "username", "date", "version"), k=2):
            if self.rnd.random() < 0.5:
                h[key] = self.value()
        if self.rnd.random() < 0.3:
            h[MARKER] = self.value()
        return h

    def content(self, msg_type: str) -> dict[str, Any]:
        """Content for ``msg_type``: known fields wrongly typed, unknown fields added."""
        rnd = self.rnd
        c: dict[str, Any] = {MARKER: self.value()}
        for _ in range(rnd.randrange(3)):
            c[self.text()] = self.value()
        if msg_type == "execute_request":
            c["code"] = rnd.choice(SAFE_EXECUTE_CODE) if rnd.random() < 0.5 else self.non_string()
            # a dict is evaluated: only ``1``; anything else is refused before running
            c["user_expressions"] = rnd.choice(({}, {"a": "1"}, None, self.not_a_dict()))
            for key in ("silent", "store_history", "allow_stdin", "stop_on_error"):
                if rnd.random() < 0.5:
                    c[key] = self.value()
        elif msg_type in ("complete_request", "inspect_request", "is_complete_request"):
            c["code"] = rnd.choice(SAFE_PARSE_CODE) if rnd.random() < 0.7 else self.non_string()
            c["cursor_pos"] = rnd.choice((0, 3, -5, "x", None, *HUGE_INTS))
            c["detail_level"] = self.value()
        elif msg_type == "history_request":
            c["hist_access_type"] = rnd.choice(("tail", "range", "search", self.value()))
            for key in ("n", "session", "start", "stop", "raw", "output", "unique"):
                if rnd.random() < 0.6:
                    c[key] = rnd.choice((self.value(), 3, -1, *HUGE_INTS))
            c["pattern"] = rnd.choice(("*", MARKER + "*", self.value()))
        elif msg_type.startswith("comm_"):
            for key in ("comm_id", "target_name", "data"):
                c[key] = self.value()
        elif msg_type in ("input_reply", "input_request"):
            c["value"] = self.value()
        return c


def nested(depth: int, leaf: Any) -> Any:
    for i in range(depth - 1):
        leaf = [leaf] if i % 2 else {"k": leaf}
    return leaf


def hostile_depth(rnd: random.Random) -> int:
    """A nesting depth: shallow, around the service's limit (100), or near what
    ``json.loads`` accepts at all (about 1000, less the caller's stack)."""
    return rnd.choice(
        (rnd.randrange(2, 100), 100, 101, rnd.randrange(101, 850), rnd.randrange(850, 1000), 5000)
    )


def deep_json(depth: int) -> bytes:
    """A JSON object ``depth`` levels deep, written without json.dumps."""
    return (
        b'{"m": "' + MARKER.encode() + b'", "d": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    )


def huge_int_json(digits: int) -> bytes:
    """A JSON object holding an integer of ``digits`` digits (Python refuses over 4300)."""
    return b'{"m": "' + MARKER.encode() + b'", "n": ' + b"7" * digits + b"}"


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


# -- ZeroMQ -------------------------------------------------------------------------


@dataclass
class ZmqKernel:
    """A hosted kernel's ZeroMQ side, from its connection file."""

    info: dict[str, Any]
    ctx: zmq.Context = field(default_factory=zmq.Context)

    @classmethod
    def from_file(cls, path: str) -> ZmqKernel:
        with open(path) as f:
            return cls(json.load(f))

    @property
    def key(self) -> bytes:
        return str(self.info["key"]).encode()

    def socket(self, channel: str, kind: int = zmq.DEALER) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.linger = 0
        sock.sndtimeo = 10_000  # a service that stops reading fails the test, no hang
        sock.connect(f"tcp://127.0.0.1:{self.info[channel + '_port']}")
        return sock

    def sign(self, parts: list[bytes], key: bytes | None = None) -> bytes:
        h = hmac.new(self.key if key is None else key, digestmod=hashlib.sha256)
        for p in parts:
            h.update(p)
        return h.hexdigest().encode()

    def signed(self, parts: list[bytes], key: bytes | None = None) -> list[bytes]:
        return [DELIM, self.sign(parts, key), *parts]

    def request(self, msg_type: str, content: Any = None) -> tuple[str, list[bytes]]:
        """``(msg_id, frames)`` of a correctly signed request."""
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": msg_type, "session": "probe", "username": "t"}
        header |= {"date": "2024-01-01T00:00:00Z", "version": "5.3"}
        parts = [dumps(header), b"{}", b"{}", dumps({} if content is None else content)]
        return msg_id, self.signed(parts)

    def close(self) -> None:
        self.ctx.destroy(linger=0)


def zmq_reply_to(sock: zmq.Socket, msg_id: str, timeout: float = 10.0) -> dict[str, Any] | None:
    """Read ``sock`` until the reply whose parent is ``msg_id`` (others are dropped)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not sock.poll(int(left * 1000) + 1):
            break
        frames = sock.recv_multipart()
        if DELIM not in frames:
            continue
        i = frames.index(DELIM)
        if msg_id.encode() not in frames[i + 3]:
            continue  # a reply to a hostile request (its parent may be too deep to load)
        header, parent = (json.loads(f) for f in frames[i + 2 : i + 4])
        if parent.get("msg_id") == msg_id:
            return {"header": header, "parent_header": parent}
    return None


def drain(*socks: zmq.Socket) -> int:
    """Read whatever is waiting on ``socks`` without blocking; how many messages."""
    n = 0
    for sock in socks:
        while sock.poll(0):
            sock.recv_multipart()
            n += 1
    return n


def zmq_kernel_info(zk: ZmqKernel, sock: zmq.Socket, timeout: float = 10.0) -> bool:
    msg_id, frames = zk.request("kernel_info_request")
    sock.send_multipart(frames)
    reply = zmq_reply_to(sock, msg_id, timeout)
    return reply is not None and reply["header"]["msg_type"] == "kernel_info_reply"


def heartbeat(zk: ZmqKernel, timeout: float = 10.0) -> bool:
    """A REQ on the heartbeat port gets its own bytes back."""
    sock = zk.socket("hb", zmq.REQ)
    try:
        ping = b"ping-" + uuid.uuid4().hex.encode()
        sock.send(ping)
        return bool(sock.poll(int(timeout * 1000))) and sock.recv() == ping
    finally:
        sock.close()


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

    def __init__(self, zk: ZmqKernel, pool: Pool, replays: deque[list[bytes]]) -> None:
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


# -- WebSocket ----------------------------------------------------------------------


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


@contextmanager
def deep_json_readable(limit: int = 5_000) -> Iterator[None]:
    """Let this process read any message the service may send: one whose parent_header
    nests as deep as the service accepted (``json.loads`` needs more stack in a test
    than in the service's reactor)."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def ws_round_trip(client: WSClient, timeout: float = 15.0) -> int:
    """Send a valid kernel_info_request on ``client`` and read up to its reply; how many
    messages were read (whatever came before is dropped)."""
    msg = make_message("kernel_info_request", {}, client.session_id)
    if client.v1:
        client.ws.send_binary(pack_v1(msg, "shell"))
    else:
        client.ws.send(json.dumps({**msg, "channel": "shell"}))
    msg_id = msg["header"]["msg_id"]
    got = client.until(
        lambda m: m["msg_type"] == "kernel_info_reply" and parent_id(m) == msg_id, timeout
    )
    client.received.clear()  # memory: the fuzz reads tens of thousands of messages
    return len(got)


# -- the service's process and log --------------------------------------------------


class LogWatch:
    """The part of the service's log written since this watch was made."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.start = len(svc.log())

    def new(self) -> str:
        return self.svc.log()[self.start :]

    def lines(self) -> list[str]:
        """Log entries (continuation lines of a multi-line entry start with a tab)."""
        return [line for line in self.new().splitlines() if line and not line[0].isspace()]

    def assert_clean(self, *secrets: str) -> None:
        """No traceback, no unhandled error, no payload marker and none of ``secrets``."""
        text = self.new()
        for bad in ("Traceback", "Unhandled", MARKER, *secrets):
            assert bad not in text, f"{bad!r} in the service log:\n{excerpt(text, bad)}"


def excerpt(text: str, needle: str, width: int = 1500) -> str:
    i = text.find(needle)
    return text[max(0, i - width // 3) : i + width]


# -- raw HTTP -----------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    svc: Service,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    source: str = "127.0.0.1",
    timeout: float = 10.0,
) -> Answer:
    """One request from the loopback address ``source`` (the service limits failed
    logins per client address) to the service on 127.0.0.1."""
    conn = HTTPConnection("127.0.0.1", svc.port, timeout, (source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def loopback(n: int) -> str:
    """The ``n``-th address of 127.0.0.0/8 after 127.0.0.1 (all are this machine)."""
    return f"127.0.{(n + 2) // 250}.{(n + 2) % 250 or 1}"


def raw_socket(svc: Service, source: str = "127.0.0.1", timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", svc.port), timeout, (source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_answer(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (or ``timeout``)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (EOF or reset), without blocking."""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(65536, socket.MSG_PEEK) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def ws_from(
    svc: Service, kernel_id: str, source: str, params: dict[str, str] | None = None, **kw: Any
) -> websocket.WebSocket:
    """``websocket.create_connection`` to a kernel's channels from ``source``."""
    sock = raw_socket(svc, source)
    url = svc.ws_url(kernel_id, session_id=uuid.uuid4().hex, **(params or {}))
    try:
        return websocket.create_connection(url, socket=sock, timeout=10, **kw)
    except BaseException:
        sock.close()
        raise
