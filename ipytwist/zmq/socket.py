"""A txzmq socket read through the reactor's read pacer, bounded per message.

:class:`PacedSocket` hands every multipart message to a callback; a message past
the size limit is kept as an :class:`Oversized` count, not as its frames.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import zmq
from txzmq import ZmqConnection, ZmqFactory

from ..pacing import QUANTUM_BYTES, QUANTUM_MESSAGES, pacer_for

__all__ = ["FRAME_SLACK", "SMALL_FRAME_BYTES", "Frames", "Oversized", "PacedSocket"]

#: libzmq refuses (and disconnects) a peer sending a frame larger than the message
#: limit plus this, before allocating it; smaller oversized messages are dropped
#: (and logged) by the wire codec.
FRAME_SLACK = 1 << 20
#: Subscriptions and heartbeats are tiny.
SMALL_FRAME_BYTES = 64 * 1024
#: Frames from this size on are sent without a copy (ZeroMQ keeps a reference).
ZERO_COPY_BYTES = 64 * 1024
# pyzmq's flags as plain ints, and its socket's own send and getsockopt: the enums'
# operators and the keyword handling of pyzmq's Python layer cost more than the send
# (some 1.4 us per frame, 35 frames per round trip of a cell).
_MORE = int(zmq.SNDMORE | zmq.NOBLOCK)
_LAST = int(zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_send: Callable[..., object] = zmq.backend.Socket.send
_get: Callable[..., object] = zmq.backend.Socket.get


class Oversized:
    """Stands for a multipart message whose frames added up past the limit."""

    def __init__(self, total: int) -> None:
        self.total = total


#: A multipart message as read: its frames, or what stands for them past the limit.
Frames = list[bytes] | Oversized


class PacedSocket(ZmqConnection):
    """A txzmq connection that hands every multipart message to a callback, reads
    through the reactor's pacer (a bounded piece at a time, and only while the turn
    has reading time left: see :mod:`ipytwist.pacing`), never holds more than one
    oversized frame, and schedules through its factory's reactor (txzmq's own
    ``send`` uses the global one)."""

    def __init__(
        self,
        factory: ZmqFactory,
        socket_type: int,
        on_message: Callable[[Frames], None],
        max_bytes: int = SMALL_FRAME_BYTES,
        group: object = None,
    ) -> None:
        self.socketType = socket_type
        #: What the socket shares its turns with in the pacer's line (its kernel).
        self.group = group
        self.on_message = on_message
        self.max_bytes = max_bytes
        self._oversized = 0
        self.reactor = factory.reactor
        self.pacer = pacer_for(self.reactor)
        super().__init__(factory)
        self.zmq.set(zmq.MAXMSGSIZE, max_bytes + FRAME_SLACK)

    @property
    def zmq(self) -> zmq.Socket[bytes]:
        """The ZeroMQ socket (until the connection is shut down)."""
        assert self.socket is not None, "the ZeroMQ socket is closed"
        return self.socket

    def send(self, message: bytes | Sequence[bytes | bytearray]) -> None:
        """Send a (multipart) message now; ZeroMQ raises ``zmq.Again`` when it is full.
        A large frame is handed to ZeroMQ as it is, not copied (it is never changed)."""
        parts = [message] if isinstance(message, bytes) else message
        sock, last = self.zmq, len(parts) - 1
        for i, part in enumerate(parts):
            _send(sock, part, _MORE if i < last else _LAST, len(part) < ZERO_COPY_BYTES)
        # ZeroMQ may not signal messages that came in while it was written to.
        if self.read_scheduled is None:
            self.read_scheduled = self.reactor.callLater(0, self.doRead)

    def doRead(self) -> None:
        """ZeroMQ may have messages: read them through the pacer."""
        self._cancel_scheduled_read()
        self.pacer.read(self)

    def read_some(self) -> bool:
        """Read up to QUANTUM_MESSAGES messages or QUANTUM_BYTES (the pacer's Reader
        interface); whether more waits."""
        nbytes = 0
        for _ in range(QUANTUM_MESSAGES):
            if nbytes >= QUANTUM_BYTES or not self._readable():
                break
            message = self._read_message()
            if message is not None:
                nbytes += (
                    message.total if isinstance(message, Oversized) else sum(map(len, message))
                )
                self.on_message(message)
        return self._readable()

    def hold(self) -> None:
        """Waiting in the pacer's line: ZeroMQ keeps what arrives meanwhile."""

    def release(self) -> None:
        """Out of the pacer's line: ZeroMQ signals the next message."""

    def read_waiting(self) -> list[Frames]:
        """Every message waiting now, read and returned (not handed to the callback)."""
        self._cancel_scheduled_read()
        messages = []
        while self._readable():
            message = self._read_message()
            if message is not None:
                messages.append(message)
        return messages

    def _cancel_scheduled_read(self) -> None:
        if self.read_scheduled is not None:
            if self.read_scheduled.active():
                self.read_scheduled.cancel()
            self.read_scheduled = None

    def _readable(self) -> bool:
        if self.factory is None or self.socket is None:
            return False
        events = _get(self.socket, _EVENTS)
        return isinstance(events, int) and bool(events & _POLLIN)

    def _read_message(self) -> Frames | None:
        """The next multipart message; None if ZeroMQ has none after all.  txzmq keeps
        every frame; past the limit we keep none and count only."""
        total = sum(len(p) for p in self.recv_parts)
        try:
            while True:
                part = self.zmq.recv(zmq.NOBLOCK)
                total += len(part)
                if total <= self.max_bytes:
                    self.recv_parts.append(part)
                else:
                    self.recv_parts = []
                    self._oversized = total
                if not self.zmq.get(zmq.RCVMORE):
                    result, self.recv_parts = self.recv_parts, []
                    big, self._oversized = self._oversized, 0
                    return Oversized(big) if big else result
        except zmq.Again:
            return None
