"""The worker link's frames, handshake and resumption, sans-IO (docs/durable-kernels.md).

A frame is ``u32 length | u8 kind | u64 seq | u64 ack | body``, big-endian, the
length counting what follows it.  Data frames (events, output, requests, controls)
are numbered 1, 2, 3... by their sender; ``ack`` is the highest seq of the other
side's data that the sender has taken.  :class:`Outbound` keeps every data frame
until it is acked and gives back those to resend after a reconnect;
:class:`Inbound` takes each seq once, in order.  The handshake proves both ends
hold the kernel's secret without sending it, and picks a common version.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

__all__ = [
    "Body",
    "LINK_VERSIONS",
    "LINK_WINDOW",
    "PIPE_VERSION",
    "PRE_AUTH_FRAME_BYTES",
    "Frame",
    "FrameDecoder",
    "Inbound",
    "Kind",
    "LinkError",
    "Outbound",
    "encode_frame",
    "frame_parts",
    "handshake_mac",
    "json_body",
    "output_body",
    "parse_output",
]

#: The link versions this code speaks.  2: the keeper gives the service the write end of
#: the interpreter's request pipe (a ``PIPE`` frame), for small requests written straight in.
LINK_VERSIONS = (1, 2)
#: The first version with ``PIPE``.
PIPE_VERSION = 2
#: The protocol's name, in ``HELLO``: anything else on the socket is not a keeper.
PROTO = "ipytwist-link"
#: Most bytes of unacked data frames a sender keeps before it stops producing.
LINK_WINDOW = 4 << 20
#: Largest frame accepted before the peer has authenticated (a handshake is small).
PRE_AUTH_FRAME_BYTES = 1 << 16
#: Largest frame accepted at all (an interpreter's record with its buffers).
MAX_FRAME_BYTES = (1 << 31) + (1 << 16)

_HEAD = struct.Struct(">IBQQ")
#: The bytes a frame's length counts besides its body (kind, seq, ack).
_HEAD_REST = _HEAD.size - 4


class Kind(IntEnum):
    """What a frame carries (numbers frozen: an old keeper must read a new ``REFUSE``)."""

    HELLO = 1
    AUTH = 2
    WELCOME = 3
    REFUSE = 4
    ACK = 5
    #: The keeper to the service (version 2): the interpreter's request pipe, as
    #: ``SCM_RIGHTS`` on this frame's bytes.
    PIPE = 6
    EVENT = 16
    OUTPUT = 17
    EXITED = 18
    REQUEST = 32
    CONTROL = 33


#: A data frame's body: one string of bytes, or parts to be sent one after the other (a
#: request with large binary buffers is kept as views of them, never joined).
Body = bytes | bytearray | tuple[bytes | memoryview, ...]


def body_parts(body: Body) -> list[bytes | memoryview]:
    """A body's parts."""
    if isinstance(body, tuple):
        return list(body)
    return [memoryview(body) if isinstance(body, bytearray) else body]


def body_size(body: Body) -> int:
    """A body's bytes."""
    if isinstance(body, tuple):
        return sum(memoryview(p).nbytes for p in body)
    return len(body)


#: The kinds that carry a seq and are kept until acked.
DATA_KINDS = frozenset({Kind.EVENT, Kind.OUTPUT, Kind.EXITED, Kind.REQUEST, Kind.CONTROL})


class LinkError(ValueError):
    """The peer broke the protocol; the message is one line for the log, never the data."""


@dataclass(frozen=True)
class Frame:
    """One frame: its kind, its seq (0 unless data), the ack it carried, its body."""

    kind: Kind
    seq: int
    ack: int
    #: A large frame that was alone in the decoder's buffer keeps that buffer (no copy).
    body: bytes | bytearray


def frame_parts(
    kind: Kind, seq: int, ack: int, body: Iterable[bytes | memoryview] = ()
) -> list[bytes | memoryview]:
    """A frame's parts, to be written one after the other (the body is not copied)."""
    parts = [p for p in body if len(p)]
    size = _HEAD_REST + sum(memoryview(p).nbytes for p in parts)
    if size > MAX_FRAME_BYTES:
        raise LinkError(f"frame of {size} bytes is too large")
    return [_HEAD.pack(size, kind, seq, ack), *parts]


def encode_frame(kind: Kind, seq: int, ack: int, body: bytes = b"") -> bytes:
    """A frame as one string of bytes."""
    return b"".join(frame_parts(kind, seq, ack, [body]))


