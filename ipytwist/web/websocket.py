"""Kernel WebSockets: ``/api/kernels/{id}/channels``.

Every kernel has one :class:`KernelSockets` hub.  Clients are grouped by
``session_id`` into :class:`ClientSession` objects, which are the kernel's
requesters: replies and ``input_request`` go to the session that asked, iopub
goes to every connection.  A session remembers the last iopub message written
to it, so a client reconnecting with the same ``session_id`` first receives
what it missed, once and in order, then live messages.  A client can also ask
for replay explicitly with ``?since_msg_id=<id of the last iopub message it saw>``.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from ..kernel import Kernel
from ..kernel.stream import Envelope
from ..wire import Message, new_message
from .sendqueue import QueueLimits, SendQueue
from .wsformat import (
    V1_PROTOCOL,
    FrameError,
    decode_legacy,
    decode_v1,
    encode_legacy,
    encode_v1,
    ws_frame,
    ws_unframe,
)

MAX_SESSIONS = 1000
MAX_PENDING_REPLIES = 1000
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# A slow client closed with 4008 gets this long to read what was already written to it
# (at most the transport's and the sockets' buffers: the queue itself is dropped) and
# the close frame.  autobahn's default (1 s) aborts the connection, and the reset loses
# those messages although the session counts them as delivered.
SLOW_CLOSE_TIMEOUT = 30.0


def _legacy_frame(msg: Message) -> bytes:
    return ws_frame(*encode_legacy(msg, "iopub"))


def _v1_frame(msg: Message) -> bytes:
    return ws_frame(encode_v1(msg, "iopub"), True)


class ClientSession:
    """One client (a ``session_id``): its live connection, if any, and its position."""

    def __init__(self, hub: KernelSockets, session_id: str) -> None:
        self.hub = hub
        self.id = session_id
        self.connection: KernelChannelProtocol | None = None
        self.last_seq = hub.kernel.stream.last_seq
        self._pending: list[tuple[int, str, Message]] = []

    def send(self, channel: str, msg: Message) -> None:
        """A reply or input request for this client (the kernel's Requester interface)."""
        if self.connection is not None:
            self.connection.send_message(channel, msg)
        elif len(self._pending) < MAX_PENDING_REPLIES:
            self._pending.append((self.hub.kernel.stream.last_seq, channel, msg))

    def requeue(self, unsent: list[tuple[int, str, Message]]) -> None:
        """Replies a closed connection never wrote go to the session's live connection,
        or wait for the next one."""
        if self.connection is not None:
            for _, channel, msg in unsent:
                self.connection.send_message(channel, msg)
        else:
            self._pending[:0] = unsent[:MAX_PENDING_REPLIES]

    def take_pending(self) -> list[tuple[int, str, Message]]:
        pending, self._pending = self._pending, []
        return pending


class KernelSockets:
    """The WebSocket side of one kernel: sessions, connections, replay."""

    log = Logger()

    def __init__(
        self, kernel: Kernel, reactor: Any, queue_limits: QueueLimits | None = None
    ) -> None:
        self.kernel = kernel
        self.reactor = reactor
        self.queue_limits = queue_limits or QueueLimits()
        self.sessions: OrderedDict[str, ClientSession] = OrderedDict()
        self.connections: set[KernelChannelProtocol] = set()
        self.factory = WebSocketServerFactory()
        self.factory.protocol = KernelChannelProtocol
        self.factory.hub = self  # type: ignore[attr-defined]
        self.factory.setProtocolOptions(
            autoPingInterval=30,
            autoPingTimeout=60,
            maxMessagePayloadSize=MAX_MESSAGE_BYTES,
            maxFramePayloadSize=MAX_MESSAGE_BYTES,
            # Origin is checked on the HTTP request before the upgrade (see site.py).
            allowedOrigins=["*"],
            allowNullOrigin=True,
        )

    def connection_count(self) -> int:
        return len(self.connections)

    def session(self, session_id: str) -> ClientSession:
        s = self.sessions.get(session_id)
        if s is None:
            s = self.sessions[session_id] = ClientSession(self, session_id)
            while len(self.sessions) > MAX_SESSIONS:
                old_id, old = next(iter(self.sessions.items()))
                if old.connection is not None:
                    break
                del self.sessions[old_id]
        else:
            self.sessions.move_to_end(session_id)
        return s

    def attach(self, conn: KernelChannelProtocol, session_id: str, since_msg_id: str) -> None:
        known = session_id in self.sessions
        session = self.session(session_id)
        since: int | None = None
        if since_msg_id:
            since = self.kernel.stream.seq_of(since_msg_id)
        if since is None and known:
            since = session.last_seq
        old = session.connection
        if old is not None:
            old.sendClose(4000, "replaced by a new connection with the same session_id")
            old.detach()
        session.connection = conn
        conn.session = session
        self.connections.add(conn)
        stream = self.kernel.stream
        backlog = stream.subscribe(conn, since)
        if since is not None and since < stream.last_seq:
            first = backlog[0].seq if backlog else stream.last_seq + 1
            missed = first - since - 1
            if missed > 0:
                conn.send_message("iopub", self._dropped_notice(missed))
        pending = session.take_pending()
        for env in backlog:
            while pending and pending[0][0] < env.seq:
                _, channel, msg = pending.pop(0)
                conn.send_message(channel, msg)
            conn.deliver(env)
        for _, channel, msg in pending:
            conn.send_message(channel, msg)

    def detach(self, conn: KernelChannelProtocol) -> None:
        self.connections.discard(conn)
        self.kernel.stream.unsubscribe(conn)
        session = conn.session
        if session is not None and session.connection is conn:
            session.connection = None

    def _dropped_notice(self, missed: int) -> Message:
        text = (
            f"[ipytwist] {missed} output message(s) from while you were away are no longer "
            "in the kernel's replay log (it keeps the most recent ones) and were dropped.\n"
        )
        return new_message("stream", {"name": "stderr", "text": text}, self.kernel.session)

    def close(self) -> None:
        for conn in list(self.connections):
            conn.sendClose(1000, "kernel shut down")  # autobahn refuses 1001 from apps
            conn.detach()


@implementer(IPushProducer)
class _Producer:
    def __init__(self, queue: SendQueue) -> None:
        self.queue = queue

    def pauseProducing(self) -> None:
        self.queue.pause()

    def resumeProducing(self) -> None:
        self.queue.resume()

    def stopProducing(self) -> None:
        self.queue.close()


_log = Logger()


class KernelChannelProtocol(WebSocketServerProtocol):
    # Our own messages go to ``_log``: autobahn's ``self.log`` is a txaio logger
    # filtered by level; replacing it would log every frame at debug level.
    hub: KernelSockets
    session: ClientSession | None = None
    v1 = False
    queue: SendQueue | None = None

    def onConnect(self, request: Any) -> str | None:
        self.hub = self.factory.hub
        params = request.params
        self._session_id = (params.get("session_id") or [""])[0][:256]
        self._since = (params.get("since_msg_id") or [""])[0][:256]
        if not self._session_id:
            self._session_id = "anonymous-" + uuid.uuid4().hex
        if self.hub.kernel.execution_state == "dead":
            raise ConnectionDeny(404, "kernel is gone")
        if V1_PROTOCOL in request.protocols:
            self.v1 = True
            return V1_PROTOCOL
        return None

    def onOpen(self) -> None:
        limits = self.hub.queue_limits
        self.queue = SendQueue(
            self.hub.reactor,
            self._write,
            self._overflow,
            max_bytes=limits.max_bytes,
            max_messages=limits.max_messages,
            grace=limits.grace,
        )
        try:
            # Under WebSocketResource the HTTP channel is registered as producer.
            self.transport.unregisterProducer()
        except Exception:
            pass
        try:
            self.transport.registerProducer(_Producer(self.queue), True)
        except Exception as e:
            _log.warn("no backpressure for this connection ({e})", e=type(e).__name__)
        self.hub.attach(self, self._session_id, self._since)

    def _write(self, frame: bytes, is_binary: bool, seq: int) -> None:
        """Write one pre-framed message (see :func:`ws_frame`)."""
        if self.state != self.STATE_OPEN:
            return
        if self._perMessageCompress is not None:
            # Never negotiated by our factory; if it ever is, frame per connection.
            payload, binary = ws_unframe(frame)
            self.sendMessage(payload, isBinary=binary)
        elif self.send_queue:
            self.sendData(frame)  # behind autobahn's own queued frames, in order
        else:
            # The frame is complete and shared by all connections: straight to the
            # transport (autobahn's sendMessage would re-frame it per connection).
            self.transport.write(frame)
        if seq and self.session is not None and self.session.connection is self:
            self.session.last_seq = seq

    def _overflow(self, reason: str) -> None:
        _log.warn("closing slow WebSocket client: {reason}", reason=reason)
        self.closeHandshakeTimeout = max(self.closeHandshakeTimeout, SLOW_CLOSE_TIMEOUT)
        self.sendClose(4008, reason[:120])
        self.detach()

    def deliver(self, envelope: Envelope) -> None:
        """One iopub message, encoded and framed once per format for all connections."""
        if self.queue is None:
            return
        if self.v1:
            self.queue.push(envelope.encoded("ws-v1-frame", _v1_frame), True, envelope.seq)
        else:
            self.queue.push(envelope.encoded("ws-legacy-frame", _legacy_frame), False, envelope.seq)

    def send_message(self, channel: str, msg: Message) -> None:
        if self.queue is None:
            return
        note = (self.hub.kernel.stream.last_seq, channel, msg)
        if self.v1:
            self.queue.push(ws_frame(encode_v1(msg, channel), True), True, note=note)
        else:
            payload, binary = encode_legacy(msg, channel)
            self.queue.push(ws_frame(payload, binary), binary, note=note)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        try:
            msg = decode_v1(payload) if self.v1 else decode_legacy(payload, isBinary)
        except FrameError as e:
            _log.warn("WebSocket: dropped message: {why}", why=str(e))
            return
        if self.session is None:
            return
        try:
            self.hub.kernel.handle(msg["channel"], msg, self.session)
        except Exception as e:
            _log.failure(
                "WebSocket: error handling {t}: {e}", t=msg["msg_type"][:64], e=type(e).__name__
            )

    def detach(self) -> None:
        unsent = self.queue.close() if self.queue is not None else []
        session = self.session
        self.hub.detach(self)
        if unsent and session is not None:
            session.requeue(unsent)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if getattr(self, "hub", None) is not None:
            self.detach()
