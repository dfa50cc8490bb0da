"""Kernel WebSockets: ``/api/kernels/{id}/channels``.

Every kernel has one :class:`KernelSockets` hub.  Clients are grouped by ``session_id``
into :class:`ClientSession` objects, which are the kernel's requesters: replies and
``input_request`` go to the session that asked, iopub goes to every connection.  A
session remembers the last iopub message written to it (in the kernel's journal too),
so a client reconnecting with the same ``session_id`` first receives what it missed,
once and in order, then live messages; ``?since_msg_id=<id>`` asks for replay after
the iopub message ``id``.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol, cast

from autobahn.twisted.websocket import WebSocketServerFactory
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.logger import Logger

from ..kernel import Kernel, Request
from ..kernel.journal import persisted_position, position_noter
from ..kernel.outputlog import Cursor, Gap, Position
from ..loglimit import LimitedLog
from ..pacing import ReadPacer, pacer_for
from ..wire import DEFAULT_MAX_MESSAGE_BYTES, Message, new_message
from .away import AwayReplies
from .outbox import Outbox, OwedTotal, ReplyQueue
from .reading import CLOSE_HANDSHAKE_SECONDS, OutboxProducer, PacedProtocol
from .wsformat import V1_PROTOCOL, FrameError, Framers, decode_legacy, decode_v1

MAX_SESSIONS = 1000


def client_kind(headers: dict[str, str]) -> str:
    """What kind of client a WebSocket is, for the transcript: a notebook page (a
    browser logged in by cookie), JupyterLab through jupyter_server's gateway client
    (Tornado), or any other script."""
    if "ipytwist-login=" in headers.get("cookie", "") and headers.get("origin"):
        return "page"
    if headers.get("user-agent", "").startswith("Tornado"):
        return "gateway"
    return "websocket"


class ClientSession:
    """One client (a ``session_id``): its live connection, its position in the
    log while it has none, and the replies addressed to it."""

    origin = "websocket"

    def __init__(self, hub: KernelSockets, session_id: str) -> None:
        self.hub = hub
        self.id = session_id
        self.connection: KernelChannelProtocol | None = None
        self.position: Position = hub.kernel.output_log.end
        self.replies = ReplyQueue()

    def send(self, channel: str, msg: Message) -> None:
        """A reply or input request for this client (the kernel's Requester interface).
        It waits in the session until a connection writes it, after the iopub
        message published before it."""
        self.replies.add(self.hub.kernel.output_log.last_seq, channel, msg)
        if self.connection is not None:
            self.connection.pump()
        else:
            self.hub.away.grew(self.replies)

    def handled(self, msg: Message) -> None:
        """The kernel is done with ``msg``, which gets no reply (a comm message): the
        session is owed less, and its connection may be read again."""
        self.replies.handled(msg)
        if self.connection is not None:
            self.connection.frame_done()


class KernelSockets:
    """The WebSocket side of one kernel: sessions, connections, replay."""

    log = Logger()

    def __init__(
        self,
        kernel: Kernel,
        reactor: IReactorTime,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        on_close: Callable[[], object] = lambda: None,
        pacer: ReadPacer | None = None,
    ) -> None:
        self.kernel = kernel
        self.reactor = reactor
        #: Reads every connection's input, a bounded piece per reactor turn.
        self.pacer = pacer if pacer is not None else pacer_for(reactor)
        self._on_close = on_close
        self.sessions: OrderedDict[str, ClientSession] = OrderedDict()
        self.connections: set[KernelChannelProtocol] = set()
        #: What the connected sessions are owed in all, and the replies kept for the
        #: sessions that are away: both bounded.
        self.away = AwayReplies(OwedTotal(lambda: self.reactor.callLater(0, self._read_on)))
        #: Shell requests held from the kernel until its stop_on_error takes them.
        self._held: list[Request] | None = None
        self._held_for: list[Deferred[list[Request]]] = []
        #: Malformed frames are logged a few lines at a time, then summarised.
        self.rejects = LimitedLog(_log, reactor)
        #: The frames of each wire format, shared by its connections.
        self.framers = Framers(self.gap_notice)
        self.factory = _Factory(self, max_message_bytes)

    def connection_count(self) -> int:
        """Open WebSocket connections to this kernel."""
        return len(self.connections)

    def request(self, request: Request) -> None:
        """A request read from a connection: to the kernel, unless shell requests are
        held back for the kernel's ``stop_on_error`` (see :meth:`requests_in_flight`)."""
        if self._held is not None and request.channel == "shell":
            self._held.append(request)
            return
        try:
            self.kernel.handle(*request)
        except Exception as e:
            _log.failure(
                "WebSocket: error handling {t}: {e}", t=request.msg_type[:64], e=type(e).__name__
            )

    def requests_in_flight(self) -> Deferred[list[Request]]:
        """The shell requests that had reached this kernel's connections when the
        kernel's error reply was written.  A WebSocket reads its frames as they come,
        so none wait here now, but the reactor may not have read them yet: the
        frames it reads before it next runs its timed calls had reached the machine
        before that reply left it (Twisted sends what is written in its pass over the
        sockets, after it polled them).  They are held from the kernel until then and
        handed over here."""
        d: Deferred[list[Request]] = Deferred()
        if self._held is None:
            self._held = []
            self.reactor.callLater(0, self._release_held)
        self._held_for.append(d)
        return d

    def _release_held(self) -> None:
        held, self._held = self._held or [], None
        waiting, self._held_for = self._held_for, []
        for i, d in enumerate(waiting):
            d.callback(held if i == 0 else [])

    def session(self, session_id: str) -> ClientSession:
        """The session ``session_id``, made if new (idle ones past MAX_SESSIONS go)."""
        s = self.sessions.get(session_id)
        if s is None:
            s = self.sessions[session_id] = ClientSession(self, session_id)
            if len(self.sessions) > MAX_SESSIONS:
                # The oldest sessions without a connection go.  A session connected
                # for hours (an open tab) must not shield the ones created after it.
                idle = [k for k, v in self.sessions.items() if v.connection is None and v is not s]
                for old_id in idle[: len(self.sessions) - MAX_SESSIONS]:
                    self.away.forget(self.sessions.pop(old_id).replies)
        else:
            self.sessions.move_to_end(session_id)
        return s

    def attach(self, conn: KernelChannelProtocol, session_id: str, since_msg_id: str) -> None:
        """Connect ``conn`` to its session: it first gets what the session missed (from
        ``since_msg_id``, else from where the session's last connection stopped), with
        the replies addressed to it in their place, then live messages."""
        known = session_id in self.sessions
        session = self.session(session_id)
        old = session.connection
        if old is not None:
            old.sendClose(4000, "replaced by a new connection with the same session_id")
            old.detach()
        log = self.kernel.output_log
        at = log.position_after(since_msg_id) if since_msg_id else None
        if at is None:  # an unknown session may be one of the service before (journal)
            at = session.position if known else persisted_position(self.kernel, session_id)
        self.away.back(session.replies, self.kernel.session)
        session.connection = conn
        session.origin = conn.origin
        self.connections.add(conn)
        conn.start(session, log.open_cursor(conn, at))

    def detach(self, conn: KernelChannelProtocol, position: Position) -> None:
        """``conn`` closed: its session keeps ``position`` for a reconnect."""
        self.connections.discard(conn)
        session = conn.session
        if session is not None and session.connection is conn:
            session.connection = None
            session.position = position
            self.away.left(session.replies)

    def _read_on(self) -> None:
        """The kernel is owed little again: read from the connections held back."""
        for conn in list(self.connections):
            if conn.held_back and conn.session is not None:
                if conn.session.replies.below_low_water():
                    conn.read_on()

    def gap_notice(self, gap: Gap) -> Message:
        """The stderr notice a reader gets in place of the messages it missed."""
        log = self.kernel.output_log
        s = "" if gap.messages == 1 else "s"
        text = (
            f"[ipytwist] {gap.messages} output message{s} ({gap.bytes} bytes) dropped: "
            "this client fell behind the kernel's output log, which keeps the newest "
            f"{log.max_messages} messages ({log.max_bytes} bytes).\n"
        )
        # Parented like the message after the gap, so frontends show it in that cell.
        parent = gap.next.msg.get("parent_header") if gap.next is not None else None
        return new_message(
            "stream",
            {"name": "stderr", "text": text},
            self.kernel.session,
            {"header": parent} if parent else None,
        )

    def close(self) -> None:
        """The kernel shut down: close every connection to it."""
        self._on_close()
        if self._held is not None:
            self._release_held()
        for conn in list(self.connections):
            conn.sendClose(1000, "kernel shut down")  # autobahn refuses 1001 from apps
            conn.detach()


class _Factory(WebSocketServerFactory):
    """autobahn's factory of one kernel's connections, which join its hub."""

    def __init__(self, hub: KernelSockets, max_message_bytes: int) -> None:
        WebSocketServerFactory.__init__(self)
        self.protocol = KernelChannelProtocol
        self.hub = hub
        WebSocketServerFactory.setProtocolOptions(
            self,
            # Dead peers are found by ping/pong, never by how far behind a reader is.
            autoPingInterval=30,
            autoPingTimeout=60,
            maxMessagePayloadSize=max_message_bytes,
            maxFramePayloadSize=max_message_bytes,
            # A message past the limit (or another protocol error) gets a close frame that
            # says why (1009 and the sizes), not a dropped TCP connection; then it lingers.
            failByDrop=False,
            closeHandshakeTimeout=CLOSE_HANDSHAKE_SECONDS,
            allowedOrigins=["*"],  # Origin is checked before the upgrade (see site.py)
            allowNullOrigin=True,
        )


class _Transport(Protocol):
    """A connection's TCP (or TLS) transport: a consumer, a push producer of requests."""

    def write(self, data: bytes) -> None: ...
    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None: ...
    def unregisterProducer(self) -> None: ...
    def pauseProducing(self) -> None: ...
    def resumeProducing(self) -> None: ...


_log = Logger()


class KernelChannelProtocol(PacedProtocol):
    """One WebSocket connection to a kernel's channels."""

    # Our own messages go to ``_log``: autobahn's ``self.log`` is a txaio logger
    # filtered by level; replacing it would log every frame at debug level.
    hub: KernelSockets
    session: ClientSession | None = None
    outbox: Outbox | None = None
    tcp: _Transport
    origin = "websocket"
    v1 = False
    #: autobahn's frames waiting for the end of the frame being written.
    _held: list[tuple[bytes, bool, int | None]]

    def onConnect(self, request: Any) -> str | None:
        """autobahn: the upgrade request; pick the protocol, refuse a dead kernel."""
        self.hub = self.factory.hub
        self.pacer = self.hub.pacer
        self.group = self.hub.kernel
        params = request.params
        self._session_id = (params.get("session_id") or [""])[0][:256]
        self._since = (params.get("since_msg_id") or [""])[0][:256]
        if not self._session_id:
            self._session_id = "anonymous-" + uuid.uuid4().hex
        if self.hub.kernel.execution_state == "dead":
            raise ConnectionDeny(404, "kernel is gone")
        self.origin = client_kind(request.headers)
        if V1_PROTOCOL in request.protocols:
            self.v1 = True
            return V1_PROTOCOL
        return None

    def onOpen(self) -> None:
        """autobahn: the connection is open; attach it to its session."""
        self.hub.attach(self, self._session_id, self._since)

    def start(self, session: ClientSession, cursor: Cursor) -> None:
        """Begin writing: the backlog from ``cursor`` first, then live messages."""
        self.session = session
        self._held = []
        #: The transport, as the TCP (or TLS) transport it is under a WebSocketResource
        #: (kept typed once: every frame is written through it).
        self.tcp = cast(_Transport, self.transport)
        framer = self.hub.framers.of(self.v1, self.origin)
        noted = position_noter(self.hub.kernel, session.id)
        self.outbox = Outbox(cursor, session.replies, framer, self, noted=noted)
        try:
            # Under WebSocketResource the HTTP channel is registered as producer.
            self.tcp.unregisterProducer()
        except Exception as e:  # none registered: nothing to replace
            _log.debug("no producer to unregister ({e})", e=type(e).__name__)
        try:
            self.tcp.registerProducer(self.paced(OutboxProducer(self.outbox)), True)
        except Exception as e:
            _log.warn("no backpressure for this connection ({e})", e=type(e).__name__)
        self.outbox.pump()

    def pump(self) -> None:
        """Write what is waiting, as far as the transport takes it."""
        if self.outbox is not None:
            self.outbox.pump()

    def wake(self) -> None:
        """New messages for this connection's cursor (the log's Reader interface)."""
        self.pump()

    # -- writing ------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Part of a pre-framed message (see :mod:`~ipytwist.web.wsformat`), straight to
        the transport: the frames are the same for all connections (autobahn's
        sendMessage would re-frame them per connection).  Per-message compression is
        never negotiated by our factory, so frames need no per-connection work.  A
        frame begun is finished, even once the connection is closing."""
        if self.state == self.STATE_OPEN or (self.outbox is not None and self.outbox.mid_frame):
            self.tcp.write(data)
        elif self.outbox is not None:
            self.outbox.pause()

    def frame_done(self) -> None:
        """A message is written (or a request handled): read requests again once the
        session is owed little."""
        if self.held_back and self.session is not None:
            if self.session.replies.below_low_water():
                self.read_on()

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        """autobahn: one of its own frames (ping, pong, close).  It must not land inside
        one of ours: while one is partly written, it waits for its end."""
        if self.outbox is not None and self.outbox.mid_frame:
            self._held.append((data, sync, chopsize))
        else:
            super().sendData(data, sync, chopsize)

    def between_frames(self) -> None:
        """Our frame is complete: autobahn's frames held back meanwhile go now."""
        held, self._held = self._held, []
        for data, sync, chopsize in held:
            super().sendData(data, sync, chopsize)

    # -- reading ------------------------------------------------------------------

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """autobahn: a message from the client, a request for the kernel."""
        try:
            msg = decode_v1(payload) if self.v1 else decode_legacy(payload, isBinary)
        except FrameError as e:
            self.hub.rejects.warn(
                "WebSocket: dropped message: {why}", type(e).__name__, why=str(e)[:200]
            )
            return
        if self.session is None:
            return
        replies = self.session.replies
        replies.request_sent(msg, len(payload))
        self.hub.request(Request(msg["channel"], msg, self.session))
        if replies.over_bound() and not self.held_back:
            # Requests wait in the client's socket until it reads what it is owed.
            self.hold_back()

    def detach(self) -> None:
        """Stop writing and leave the hub (the session keeps its position)."""
        outbox = self.outbox
        if outbox is not None:
            outbox.finish_frame()  # a close frame held back goes after it
            self.outbox = None
            self.hub.detach(self, outbox.close())
            self.between_frames()
        else:
            self.hub.connections.discard(self)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        """autobahn: the connection closed."""
        if getattr(self, "hub", None) is not None:
            self.detach()
