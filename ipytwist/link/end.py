"""One end of the worker link across its connections, sans-IO (docs/durable-kernels.md).

:class:`LinkEnd` joins the handshake, the frame decoder and the numbered streams
both ways.  Its I/O owner (the keeper's loop, the service's Twisted protocol)
calls :meth:`connection_made`, :meth:`data_received`, :meth:`connection_lost`
and writes the bytes they return; it hands data over with :meth:`send` and
says with :meth:`acknowledge` how far it has made the peer's data safe.  What
was sent while no connection was up, or not acked when one dropped, goes out
again on the next one, in order.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from .shake import DialerHandshake, LinkRefused, ListenerHandshake
from .wire import (
    DATA_KINDS,
    LINK_VERSIONS,
    MAX_FRAME_BYTES,
    PIPE_VERSION,
    Body,
    Frame,
    FrameDecoder,
    Inbound,
    Kind,
    LinkError,
    Outbound,
    body_parts,
    encode_frame,
    frame_parts,
)

__all__ = ["LinkEnd"]

Parts = list[bytes | memoryview]


def _nonce() -> str:
    return secrets.token_hex(16)


class LinkEnd:
    """The keeper's end (``listener=True``) or the service's; see the module's docstring."""

    def __init__(
        self,
        listener: bool,
        secret: bytes,
        kernel_id: str,
        outbound: Outbound | None = None,
        inbound: Inbound | None = None,
        stream: str = "",
        nonce: Callable[[], str] = _nonce,
        versions: tuple[int, ...] = LINK_VERSIONS,
    ) -> None:
        self.listener = listener
        self.secret, self.kernel_id = secret, kernel_id
        self.out = outbound or Outbound()
        #: The peer's data: a service restarted from its persisted log passes where it was.
        self.inbound = inbound or Inbound()
        self.stream = stream or nonce()
        self._nonce = nonce
        self.versions = versions
        #: The peer's data made safe so far (what the next frame acks).
        self.safe = self.inbound.taken
        self.info: dict[str, object] = {}
        self.peer_info: dict[str, object] = {}
        self._shake: ListenerHandshake | DialerHandshake | None = None
        self._decoder = FrameDecoder()
        self.connected = False
        #: The version the current connection's handshake chose (0 before one is done).
        self.version = 0
        #: The keeper sent a ``PIPE`` frame on this connection (its fd came with it).
        self.pipe_offered = False

    @property
    def authenticated(self) -> bool:
        """A connection is up and its handshake is done."""
        return self.connected and self._shake is None

    def connection_made(self) -> bytes:
        """A new connection: what to write first (the keeper's ``HELLO``)."""
        self.connected = True
        self._decoder = FrameDecoder()
        self.version, self.pipe_offered = 0, False
        if self.listener:
            shake = ListenerHandshake(
                self.secret, self.kernel_id, self._nonce(), self.stream, self.inbound, self.versions
            )
            shake.info = self.info
            self._shake = shake
            return shake.hello()
        self._shake = DialerHandshake(
            self.secret, self.kernel_id, self._nonce(), self.stream, self.inbound, self.versions
        )
        return b""

    def connection_lost(self) -> None:
        """The connection is gone; what was not acked waits for the next one."""
        self.connected = False
        self._shake = None

    def data_received(self, data: bytes) -> tuple[Parts, list[Frame]]:
        """Bytes from the peer: what to write back, and the data frames newly taken, in
        order.  :class:`LinkRefused` carries a ``REFUSE`` to write before closing; any
        other :class:`LinkError` means close at once."""
        write: Parts = []
        taken: list[Frame] = []
        self._decoder.push(data)
        while (frame := self._decoder.pop()) is not None:  # (the limit rises mid-way)
            if self._shake is not None:
                write.extend(self._handshake(frame))
                continue
            if frame.kind is Kind.REFUSE:
                raise LinkRefused("refused by the peer")
            if frame.kind is Kind.PIPE and not self.listener and self.version >= PIPE_VERSION:
                self.pipe_offered = True
                continue
            if frame.kind not in DATA_KINDS and frame.kind is not Kind.ACK:
                raise LinkError(f"{frame.kind.name} frame after the handshake")
            self.out.ack(frame.ack)
            if self.inbound.take(frame):
                taken.append(frame)
        return write, taken

    def _handshake(self, frame: Frame) -> Parts:
        shake = self._shake
        if isinstance(shake, ListenerHandshake):
            reply, resumed = shake.receive(frame)
        else:
            assert shake is not None  # (only called while a handshake runs)
            reply, done = shake.receive(frame)
            if done is None:
                return [reply]
            resumed = done
            self.peer_info = resumed.info
        self._shake = None
        self.version = resumed.version
        self._decoder.max_frame_bytes = MAX_FRAME_BYTES
        if self.inbound.taken < self.safe:
            self.safe = self.inbound.taken  # a new peer stream: nothing of it is safe yet
        resend = self.out.resume(resumed.peer_next)
        parts: Parts = [reply] if reply else []
        for seq, kind, body in resend:
            parts.extend(self.out.frame(seq, kind, body, self.safe))
        if self.safe:  # the last ack may have been lost with the old connection
            parts.append(encode_frame(Kind.ACK, 0, self.safe))
        return parts

    def send(self, kind: Kind, body: Body) -> Parts:
        """Number and keep one data frame; its bytes to write now (none while no
        authenticated connection is up: it goes out on the next)."""
        seq = self.out.add(kind, body)
        if not self.authenticated:
            return []
        return frame_parts(kind, seq, self.safe, body_parts(body))

    def acknowledge(self, upto: int) -> bytes:
        """The peer's data up to ``upto`` is safe: an ``ACK`` to write (or nothing)."""
        if upto > self.inbound.taken:
            raise ValueError(f"cannot acknowledge {upto}: only {self.inbound.taken} taken")
        if upto <= self.safe:
            return b""
        self.safe = upto
        return encode_frame(Kind.ACK, 0, upto) if self.authenticated else b""