def json_body(obj: dict[str, Any]) -> bytes:
    """The body of a handshake, ``EXITED`` or ``CONTROL`` frame."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def parse_json_body(frame: Frame) -> dict[str, Any]:
    """A JSON body as an object, or :class:`LinkError`."""
    try:
        obj = json.loads(frame.body)
    except (ValueError, RecursionError):
        raise LinkError(f"{frame.kind.name} frame is not JSON") from None
    if not isinstance(obj, dict):
        raise LinkError(f"{frame.kind.name} frame is not a JSON object")
    return obj


def output_body(fd: int, data: bytes | memoryview) -> list[bytes | memoryview]:
    """An ``OUTPUT`` frame's body: which of the interpreter's fds, then its bytes raw."""
    return [bytes((fd,)), data]


def parse_output(frame: Frame) -> tuple[int, bytes]:
    """``(fd, bytes)`` from an ``OUTPUT`` frame."""
    if not frame.body or frame.body[0] not in (1, 2):
        raise LinkError("OUTPUT frame names no output fd")
    return frame.body[0], bytes(frame.body[1:])


class FrameDecoder:
    """Accumulate bytes; :meth:`feed` returns the frames completed so far.

    ``max_frame_bytes`` starts at :data:`PRE_AUTH_FRAME_BYTES`: raise it once the
    peer has authenticated, so a stranger cannot make the service allocate much.
    """

    def __init__(self, max_frame_bytes: int = PRE_AUTH_FRAME_BYTES) -> None:
        self._buf = bytearray()
        self.max_frame_bytes = max_frame_bytes

    def feed(self, data: bytes) -> list[Frame]:
        """The frames that ``data`` completes, in order."""
        self.push(data)
        out: list[Frame] = []
        while (frame := self.pop()) is not None:
            out.append(frame)
        return out

    def push(self, data: bytes) -> None:
        """Add bytes; take the frames with :meth:`pop` (the limit may change between)."""
        self._buf += data

    def pop(self) -> Frame | None:
        """The first whole frame, taken out; None if none is whole yet."""
        buf = self._buf
        if len(buf) < 4:
            return None
        (size,) = struct.unpack_from(">I", buf, 0)
        if size < _HEAD_REST or size > self.max_frame_bytes:
            raise LinkError(f"frame of {size} bytes is not accepted")
        if len(buf) < 4 + size:
            return None
        _, kind, seq, ack = _HEAD.unpack_from(buf, 0)
        try:
            known = Kind(kind)
        except ValueError:
            raise LinkError(f"frame of unknown kind {kind}") from None
        if (seq != 0) != (known in DATA_KINDS):
            raise LinkError(f"{known.name} frame with seq {seq}")
        if len(buf) == 4 + size and size >= 1 << 16:  # taken whole: a large record
            self._buf = bytearray()
            del buf[: _HEAD.size]
            return Frame(known, seq, ack, buf)
        frame = Frame(known, seq, ack, bytes(buf[_HEAD.size : 4 + size]))
        del buf[: 4 + size]
        return frame


def handshake_mac(
    secret: bytes, role: str, version: int, listener_nonce: str, dialer_nonce: str, kernel_id: str
) -> str:
    """The proof that ``role`` (``dialer`` or ``listener``) holds ``secret``."""
    text = "|".join((role, str(version), listener_nonce, dialer_nonce, kernel_id))
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


class Outbound:
    """One sender's data frames: numbered, kept until acked, resent after a reconnect."""

    def __init__(self, window: int = LINK_WINDOW) -> None:
        self.window = window
        #: The seq of the last frame added (0: none yet).
        self.sent = 0
        #: The highest seq the peer has acked.
        self.acked = 0
        self.kept_bytes = 0
        self._kept: deque[tuple[int, Kind, Body]] = deque()

    @property
    def full(self) -> bool:
        """At least ``window`` bytes are unacked: produce no more until acks come."""
        return self.kept_bytes >= self.window

    def add(self, kind: Kind, body: Body) -> int:
        """Number and keep one data frame; its seq."""
        if kind not in DATA_KINDS:
            raise ValueError(f"{kind.name} is not a data frame")
        self.sent += 1
        self._kept.append((self.sent, kind, body))
        self.kept_bytes += body_size(body) + _HEAD.size
        return self.sent

    def ack(self, upto: int) -> None:
        """The peer took everything up to ``upto``: let it go."""
        if upto > self.sent:
            raise LinkError(f"ack of seq {upto}, only {self.sent} sent")
        if upto <= self.acked:
            return
        self.acked = upto
        kept = self._kept
        while kept and kept[0][0] <= upto:
            _, _, body = kept.popleft()
            self.kept_bytes -= body_size(body) + _HEAD.size

    def resume(self, next_seq: int) -> list[tuple[int, Kind, Body]]:
        """A new connection's peer expects ``next_seq``: what to send it again, in order.

        Not an ack: the peer has *taken* what comes before ``next_seq`` but may not
        have made it safe (a service dies with items taken but not persisted), so they
        stay kept until an ack lets them go."""
        if next_seq - 1 < self.acked or next_seq - 1 > self.sent:
            raise LinkError(f"peer asks for seq {next_seq}; kept {self.acked + 1} to {self.sent}")
        return [item for item in self._kept if item[0] >= next_seq]

    def frame(self, seq: int, kind: Kind, body: Body, ack: int) -> list[bytes | memoryview]:
        """A kept frame's parts, carrying the current ``ack``."""
        return frame_parts(kind, seq, ack, body_parts(body))


class Inbound:
    """One receiver's view of the peer's data frames: each seq taken once, in order."""

    def __init__(self, stream: str = "", taken: int = 0) -> None:
        #: The peer's sending stream these seqs belong to ("" before any handshake).
        self.stream = stream
        #: The highest seq taken.
        self.taken = taken

    def next_for(self, stream: str) -> int:
        """The seq to ask ``stream`` for in a handshake: where we stopped, if it is the
        stream we know, else its first."""
        return self.taken + 1 if stream == self.stream else 1

    def start(self, stream: str) -> None:
        """A connection to ``stream`` was made; a new stream starts at seq 1."""
        if stream != self.stream:
            self.stream, self.taken = stream, 0

    def take(self, frame: Frame) -> bool:
        """Whether ``frame`` is new (then it is taken); a repeat is dropped, a gap is an
        error."""
        if frame.kind not in DATA_KINDS:
            return False
        if frame.seq <= self.taken:
            return False
        if frame.seq != self.taken + 1:
            raise LinkError(f"seq {frame.seq} after {self.taken}: frames were lost")
        self.taken = frame.seq
        return True
