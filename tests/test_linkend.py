"""One end of the worker link across connections: the keeper's and the service's ends
talk through dropped connections and a service that dies (sans-IO)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipytwist.link.end import LinkEnd
from ipytwist.link.shake import LinkRefused
from ipytwist.link.wire import Inbound, Kind, LinkError, Outbound, encode_frame, json_body

SECRET = b"q" * 32
KERNEL = "kernel-7"


class Pair:
    """A keeper and the service of the day, joined by two byte queues."""

    def __init__(self) -> None:
        self.keeper = LinkEnd(True, SECRET, KERNEL, Outbound(window=300), stream="keeper")
        self.log: list[bytes] = []  # the service's persisted log: outlives services
        self.lives = 0
        self.service = self._service()
        self.to_service = bytearray()
        self.to_keeper = bytearray()
        self.produced: list[bytes] = []
        self.requests: list[bytes] = []  # this service life's requests
        self.got: list[bytes] = []  # what the keeper took of this life's requests

    def _service(self) -> LinkEnd:
        self.lives += 1
        inbound = Inbound("keeper", len(self.log)) if self.log else Inbound()
        return LinkEnd(False, SECRET, KERNEL, inbound=inbound, stream=f"service-{self.lives}")

    def connect(self) -> None:
        self.to_service += self.keeper.connection_made()
        self.to_keeper += self.service.connection_made()

    def drop(self) -> None:
        self.keeper.connection_lost()
        self.service.connection_lost()
        self.to_service.clear()
        self.to_keeper.clear()

    def crash(self) -> None:
        self.drop()
        self.service = self._service()
        self.requests, self.got = [], []

    def pump(self, n: int) -> None:
        if not self.keeper.connected:
            return
        chunk, self.to_keeper[:n] = bytes(self.to_keeper[:n]), b""
        write, frames = self.keeper.data_received(chunk)
        self.to_service += b"".join(write)
        self.got.extend(f.body for f in frames)
        self.to_service += self.keeper.acknowledge(self.keeper.inbound.taken)  # written to fd 3
        chunk, self.to_service[:n] = bytes(self.to_service[:n]), b""
        write, frames = self.service.data_received(chunk)
        self.to_keeper += b"".join(write)
        self.log.extend(f.body for f in frames)  # persisted as taken, then acked
        self.to_keeper += self.service.acknowledge(self.service.inbound.taken)

    def settle(self) -> None:
        """Pump until nothing is in flight either way."""
        while self.to_keeper or self.to_service:
            self.pump(1 << 22)

    def produce(self, body: bytes) -> None:
        if not self.keeper.out.full:
            self.produced.append(body)
            self.to_service += b"".join(self.keeper.send(Kind.EVENT, body))

    def request(self, body: bytes) -> None:
        self.requests.append(body)
        self.to_keeper += b"".join(self.service.send(Kind.REQUEST, body))


steps = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["produce", "request"]), st.binary(min_size=1, max_size=30)),
        st.tuples(st.just("pump"), st.integers(0, 150)),
        st.tuples(st.sampled_from(["drop", "crash", "connect"]), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=1000)  # (100 missed a lost ack that 3000 found)
@given(script=steps)
def test_both_ways_every_frame_arrives_once_in_order(script: list[tuple[str, object]]) -> None:
    """Events reach the persisted log once and in order across drops and a service's
    death; requests reach the keeper once and in order within one service's life."""
    pair = Pair()
    pair.connect()
    for op, arg in script:
        if op == "connect":
            pair.drop()
            pair.connect()
        elif isinstance(arg, bytes):
            getattr(pair, op)(arg)
        elif isinstance(arg, int):
            pair.pump(arg)
        else:
            getattr(pair, op)()
        assert pair.log == pair.produced[: len(pair.log)]
        assert pair.got == pair.requests[: len(pair.got)]
    pair.drop()
    pair.connect()
    pair.settle()
    assert pair.log == pair.produced
    assert pair.got == pair.requests
    assert pair.keeper.out.kept_bytes == 0


