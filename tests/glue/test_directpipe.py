"""Small requests straight into the interpreter's request pipe (kernel/directpipe.py):
the keeper's descriptor goes with its ``PIPE`` frame's bytes, and the service writes a
request straight in only when that keeps the order through the keeper."""

from __future__ import annotations

import array
import os
import socket
from collections.abc import Iterator

import pytest
from support.linkglue import KID, SECRET, Listener, Taking, shake
from twisted.internet.task import Clock

from ipytwist.framing import encode_record
from ipytwist.kernel.directpipe import ATOMIC_BYTES
from ipytwist.kernel.linked import LinkedWorker
from ipytwist.link.end import LinkEnd
from ipytwist.link.wire import Kind, encode_frame
from ipytwist.worker.keepio import FrameQueue

SMALL = {"req": "execute", "content": {"code": "1"}}
LARGE = {"req": "execute", "content": {"code": "x" * (ATOMIC_BYTES + 1)}}


@pytest.fixture(name="pipe")
def pipe_fixture() -> Iterator[tuple[int, int]]:
    """The interpreter's request pipe: (read end, the keeper's non-blocking write end)."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    yield r, w
    os.close(r)
    os.close(w)


def piped(r: int) -> bytes:
    try:
        return os.read(r, 1 << 20)
    except BlockingIOError:
        return b""


class Linked:
    """A service's worker joined to a keeper's end, the pipe handed over."""

    def __init__(self, w: int, handed: int | None = None) -> None:
        self.worker = LinkedWorker(Listener(), SECRET, KID, Clock())
        self.transport = Taking()
        self.worker.makeConnection(self.transport)
        self.keeper = LinkEnd(True, SECRET, KID)
        shake(self.worker, self.keeper, self.transport)
        self.handed = os.dup(w) if handed is None else handed
        self.worker.fileDescriptorReceived(self.handed)
        self.worker.dataReceived(encode_frame(Kind.PIPE, 0, 0))

    def frames(self) -> list[Kind]:
        """The data frames the keeper took since the last look."""
        _, frames = self.keeper.data_received(self.transport.value())
        self.transport.clear()
        return [f.kind for f in frames]

    def ack(self) -> None:
        """The keeper has written what it took (acks ride on its next frame)."""
        self.frames()
        self.worker.dataReceived(self.keeper.acknowledge(self.keeper.inbound.taken))


def test_a_small_request_goes_straight_into_the_pipe(pipe: tuple[int, int]) -> None:
    r, w = pipe
    link = Linked(w)
    link.worker.send(SMALL)
    assert piped(r) == encode_record(SMALL)
    assert link.frames() == []


def test_a_large_request_goes_through_the_keeper_and_what_follows_waits_for_its_ack(
    pipe: tuple[int, int],
) -> None:
    """Past PIPE_BUF a write may be cut (a killed service would tear the record): the
    keeper writes it; a small request behind it must not overtake it, so it follows
    through the keeper too until the keeper has acked (written) both."""
    r, w = pipe
    link = Linked(w)
    link.worker.send(LARGE)
    link.worker.send(SMALL)
    assert piped(r) == b""
    assert link.frames() == [Kind.REQUEST, Kind.REQUEST]
    link.ack()
    link.worker.send(SMALL)
    assert piped(r) == encode_record(SMALL)


def test_a_request_after_an_interrupt_waits_for_the_keeper_to_deliver_it(
    pipe: tuple[int, int],
) -> None:
    """Straight in, the next cell could start before the keeper sends SIGINT: the
    interrupt meant for the last cell would hit it."""
    r, w = pipe
    link = Linked(w)
    link.worker.signal(2)
    link.worker.send(SMALL)
    assert piped(r) == b""
    assert link.frames() == [Kind.CONTROL, Kind.REQUEST]


def test_a_full_pipe_sends_the_request_through_the_keeper(pipe: tuple[int, int]) -> None:
    """The interpreter is busy and its pipe full: nothing is written (no part of a
    record), the keeper queues it."""
    r, w = pipe
    link = Linked(w)
    filled = 0
    try:
        while True:
            filled += os.write(w, b"f" * 4096)
    except BlockingIOError:
        pass
    link.worker.send(SMALL)
    assert link.frames() == [Kind.REQUEST]
    assert len(piped(r)) == filled


def test_a_blocking_descriptor_is_not_used(pipe: tuple[int, int]) -> None:
    """A blocking write into a full pipe would stop the whole service: refused."""
    r, w = pipe
    r2, w2 = os.pipe()  # (blocking, as a fresh pipe is)
    link = Linked(w, handed=w2)
    link.worker.send(SMALL)
    assert link.frames() == [Kind.REQUEST]
    with pytest.raises(OSError):
        os.fstat(w2)  # closed by the worker
    os.close(r2)


def test_the_pipe_is_closed_with_the_link(pipe: tuple[int, int]) -> None:
    """A lost link forgets the pipe: the interpreter sees its end of input only from
    its keeper, and a new connection hands it over anew."""
    r, w = pipe
    link = Linked(w)
    link.worker.connectionLost()
    with pytest.raises(OSError):
        os.fstat(link.handed)


def test_a_descriptor_without_a_pipe_frame_is_never_used(pipe: tuple[int, int]) -> None:
    r, w = pipe
    worker = LinkedWorker(Listener(), SECRET, KID, Clock())
    transport = Taking()
    worker.makeConnection(transport)
    keeper = LinkEnd(True, SECRET, KID)
    shake(worker, keeper, transport)
    worker.fileDescriptorReceived(os.dup(w))
    worker.send(SMALL)
    assert piped(r) == b""
    worker.connectionLost()


def test_the_keepers_queue_sends_the_descriptor_with_its_frames_first_byte(
    pipe: tuple[int, int],
) -> None:
    """What waits before the ``PIPE`` frame goes first; the descriptor is read with the
    frame's first byte (so it is there when the service parses the frame), and it is a
    copy of the keeper's write end."""
    r, w = pipe
    a, b = socket.socketpair()
    queue = FrameQueue()
    queue.add([b"before"])
    queue.add_with_fd(b"PIPE", w)
    queue.add([b"after"])
    queue.write(a)
    assert not queue
    got, fds = b"", array.array("i")
    while len(got) < len(b"beforePIPEafter"):
        data, ancillary, _, _ = b.recvmsg(64, socket.CMSG_SPACE(4 * fds.itemsize))
        for level, kind, cdata in ancillary:
            assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
            assert len(got) <= 6 < len(got) + len(data)  # (with the frame's first byte)
            fds.frombytes(cdata)
        got += data
    assert got == b"beforePIPEafter"
    (copy,) = fds
    os.write(copy, b"straight in")
    assert piped(r) == b"straight in"
    os.close(copy)
    a.close()
    b.close()
