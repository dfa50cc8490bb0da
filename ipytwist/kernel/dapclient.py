"""The kernel's connection to debugpy in its worker: DAP requests and their responses
matched by ``seq``, events handed on.  The framing is :mod:`ipytwist.dap`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IReactorTCP
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..dap import DapDecoder, DapError, encode_dap

__all__ = ["Connect", "DapConnection", "tcp_connect"]

Dap = dict[str, Any]


class DapConnection(Protocol):
    """One DAP session with debugpy: :meth:`request` fires with the response."""

    log = Logger()

    def __init__(self, on_event: Callable[[Dap], None], on_lost: Callable[[], None]) -> None:
        self._on_event = on_event
        self._on_lost = on_lost
        self._decoder = DapDecoder()
        self._pending: dict[int, Deferred[Dap]] = {}
        self._seq = 0
        self.connected_ = False

    def connectionMade(self) -> None:
        """Connected: requests may be sent."""
        self.connected_ = True

    def request(self, message: Dap) -> Deferred[Dap]:
        """Send ``message`` under a sequence number of ours; fires with its response."""
        self._seq += 1
        d: Deferred[Dap] = Deferred()
        if not self.connected_ or self.transport is None:
            d.errback(ConnectionLost("the debugger is not connected"))
            return d
        self._pending[self._seq] = d
        self.transport.write(encode_dap({**message, "seq": self._seq}))
        return d

    def close(self) -> None:
        """End the session."""
        if self.transport is not None:
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        """Responses fire their requests' Deferreds; events go to ``on_event``; bad DAP
        closes the connection."""
        try:
            messages = self._decoder.feed(data)
        except DapError as e:
            self.log.warn("debugpy sent bad DAP: {e}; closing", e=str(e)[:120])
            self.close()
            return
        for message in messages:
            kind = message.get("type")
            if kind == "response":
                d = self._pending.pop(message.get("request_seq"), None)  # type: ignore[arg-type] # any key misses
                if d is not None:
                    d.callback(message)
            elif kind == "event":
                self._on_event(message)

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Requests still waiting fail; ``on_lost`` is told."""
        self.connected_ = False
        pending, self._pending = self._pending, {}
        for d in pending.values():
            d.errback(ConnectionLost("the debugger's connection closed"))
        self._on_lost()


#: Connects a protocol to ``host``:``port``; fires with it connected.
Connect = Callable[[str, int, DapConnection], "Deferred[DapConnection]"]


def tcp_connect(reactor: object = None) -> Connect:
    """A :data:`Connect` over TCP with ``reactor`` (the global reactor by default)."""
    if reactor is None:
        from twisted.internet import reactor

    def connect(host: str, port: int, protocol: DapConnection) -> Deferred[DapConnection]:
        # Imported here: twisted.internet.endpoints imports the TLS stack (cryptography),
        # 14 MiB of every kernel's memory, for the first debugger session only.
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        endpoint = TCP4ClientEndpoint(IReactorTCP(reactor), host, port, timeout=10)
        d: Deferred[DapConnection] = connectProtocol(endpoint, protocol)
        return d

    return connect
