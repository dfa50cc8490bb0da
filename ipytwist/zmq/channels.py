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
from twisted.logger import Logger
from txzmq import ZmqConnection, ZmqFactory

from ..kernel.core import Kernel
from ..kernel.envelope import Envelope
from ..loglimit import LimitedLog
from ..private import write_private_json
from ..wire import DEFAULT_MAX_MESSAGE_BYTES, Message, WireCodec, WireError, new_message

PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
#: Messages queued for one slow iopub subscriber before ZeroMQ drops them for it
#: (ZeroMQ's default, as with ipykernel).  Stream messages are at most 64 Ki chars.
IOPUB_HWM = 1000


#: Messages read from one socket per reactor turn: a flood of requests on one
#: kernel leaves the reactor free for the others between batches.
READ_BATCH = 100
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


class _Socket(ZmqConnection):
    """A txzmq connection that hands every multipart message to a callback, reads a
    bounded batch per reactor turn and never holds more than one oversized frame."""

    def __init__(
        self,
        factory: ZmqFactory,
        socket_type: int,
        on_message: Callable,
        max_bytes: int = SMALL_FRAME_BYTES,
    ) -> None:
        self.socketType = socket_type
        self.on_message = on_message
        self.max_bytes = max_bytes
        self._oversized = 0
        super().__init__(factory)
        self.socket.set(zmq.MAXMSGSIZE, max_bytes + FRAME_SLACK)

    def messageReceived(self, message: Any) -> None:
        self.on_message(message)

    def _readMultipart(self) -> Any:
        # txzmq keeps every frame; past the limit we keep none and count only.
        total = sum(len(p) for p in self.recv_parts)
        while True:
            part = self.socket.recv(zmq.NOBLOCK)
            total += len(part)
            if total <= self.max_bytes:
                self.recv_parts.append(part)
            else:
                self.recv_parts = []
                self._oversized = total
            if not self.socket.get(zmq.RCVMORE):
                result, self.recv_parts = self.recv_parts, []
                big, self._oversized = self._oversized, 0
                return Oversized(big) if big else result

    def doRead(self, limit: int | None = READ_BATCH) -> None:
        """Read up to ``limit`` messages now; the rest on the next reactor turn."""
        if self.read_scheduled is not None:
            if not self.read_scheduled.called:
                self.read_scheduled.cancel()
            self.read_scheduled = None
        count = 0
        while self.factory is not None and self.socket is not None:
            if not self.socket.get(zmq.EVENTS) & zmq.POLLIN:
                return
            if limit is not None and count >= limit:
                from twisted.internet import reactor

                self.read_scheduled = reactor.callLater(0, self.doRead)
                return
            try:
                message = self._readMultipart()
            except zmq.Again:
                continue
            count += 1
            self.messageReceived(message)


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


def write_connection_file(path: str, info: dict[str, Any]) -> None:
    """Write ``info`` as JSON readable by its owner only (mode 0600)."""
    write_private_json(path, info)


class ZmqChannels:
    """Bind the channels described by ``connection`` and wire them to ``kernel``."""

    log = Logger()

    def __init__(
        self,
        kernel: Kernel,
        connection: dict[str, Any],
        factory: ZmqFactory | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.kernel = kernel
        self.connection = dict(connection)
        #: Rejected input is logged at most a few lines at a time, then summarised.
        self.rejects = LimitedLog(self.log, kernel.reactor)
        self.codec = WireCodec(
            str(connection.get("key", "")).encode(),
            connection.get("signature_scheme", "hmac-sha256"),
            max_message_bytes,
        )
        if factory is None:
            factory = ZmqFactory()
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
            )
            sock.socket.set(zmq.ROUTER_HANDOVER, 1)
            return sock

        self.sockets: dict[str, _Socket] = {
            "shell": router("shell"),
            "control": router("control"),
            "stdin": router("stdin"),
            "iopub": _Socket(factory, zmq.XPUB, self._on_subscription),
            "hb": _Socket(factory, zmq.REP, self._on_heartbeat),
        }
        iopub = self.sockets["iopub"].socket
        iopub.set(zmq.XPUB_VERBOSE, 1)
        iopub.set(zmq.SNDHWM, IOPUB_HWM)
        for name, sock in self.sockets.items():
            key = "hb_port" if name == "hb" else f"{name}_port"
            self.connection[key] = self._bind(sock, int(connection.get(key) or 0))
        kernel.stream.subscribe(self)
        #: When a client last showed it is there (a request, a subscription, a ping).
        self.last_seen = -1.0

    def _bind(self, sock: _Socket, port: int) -> int:
        ip = self.connection.get("ip", "127.0.0.1")
        if self.connection.get("transport", "tcp") == "ipc":
            if port <= 0:
                port = 1
                while os.path.exists(f"{ip}-{port}"):
                    port += 1
            sock.socket.bind(f"ipc://{ip}-{port}")
            return port
        if port <= 0:
            return sock.socket.bind_to_random_port(f"tcp://{ip}")
        sock.socket.bind(f"tcp://{ip}:{port}")
        return port

    # -- incoming -----------------------------------------------------------

    def _on_request(self, channel: str, frames: list[bytes]) -> None:
        if isinstance(frames, Oversized):
            why = f"message of {frames.total}+ bytes exceeds {self.codec.max_message_bytes}"
            self.rejects.warn(
                "{channel}: dropped message: {why}", f"{channel}:size", channel=channel, why=why
            )
            return
        try:
            idents, msg = self.codec.deserialize(frames)
        except WireError as e:
            self.rejects.warn(
                "{channel}: dropped message: {why}",
                f"{channel}:{type(e).__name__}",
                channel=channel,
                why=str(e),
            )
            return
        if not isinstance(msg["header"].get("msg_id", ""), str):
            self.rejects.warn(
                "{channel}: dropped message: {why}",
                f"{channel}:msg_id",
                channel=channel,
                why="msg_id is not a string",
            )
            return
        self._seen()
        try:
            self.kernel.handle(channel, msg, ZmqRequester(self, idents))
        except Exception as e:  # a bad request must never take the kernel down
            self.log.failure(
                "{channel}: error handling {t}: {e}",
                channel=channel,
                t=msg["msg_type"][:64],
                e=type(e).__name__,
            )

    def _seen(self) -> None:
        self.last_seen = self.kernel.reactor.seconds()

    def connection_count(self) -> int:
        """1 while a client is there: ZeroMQ has no connections, but an iopub
        subscription stays while its client does, and every Jupyter client pings the
        heartbeat channel every few seconds."""
        if self._topics:
            return 1
        if self.last_seen < 0:
            return 0
        return int(self.kernel.reactor.seconds() - self.last_seen < CLIENT_GONE_AFTER)

    def drain_requests(self) -> None:
        """Read the shell requests already waiting (see the kernel's stop_on_error)."""
        sock = self.sockets["shell"]
        if sock.socket is not None:
            sock.doRead(limit=None)

    def _on_subscription(self, frames: list[bytes]) -> None:
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

    def _on_heartbeat(self, frames: list[bytes]) -> None:
        self._seen()
        self._send("hb", frames)

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
        """Stop serving the kernel: leave its stream and close the sockets."""
        self.kernel.stream.unsubscribe(self)
        for sock in self.sockets.values():
            if sock.socket is not None:
                sock.shutdown()