def test_a_large_frame_right_behind_the_handshake_is_accepted() -> None:
    """The keeper resends a large record in the same write as its WELCOME: the service
    reads it with the authenticated limit, not the handshake's."""
    pair = Pair()
    image = b"x" * (1 << 20)
    pair.keeper.send(Kind.EVENT, image)  # while no service is there
    pair.connect()
    pair.settle()
    assert pair.log == [image]


def test_a_stranger_cannot_send_a_large_frame_before_it_authenticated() -> None:
    keeper = LinkEnd(True, SECRET, KERNEL)
    keeper.connection_made()
    with pytest.raises(LinkError, match="not accepted"):
        keeper.data_received(encode_frame(Kind.AUTH, 0, 0, b"{" * (1 << 17)))


def test_a_refusal_after_the_handshake_ends_the_link() -> None:
    pair = Pair()
    pair.connect()
    pair.settle()
    assert pair.keeper.authenticated and pair.service.authenticated
    refusal = encode_frame(Kind.REFUSE, 0, 0, json_body({"reason": "incompatible"}))
    with pytest.raises(LinkRefused):
        pair.keeper.data_received(refusal)


def test_only_what_was_taken_can_be_acknowledged() -> None:
    with pytest.raises(ValueError, match="only 0 taken"):
        LinkEnd(False, SECRET, KERNEL).acknowledge(1)


def test_a_new_service_is_not_acked_what_the_dead_one_sent() -> None:
    """The keeper took and acked the dead service's requests; the new service's stream
    starts afresh, so the keeper's frames to it ack nothing it has not sent."""
    pair = Pair()
    pair.connect()
    for body in (b"r1", b"r2", b"r3"):
        pair.request(body)
    pair.settle()
    assert pair.got == [b"r1", b"r2", b"r3"]
    pair.crash()
    pair.connect()
    pair.settle()
    pair.produce(b"after")
    pair.settle()  # the new service would refuse an ack of requests it never sent
    assert pair.log == [b"after"]


def test_an_ack_lost_with_a_connection_is_repeated_on_the_next() -> None:
    """The service took and acked an event, but the ack died with the connection: the
    next handshake repeats it, or the keeper would keep the event (and, its window full
    of them, block user code's print for good)."""
    pair = Pair()
    pair.connect()
    pair.settle()
    pair.produce(b"e")
    pair.pump(1 << 16)  # the service takes it; its ack is in flight...
    pair.drop()  # ... and lost
    assert pair.log == [b"e"] and pair.keeper.out.kept_bytes
    pair.connect()
    pair.settle()
    assert pair.keeper.out.kept_bytes == 0


def _shaken(keeper_versions: tuple[int, ...]) -> tuple[LinkEnd, LinkEnd]:
    """A keeper speaking ``keeper_versions`` and a service, after their handshake."""
    keeper = LinkEnd(True, SECRET, KERNEL, versions=keeper_versions)
    service = LinkEnd(False, SECRET, KERNEL)
    service.connection_made()
    to_keeper, _ = service.data_received(keeper.connection_made())
    welcome, _ = keeper.data_received(b"".join(to_keeper))
    service.data_received(b"".join(welcome))
    assert keeper.authenticated and service.authenticated
    return keeper, service


def test_the_request_pipe_is_offered_from_version_2() -> None:
    """A ``PIPE`` frame tells the service the descriptor that came with it is the
    interpreter's request pipe; the version the handshake chose is known to both."""
    keeper, service = _shaken((1, 2))
    assert keeper.version == service.version == 2
    assert not service.pipe_offered
    assert service.data_received(encode_frame(Kind.PIPE, 0, 0)) == ([], [])
    assert service.pipe_offered
    service.connection_made()  # a new connection: nothing offered on it yet
    assert not service.pipe_offered


def test_a_pipe_frame_is_refused_on_version_1_and_by_the_keeper() -> None:
    """A keeper of version 1 has no ``PIPE`` to send: one is a broken link; and a
    service never offers the keeper anything."""
    keeper, service = _shaken((1,))
    assert service.version == 1
    with pytest.raises(LinkError, match="PIPE frame after the handshake"):
        service.data_received(encode_frame(Kind.PIPE, 0, 0))
    keeper, service = _shaken((1, 2))
    with pytest.raises(LinkError, match="PIPE frame after the handshake"):
        keeper.data_received(encode_frame(Kind.PIPE, 0, 0))
