"""ZeroMQ as a transport of the host: each hosted kernel's five channels, bound on
loopback, with a 0600 connection file in the state directory so that
``jupyter console --existing`` reaches the very kernel the browsers use."""

from __future__ import annotations

import os

import zmq
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from txzmq import ZmqFactory

from ..config import Config
from ..kernel import Kernel, Request
from ..private import write_private_json
from .channels import ZmqChannels, new_connection_info

__all__ = ["ZmqAttachment", "ZmqTransport"]


class ZmqAttachment:
    """One hosted kernel's channels and connection file."""

    def __init__(self, channels: ZmqChannels, connection_file: str) -> None:
        self.channels = channels
        self.connection_file = connection_file

    def connection_count(self) -> int:
        """1 while a ZeroMQ client is there, else 0."""
        return self.channels.connection_count()

    def requests_in_flight(self) -> Deferred[list[Request]]:
        """The shell requests waiting in the socket (see ZmqChannels)."""
        return self.channels.requests_in_flight()

    def close(self) -> None:
        """Close the channels and remove the connection file."""
        self.channels.close()
        try:
            os.unlink(self.connection_file)
        except FileNotFoundError:
            pass


class ZmqTransport:
    """Binds the channels of every hosted kernel (one ZeroMQ context for all)."""

    name = "zmq"
    log = Logger()

    def __init__(self, reactor: IReactorTime, config: Config) -> None:
        self.reactor = reactor
        self.config = config
        self._factory: ZmqFactory | None = None

    def start(self) -> None:
        """Make the one ZeroMQ context for every kernel."""
        self._factory = ZmqFactory()
        self._factory.reactor = self.reactor
        # Five sockets per kernel: the default limit (1023) would stop at ~200 kernels.
        self._factory.context.set(zmq.MAX_SOCKETS, 65536)

    def attach(self, kernel: Kernel) -> ZmqAttachment:
        """Bind one kernel's channels and write its connection file (0600)."""
        assert self._factory is not None, "the ZeroMQ transport is not started"
        channels = ZmqChannels(
            kernel,
            new_connection_info(),
            self.reactor,
            factory=self._factory,
            max_message_bytes=self.config.max_message_bytes,
        )
        attachment = ZmqAttachment(
            channels, os.path.join(self.config.state_dir, f"kernel-{kernel.id}.json")
        )
        try:
            write_private_json(attachment.connection_file, channels.connection)
        except OSError as e:  # (disk full, read-only): no sockets or partial file stay
            attachment.close()
            raise OSError(e.errno, f"cannot write its connection file: {e.strerror}") from None
        return attachment

    def stop(self) -> None:
        """Close the ZeroMQ context."""
        if self._factory is not None:
            self._factory.shutdown()
            self._factory = None
