"""WebSocket input read a bounded piece at a time, and held back when asked; and
writing resumed in turn.

A :class:`PacedProtocol` connection hands what it receives to autobahn's frame
parser through the reactor's :class:`~ipytwist.pacing.ReadPacer`: once open, at
most :data:`~ipytwist.pacing.QUANTUM_MESSAGES` messages or
:data:`~ipytwist.pacing.QUANTUM_BYTES` per piece, and while the turn's reading
time is spent it waits in the pacer's line with its socket paused, so the
kernel's clients cannot, all together, keep the reactor from its other work.
A connection may also be held back for a reason of its own (:meth:`hold_back`,
a session owed too many replies): then not one more message is read, also
of what is already received, until :meth:`read_on`.

Writing takes its turn too: when a connection's transport has sent what it
held and asks for more (``resumeProducing``), the connection writes on in its
turn of the same pacer (:class:`PacedProducer`), so hundreds of connections
that drain at once do not all write in one reactor turn.
"""

from __future__ import annotations

from typing import Protocol, cast

from autobahn.twisted.websocket import WebSocketServerProtocol
from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from ..pacing import QUANTUM_BYTES, QUANTUM_MESSAGES, ReadPacer

__all__ = [
    "CLOSE_HANDSHAKE_SECONDS",
    "LINGER_SECONDS",
    "OutboxProducer",
    "PacedProducer",
    "PacedProtocol",
]

#: How long the peer has to answer our close frame (autobahn's default).
CLOSE_HANDSHAKE_SECONDS = 1.0
#: Then how long it may still send (the rest of a message refused) before the
#: connection is cut: our side is closed, what comes is read and dropped.
LINGER_SECONDS = 10.0


class _Reading(Protocol):
    """What the connection's transport is as a producer of the client's input."""

    def pauseProducing(self) -> None: ...
    def resumeProducing(self) -> None: ...


class _Pausable(Protocol):
    def pause(self) -> None: ...
    def resume(self) -> None: ...


@implementer(IPushProducer)
class OutboxProducer:
    """The transport's backpressure handed to a connection's outbox: it stops
    writing while the transport is full, and when the transport is gone."""

    def __init__(self, outbox: _Pausable) -> None:
        self.outbox = outbox

    def pauseProducing(self) -> None:
        """The transport is full: the outbox waits."""
        self.outbox.pause()

    def resumeProducing(self) -> None:
        """The transport takes more: the outbox writes on."""
        self.outbox.resume()

    def stopProducing(self) -> None:
        """The transport is gone: the outbox writes no more."""
        self.outbox.pause()


@implementer(IPushProducer)
class PacedProducer:
    """A push producer whose ``resumeProducing`` waits for its turn of the pacer."""

    def __init__(self, producer: IPushProducer, pacer: ReadPacer, group: object) -> None:
        self.producer = producer
        self.pacer = pacer
        self.group = group

    def pauseProducing(self) -> None:
        """The transport is full."""
        self.producer.pauseProducing()

    def resumeProducing(self) -> None:
        """The transport takes more: the producer resumes in its turn."""
        self.pacer.read(self)

    def stopProducing(self) -> None:
        """The transport is gone."""
        self.pacer.forget(self)
        self.producer.stopProducing()

    def read_some(self) -> bool:
        """Its turn (the pacer's Reader interface): the producer resumes."""
        self.producer.resumeProducing()
        return False

    def hold(self) -> None:
        """Waiting in line: the producer stays paused meanwhile."""

    def release(self) -> None:
        """Out of the line."""


class PacedProtocol(WebSocketServerProtocol):
    """A WebSocket server connection whose input is read through a pacer."""

    #: Set by the subclass before the connection opens: the pacer, and what this
    #: connection shares its turns with in the pacer's line (its kernel).
    pacer: ReadPacer
    group: object = None
    #: Why the socket is not read from: held back, or waiting in the pacer's line.
    _held_back = False
    _in_line = False
    _socket_paused = False
    #: Messages read in the current piece.
    _messages = 0
    _producer: PacedProducer | None = None
    _linger: IDelayedCall | None = None

    def paced(self, producer: IPushProducer) -> PacedProducer:
        """``producer`` (what writes to this connection) resumed in its turn."""
        self._producer = PacedProducer(producer, self.pacer, self.group)
        return self._producer

    @property
    def held_back(self) -> bool:
        """Whether reading stopped until :meth:`read_on`."""
        return self._held_back

    def hold_back(self) -> None:
        """Read no more, not even what is already received, until :meth:`read_on`."""
        self._held_back = True
        self._update_socket()

    def read_on(self) -> None:
        """Read again after :meth:`hold_back`: what was received first."""
        if self._held_back:
            self._held_back = False
            self.pacer.read(self)
            self._update_socket()

    # -- autobahn -------------------------------------------------------------------

    def consumeData(self) -> None:
        """autobahn: input arrived.  Once open, it is read through the pacer (the opening
        handshake is read at once)."""
        if self.state in (self.STATE_OPEN, self.STATE_CLOSING):
            self.pacer.read(self)
        else:
            super().consumeData()

    def onMessageEnd(self) -> None:
        """autobahn: a message is complete (and handled: counted against the piece)."""
        super().onMessageEnd()
        self._messages += 1

    def onCloseHandshakeTimeout(self) -> None:
        """autobahn: the peer has not answered our close frame in time.  autobahn resets
        the connection, and a peer still sending (the rest of a message too big: the
        close frame came at its head) would get the reset, not the frame that says
        why.  So our side is closed after the close frame, what still comes is read
        and dropped, and the reset comes only :data:`LINGER_SECONDS` later."""
        self.closeHandshakeTimeoutCall = None
        half_close = getattr(self.transport, "loseWriteConnection", None)
        if self._linger is not None or half_close is None or self.state == self.STATE_CLOSED:
            super().onCloseHandshakeTimeout()
            return
        half_close()
        self._linger = self.pacer.reactor.callLater(LINGER_SECONDS, self._linger_over)

    def _linger_over(self) -> None:
        super().onCloseHandshakeTimeout()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Twisted: the connection is gone; it leaves the pacer's line."""
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        pacer = getattr(self, "pacer", None)
        if pacer is not None:
            pacer.forget(self)
            if self._producer is not None:
                pacer.forget(self._producer)
        super().connectionLost(reason)

    # -- the pacer's Reader interface ---------------------------------------------------

    def read_some(self) -> bool:
        """Parse the input received, up to QUANTUM_MESSAGES messages or QUANTUM_BYTES;
        whether more waits."""
        self._messages = 0
        stop_at = len(self.data) - QUANTUM_BYTES
        while self.state in (self.STATE_OPEN, self.STATE_CLOSING) and not self._held_back:
            if self._messages >= QUANTUM_MESSAGES or len(self.data) <= stop_at:
                return len(self.data) > 0
            if not self.processData():
                return False
        return False

    def hold(self) -> None:
        """Input waits in the pacer's line: read no more from the socket meanwhile."""
        self._in_line = True
        self._update_socket()

    def release(self) -> None:
        """The pacer has read all the input received: read from the socket again."""
        self._in_line = False
        self._update_socket()

    def _update_socket(self) -> None:
        paused = self._held_back or self._in_line
        if paused != self._socket_paused and self.state != self.STATE_CLOSED:
            self._socket_paused = paused
            socket = cast(_Reading, self.transport)
            if paused:
                socket.pauseProducing()
            else:
                socket.resumeProducing()
