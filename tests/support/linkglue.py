"""The service's end of a keeper's link driven in process: a listener that keeps what
it is given, transports whose peer takes everything, the handshake between the two
ends (tests/glue/test_adopt.py, test_directpipe.py)."""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import StringTransport

from ipytwist.kernel.linked import LinkedWorker
from ipytwist.link.end import LinkEnd

SECRET = b"s" * 32
KID = "kernel-1"


class Listener:
    def __init__(self) -> None:
        self.output: list[bytes] = []

    def worker_output(self, name: str, data: bytes) -> None:
        self.output.append(data)

    def worker_event(self, event: dict[str, Any]) -> None:
        pass

    def worker_exited(self, worker: Any, description: str) -> None:
        pass


class Taking(StringTransport):
    """A transport whose peer takes everything at once: the link's pull producer (its
    feeder) is asked on until it has nothing left, as Twisted asks it each time its
    buffer is written."""

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        super().registerProducer(producer, streaming)
        while self.producer is producer:
            producer.resumeProducing()


class Recording(Taking):
    """Writes, in one list with the journal's calls (their order matters)."""

    def __init__(self, events: list[Any]) -> None:
        super().__init__()
        self.events = events

    def write(self, data: bytes) -> None:
        self.events.append(("write", data))
        super().write(data)


def shake(worker: LinkedWorker, keeper: LinkEnd, transport: StringTransport) -> None:
    """The handshake between the two ends, through the transport."""
    worker.dataReceived(keeper.connection_made())
    write, _ = keeper.data_received(transport.value())
    transport.clear()
    worker.dataReceived(b"".join(write))


def acked(keeper: LinkEnd, transport: StringTransport) -> int:
    keeper.data_received(transport.value())
    transport.clear()
    return keeper.out.acked
