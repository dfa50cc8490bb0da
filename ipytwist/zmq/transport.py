"""ZeroMQ as a transport of the host: each hosted kernel's five channels, bound on
loopback, with a 0600 connection file in the state directory so that
``jupyter console --existing`` reaches the very kernel the browsers use.

A durable kernel (one with a directory, :mod:`ipytwist.kernel.record`) keeps its
connection in its record: a new service re-adopting it binds the same ports with
the same key, so clients on the old connection file go on; if a port was taken
meanwhile, fresh ones (one log line) and the file is rewritten.  Its connection
file stays for as long as the kernel's directory does (a stop with
``--keep-kernels`` keeps both).
"""

from __future__ import annotations

import os

import zmq
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from txzmq import ZmqFactory

from ..config import Config
from ..kernel import Kernel, Request
from ..kernel.record import kernel_dir, read_record, update_record
from ..private import write_private_json
from .channels import PORT_NAMES, ZmqChannels, new_connection_info

__all__ = ["ZmqAttachment", "ZmqTransport"]


class ZmqAttachment:
    """One hosted kernel's channels and connection file."""

    def __init__(self, channels: ZmqChannels, connection_file: str, directory: str = "") -> None:
        self.channels = channels
        self.connection_file = connection_file
        #: The kernel's directory, if it is durable: the file stays while it does.
        self.directory = directory

    def connection_count(self) -> int:
        """1 while a ZeroMQ client is there, else 0."""
        return self.channels.connection_count()

    def requests_in_flight(self) -> Deferred[list[Request]]:
        """The shell requests waiting in the socket (see ZmqChannels)."""
        return self.channels.requests_in_flight()

    def close(self) -> None:
        """Close the channels and remove the connection file (unless the kernel lives on
        without this service: its directory is still there)."""
        self.channels.close()
        if self.directory and os.path.isdir(self.directory):
            return
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
        directory = kernel_dir(self.config.state_dir, kernel.id)
        record = read_record(directory)
        kept = record.get("connection") if record is not None else None
        channels = None
        if isinstance(kept, dict):
            try:
                channels = self._channels(kernel, kept)
            except zmq.ZMQError as e:
                self.log.warn(
                    "kernel {id}: its ports are taken ({why}); it gets new ones, and its "
                    "clients must read its connection file again",
                    id=kernel.id,
                    why=e.strerror,
                )
                kept = {k: v for k, v in kept.items() if k not in PORT_NAMES}
        if channels is None:
            channels = self._channels(kernel, {**new_connection_info(), **(kept or {})})
        path = os.path.join(self.config.state_dir, f"kernel-{kernel.id}.json")
        attachment = ZmqAttachment(channels, path, directory if record is not None else "")
        try:
            write_private_json(attachment.connection_file, channels.connection)
            update_record(directory, connection=channels.connection)
        except OSError as e:  # (disk full, read-only): no sockets or partial file stay
            attachment.directory = ""
            attachment.close()
            raise OSError(e.errno, f"cannot write its connection file: {e.strerror}") from None
        return attachment

    def _channels(self, kernel: Kernel, connection: dict[str, object]) -> ZmqChannels:
        assert self._factory is not None, "the ZeroMQ transport is not started"
        return ZmqChannels(
            kernel,
            connection,
            self.reactor,
            factory=self._factory,
            max_message_bytes=self.config.max_message_bytes,
        )

    def stop(self) -> None:
        """Close the ZeroMQ context."""
        if self._factory is not None:
            self._factory.shutdown()
            self._factory = None
