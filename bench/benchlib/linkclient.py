"""The service's end of one keeper's link, blocking: a stand-in for the service that
connects, sends requests and takes (and acks) frames (tests/test_keeper*.py, the fork
bench)."""

from __future__ import annotations

import array
import socket
from collections.abc import Callable

from ipytwist.framing import RecordDecoder, encode_record
from ipytwist.link.end import LinkEnd
from ipytwist.link.unixpath import connect_unix
from ipytwist.link.wire import Frame, Inbound, Kind


class LinkClient:
    """The service's end, blocking: connects, sends, takes frames and acks them."""

    def __init__(
        self, path: str, secret: bytes, kernel_id: str, inbound: Inbound | None = None
    ) -> None:
        self.sock = connect_unix(path, timeout=30)
        self.end = LinkEnd(False, secret, kernel_id, inbound=inbound)
        self.end.connection_made()
        self.frames: list[Frame] = []
        #: Descriptors the keeper sent (its request pipe, with ``PIPE``).
        self.fds: list[int] = []

    def send(self, kind: Kind, body: bytes) -> None:
        self.sock.sendall(b"".join(self.end.send(kind, body)))

    def execute(self, code: str) -> None:
        self.send(Kind.REQUEST, encode_record({"req": "execute", "content": {"code": code}}))

    def _ack(self, seq: int) -> None:
        try:
            if ack := self.end.acknowledge(seq):
                self.sock.sendall(ack)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a keeper that ends does not wait for the ack of its end

    def until(self, done: Callable[[Frame], bool]) -> list[Frame]:
        """Frames taken (and acked) up to the first for which ``done`` holds."""
        got: list[Frame] = []
        while True:
            data, ancillary, _, _ = self.sock.recvmsg(1 << 16, socket.CMSG_SPACE(16))
            for _, _, cdata in ancillary:
                self.fds.extend(array.array("i", cdata))
            assert data, "the keeper closed the link"
            write, frames = self.end.data_received(data)
            if write:
                self.sock.sendall(b"".join(write))
            for frame in frames:
                self._ack(frame.seq)
                got.append(frame)
                if done(frame):
                    return got


def event(frame: Frame) -> dict[str, object]:
    (record,) = RecordDecoder().feed(frame.body) if frame.kind is Kind.EVENT else [{}]
    return record


def is_reply(frame: Frame) -> bool:
    return event(frame).get("ev") == "reply"
