"""The five Jupyter ZeroMQ channels of one kernel, on txzmq.

shell, control and stdin are ROUTER sockets, iopub is an XPUB socket that
greets every subscription with ``iopub_welcome``, heartbeat is a REP socket
echoing in the reactor (so it answers while user code runs in the worker).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from typing import Any

import zmq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from txzmq import ZmqFactory

from ..kernel import Envelope, Kernel, Request
from ..loglimit import LimitedLog
from ..wire import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DELIMITER,
    Message,
    WireCodec,
    WireError,
    new_message,
)
from .socket import Frames, Oversized, PacedSocket

PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
#: Messages queued for one slow iopub subscriber before ZeroMQ drops them for it
#: (ZeroMQ's default, as with ipykernel).  Stream messages are at most 64 Ki chars.
IOPUB_HWM = 1000


def _kernel_ports() -> tuple[int, int]:
    """Where a kernel's ports are picked: below the range the system gives outgoing
    connections, so that none of them holds a kernel's port when a new service binds it
    again (re-adoption); ZeroMQ's own range where that range is unknown or too low."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            start = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152, 65536
    return (start - 10_000, start) if start > 11_024 else (49152, 65536)


#: The range a kernel's ports are picked from (see _kernel_ports).
KERNEL_PORTS = _kernel_ports()
#: A ZeroMQ client not heard from (heartbeat, request) for this long is gone.
CLIENT_GONE_AFTER = 30.0


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

        def router(name: str) -> PacedSocket:
            sock = PacedSocket(
                factory,
                zmq.ROUTER,
                lambda frames: self._on_request(name, frames),
                max_message_bytes,
                kernel,
            )
            sock.zmq.set(zmq.ROUTER_HANDOVER, 1)
            return sock

        self.sockets: dict[str, PacedSocket] = {
            "shell": router("shell"),
            "control": router("control"),
            "stdin": router("stdin"),
            "iopub": PacedSocket(factory, zmq.XPUB, self._on_subscription, group=kernel),
            "hb": PacedSocket(factory, zmq.REP, self._on_heartbeat, group=kernel),
        }
        iopub = self.sockets["iopub"].zmq
        iopub.set(zmq.XPUB_VERBOSE, 1)
        iopub.set(zmq.SNDHWM, IOPUB_HWM)
        try:
            for name, sock in self.sockets.items():
                key = "hb_port" if name == "hb" else f"{name}_port"
                self.connection[key] = self._bind(sock, int(connection.get(key) or 0))
        except zmq.ZMQError:  # a port given is taken: none of these sockets stays
            for sock in self.sockets.values():
                sock.shutdown()
            raise
        kernel.output_log.subscribe(self)
        #: When a client last showed it is there (a request, a subscription, a ping).
        self.last_seen = -1.0

    def _bind(self, sock: PacedSocket, port: int) -> int:
        ip = self.connection.get("ip", "127.0.0.1")
        if self.connection.get("transport", "tcp") == "ipc":
            if port <= 0:
                port = 1
                while os.path.exists(f"{ip}-{port}"):
                    port += 1
            sock.zmq.bind(f"ipc://{ip}-{port}")
            return port
        if port <= 0:
            low, high = KERNEL_PORTS
            return int(sock.zmq.bind_to_random_port(f"tcp://{ip}", low, high))
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
        """Publish one iopub message: encoded once for every ZMQ subscriber (ZeroMQ
        fans it out), and not kept: nothing else reads this encoding."""
        if not self._topics:
            return  # XPUB would drop it: nobody subscribes
        topic = self._topic_prefix + envelope.msg_type.encode()
        if not envelope.large:
            self._send("iopub", self.codec.serialize(envelope.msg, [topic]))
            return
        # From the pieces the WebSockets share: the large strings are copied once, into
        # the frame ZeroMQ sends without copying it again.
        parts = envelope.parts()
        jsons = [parts.header, parts.parent_header, parts.metadata.fill(), parts.content.fill()]
        signature = self.codec.signer.sign(jsons)
        self._send("iopub", [topic, DELIMITER, signature, *jsons, *parts.buffers])

    def _send(self, channel: str, frames: Sequence[bytes | bytearray]) -> None:
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
