"""The five Jupyter ZeroMQ channels of one kernel, on txzmq.

shell, control and stdin are ROUTER sockets, iopub is an XPUB socket that
greets every subscription with ``iopub_welcome``, heartbeat is a REP socket
echoing in the reactor (so it answers while user code runs in the worker).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from typing import Any

import zmq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from txzmq import ZmqConnection, ZmqFactory

from ..kernel import Envelope, Kernel, Request
from ..loglimit import LimitedLog
from ..pacing import QUANTUM_BYTES, QUANTUM_MESSAGES, pacer_for
from ..wire import DEFAULT_MAX_MESSAGE_BYTES, Message, WireCodec, WireError, new_message

PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
#: Messages queued for one slow iopub subscriber before ZeroMQ drops them for it
#: (ZeroMQ's default, as with ipykernel).  Stream messages are at most 64 Ki chars.
IOPUB_HWM = 1000

#: libzmq refuses (and disconnects) a peer sending a frame larger than the message
#: limit plus this, before allocating it; smaller oversized messages are dropped
#: (and logged) by the wire codec.
FRAME_SLACK = 1 << 20
#: A ZeroMQ client not heard from (heartbeat, request) for this long is gone.
CLIENT_GONE_AFTER = 30.0
#: Subscriptions and heartbeats are tiny.
SMALL_FRAME_BYTES = 64 * 1024


class Oversized:
    """Stands for a multipart message whose frames added up past the limit."""

    def __init__(self, total: int) -> None:
        self.total = total


#: A multipart message as read: its frames, or what stands for them past the limit.
Frames = list[bytes] | Oversized


class _Socket(ZmqConnection):
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

    def send(self, message: bytes | list[bytes]) -> None:
        """Send a (multipart) message now; ZeroMQ raises ``zmq.Again`` when it is full."""
        parts = [message] if isinstance(message, bytes) else message
        for part in parts[:-1]:
            self.zmq.send(part, zmq.NOBLOCK | zmq.SNDMORE)
        self.zmq.send(parts[-1], zmq.NOBLOCK)
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
        events = self.socket.get(zmq.EVENTS)
        return isinstance(events, int) and bool(events & zmq.POLLIN)

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


class ZmqRequester:
    """Replies to one ZeroMQ client, addressed by its routing identities."""

    origin = "zmq"

    def __init__(self, channels: ZmqChannels, idents: list[bytes]) -> None:
        self.channels = channels
        self.idents = idents

    def send(self, channel: str, msg: Message) -> None:
        """A reply for this client on ``channel``, addressed by its identities."""
        self.channels.send(channel, msg, self.idents)

    def __eq__(self, other: object) -> bool:
        """The same ZeroMQ client: one routing identity serves its shell and stdin."""
        return (
            isinstance(other, ZmqRequester)
            and other.channels is self.channels
            and other.idents == self.idents
        )

    def __hash__(self) -> int:
        return hash(tuple(self.idents))


def new_connection_info(ip: str = "127.0.0.1", transport: str = "tcp") -> dict[str, Any]:
    """A connection description with free ports and a random 256-bit key."""
    info: dict[str, Any] = {
        "ip": ip,
        "transport": transport,
        "signature_scheme": "hmac-sha256",
        "key": secrets.token_hex(32),
        "kernel_name": "ipytwist",
    }
    for name in PORT_NAMES:
        info[name] = 0
    return info


class ZmqChannels:
    """Bind the channels described by ``connection`` and wire them to ``kernel``."""

    log = Logger()

    def __init__(
        self,
        kernel: Kernel,
        connection: dict[str, Any],
        reactor: IReactorTime,
        factory: ZmqFactory | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.kernel = kernel
        self.reactor = reactor
        self.connection = dict(connection)
        #: Rejected input is logged at most a few lines at a time, then summarised.
        self.rejects = LimitedLog(self.log, reactor)
        self.codec = WireCodec(
            str(connection.get("key", "")).encode(),
            connection.get("signature_scheme", "hmac-sha256"),
            max_message_bytes,
        )
        if factory is None:
            factory = ZmqFactory()
            factory.reactor = reactor
            factory.registerForShutdown()
        self.factory = factory
        self._topic_prefix = f"kernel.{kernel.id}.".encode()
        #: Topics someone subscribes to: with none, iopub messages are not even encoded.
        self._topics: set[bytes] = set()

        def router(name: str) -> _Socket:
            sock = _Socket(
                factory,
                zmq.ROUTER,
                lambda frames: self._on_request(name, frames),
                max_message_bytes,
                kernel,
            )
            sock.zmq.set(zmq.ROUTER_HANDOVER, 1)
            return sock

        self.sockets: dict[str, _Socket] = {
            "shell": router("shell"),
            "control": router("control"),
            "stdin": router("stdin"),
            "iopub": _Socket(factory, zmq.XPUB, self._on_subscription, group=kernel),
            "hb": _Socket(factory, zmq.REP, self._on_heartbeat, group=kernel),
        }
        iopub = self.sockets["iopub"].zmq
        iopub.set(zmq.XPUB_VERBOSE, 1)
        iopub.set(zmq.SNDHWM, IOPUB_HWM)
        for name, sock in self.sockets.items():
            key = "hb_port" if name == "hb" else f"{name}_port"
            self.connection[key] = self._bind(sock, int(connection.get(key) or 0))
        kernel.output_log.subscribe(self)
        #: When a client last showed it is there (a request, a subscription, a ping).
        self.last_seen = -1.0

    def _bind(self, sock: _Socket, port: int) -> int:
        ip = self.connection.get("ip", "127.0.0.1")
        if self.connection.get("transport", "tcp") == "ipc":
            if port <= 0:
                port = 1
                while os.path.exists(f"{ip}-{port}"):
                    port += 1
            sock.zmq.bind(f"ipc://{ip}-{port}")
            return port
        if port <= 0:
            return int(sock.zmq.bind_to_random_port(f"tcp://{ip}"))
        sock.zmq.bind(f"tcp://{ip}:{port}")
        return port

    # -- incoming -----------------------------------------------------------

    def _on_request(self, channel: str, frames: Frames) -> None:
        request = self._decode(channel, frames)
        if request is None:
            return
        try:
            self.kernel.handle(*request)
        except Exception as e:  # a bad request must never take the kernel down
            self.log.failure(
                "{channel}: error handling {t}: {e}",
                channel=channel,
                t=request.msg_type[:64],
                e=type(e).__name__,
            )

    def _decode(self, channel: str, frames: Frames) -> Request | None:
        """The request in ``frames``, or None (logged) if it is not one."""
        kind, why = "", ""
        if isinstance(frames, Oversized):
            kind = "size"
            why = f"message of {frames.total}+ bytes exceeds {self.codec.max_message_bytes}"
        else:
            try:
                idents, msg = self.codec.deserialize(frames)
            except WireError as e:
                kind, why = type(e).__name__, str(e)
            else:
                if isinstance(msg["header"].get("msg_id", ""), str):
                    self._seen()
                    return Request(channel, msg, ZmqRequester(self, idents))
                kind, why = "msg_id", "msg_id is not a string"
        self.rejects.warn(
            "{channel}: dropped message: {why}", f"{channel}:{kind}", channel=channel, why=why
        )
        return None

    def requests_in_flight(self) -> Deferred[list[Request]]:
        """The shell requests waiting in the socket, read now and returned rather than
        handed to the kernel (see :mod:`ipytwist.kernel.aborts`)."""
        sock = self.sockets["shell"]
        waiting = sock.read_waiting() if sock.socket is not None else []
        decoded = (self._decode("shell", frames) for frames in waiting)
        return succeed([r for r in decoded if r is not None])

    def _seen(self) -> None:
        self.last_seen = self.reactor.seconds()

    def connection_count(self) -> int:
        """1 while a client is there: ZeroMQ has no connections, but an iopub
        subscription stays while its client does, and every Jupyter client pings the
        heartbeat channel every few seconds."""
        if self._topics:
            return 1
        if self.last_seen < 0:
            return 0
        return int(self.reactor.seconds() - self.last_seen < CLIENT_GONE_AFTER)

    def _on_subscription(self, frames: Frames) -> None:
        if isinstance(frames, Oversized):
            return self._drop_oversized("iopub", frames)
        self._seen()
        frame = frames[0] if frames else b""
        if frame[:1] == b"\x00":
            # Sent by ZeroMQ when the last subscriber of this topic has gone.
            self._topics.discard(frame[1:])
        elif frame[:1] == b"\x01":
            self._topics.add(frame[1:])
            topic = frame[1:].decode("utf-8", "replace")
            welcome = new_message("iopub_welcome", {"subscription": topic}, self.kernel.session)
            self._send("iopub", self.codec.serialize(welcome, [b"iopub_welcome"]))

    def _on_heartbeat(self, frames: Frames) -> None:
        if isinstance(frames, Oversized):
            return self._drop_oversized("hb", frames)
        self._seen()
        self._send("hb", frames)

    def _drop_oversized(self, channel: str, frames: Oversized) -> None:
        """Subscriptions and pings are small: a larger message is dropped (and logged)."""
        self.rejects.warn(
            "{channel}: dropped message of {n}+ bytes",
            f"{channel}:size",
            channel=channel,
            n=frames.total,
        )

    # -- outgoing -----------------------------------------------------------

    def send(self, channel: str, msg: Message, idents: list[bytes]) -> None:
        """Send ``msg`` on ``channel`` to the client with routing ``idents``."""
        self._send(channel, self.codec.serialize(msg, idents))

    def deliver(self, envelope: Envelope) -> None:
        """Publish one iopub message (encoded once, shared by every ZMQ subscriber)."""
        if not self._topics:
            return  # XPUB would drop it: nobody subscribes
        self._send("iopub", envelope.encoded("zmq", self._encode_iopub))

    def _encode_iopub(self, msg: Message) -> list[bytes]:
        return self.codec.serialize(msg, [self._topic_prefix + msg["msg_type"].encode()])

    def _send(self, channel: str, frames: list[bytes]) -> None:
        sock = self.sockets.get(channel)
        if sock is None or sock.socket is None:
            return
        try:
            sock.send(frames)
        except zmq.ZMQError as e:
            self.log.warn("{channel}: could not send ({e})", channel=channel, e=e.strerror)

    def close(self) -> None:
        """Stop serving the kernel: leave its output log and close the sockets."""
        self.kernel.output_log.unsubscribe(self)
        for sock in self.sockets.values():
            if sock.socket is not None:
                sock.shutdown()
