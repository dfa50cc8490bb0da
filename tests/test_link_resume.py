"""The worker link across dropped connections and a service that dies: every item a
keeper produced reaches the service's persisted log once, in order (sans-IO)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from ipytwist.link.shake import DialerHandshake, ListenerHandshake
from ipytwist.link.wire import FrameDecoder, Inbound, Kind, Outbound

SECRET = b"k" * 32
KERNEL = "kernel-1"


@dataclass
class Keeper:
    """The keeper's side: what it produced, kept until acked."""

    out: Outbound = field(default_factory=lambda: Outbound(window=200))
    inbound: Inbound = field(default_factory=Inbound)
    produced: list[bytes] = field(default_factory=list)


@dataclass
class Service:
    """One life of a service: it takes items, persists some, acks only those persisted."""

    stream: str
    inbound: Inbound
    persisted: list[bytes]
    pending: list[bytes] = field(default_factory=list)
    decoder: FrameDecoder = field(default_factory=lambda: FrameDecoder(1 << 20))


class World:
    def __init__(self) -> None:
        self.keeper = Keeper()
        self.log: list[bytes] = []  # the state directory's persisted log: outlives services
        self.lives = 0
        self.service = self._new_service()
        self.wire = bytearray()  # keeper -> service bytes in flight
        self.connected = False

    def _new_service(self) -> Service:
        self.lives += 1
        # A new service knows the keeper's stream and its last seq from the persisted log.
        inbound = Inbound("keeper-1", len(self.log)) if self.log else Inbound()
        return Service(f"service-{self.lives}", inbound, self.log)

    def connect(self) -> None:
        n = f"{self.lives:032x}"
        listener = ListenerHandshake(SECRET, KERNEL, "a" * 32, "keeper-1", self.keeper.inbound)
        dialer = DialerHandshake(SECRET, KERNEL, n, self.service.stream, self.service.inbound)
        auth, _ = dialer.receive(FrameDecoder().feed(listener.hello())[0])
        welcome, at_keeper = listener.receive(FrameDecoder().feed(auth)[0])
        dialer.receive(FrameDecoder().feed(welcome)[0])
        self.connected = True
        for seq, kind, body in self.keeper.out.resume(at_keeper.peer_next):
            self.wire += b"".join(self.keeper.out.frame(seq, kind, body, 0))

    def produce(self, body: bytes) -> None:
        if self.keeper.out.full:
            return  # the keeper stops reading the interpreter's pipes: print blocks
        self.keeper.produced.append(body)
        seq = self.keeper.out.add(Kind.OUTPUT, body)
        if self.connected:
            self.wire += b"".join(self.keeper.out.frame(seq, Kind.OUTPUT, body, 0))

    def deliver(self, nbytes: int) -> None:
        chunk, self.wire[:nbytes] = bytes(self.wire[:nbytes]), b""
        for frame in self.service.decoder.feed(chunk):
            if self.service.inbound.take(frame):
                self.service.pending.append(frame.body)

    def persist(self) -> None:
        self.log.extend(self.service.pending)
        self.service.pending.clear()
        if self.connected:  # an ack sent on a dropped connection is lost
            self.keeper.out.ack(len(self.log))

    def drop(self) -> None:
        self.wire.clear()
        self.service.decoder = FrameDecoder(1 << 20)
        self.connected = False

    def crash(self) -> None:
        self.drop()
        self.service = self._new_service()


steps = st.lists(
    st.one_of(
        st.tuples(st.just("produce"), st.binary(min_size=1, max_size=40)),
        st.tuples(st.just("deliver"), st.integers(0, 120)),
        st.tuples(st.sampled_from(["persist", "drop", "crash", "connect"]), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=1000)  # (100 missed a lost ack that 3000 found)
@given(script=steps)
def test_every_item_reaches_the_log_once_and_in_order(script: list[tuple[str, object]]) -> None:
    """Connections drop mid-frame, services die with items taken but not persisted,
    acks are lost: the persisted log is always a prefix of what the keeper produced,
    and once a service stays connected it holds all of it."""
    world = World()
    world.connect()
    for op, arg in script:
        if isinstance(arg, bytes):
            world.produce(arg)
        elif isinstance(arg, int):
            world.deliver(arg)
        elif op == "connect":
            if world.connected:
                world.drop()
            world.connect()
        else:
            getattr(world, op)()
        assert world.log == world.keeper.produced[: len(world.log)]
    if not world.connected:
        world.connect()
    world.deliver(len(world.wire))
    world.persist()
    assert world.log == world.keeper.produced
    assert world.keeper.out.kept_bytes == 0


@given(sizes=st.lists(st.integers(1, 300), max_size=80), acks=st.lists(st.booleans()))
def test_a_keeper_with_no_service_keeps_at_most_its_window(
    sizes: list[int], acks: list[bool]
) -> None:
    """A producer that stops while the window is full keeps at most the window plus the
    one frame that crossed it, acked or not."""
    out = Outbound(window=1000)
    for i, size in enumerate(sizes):
        if not out.full:
            out.add(Kind.EVENT, b"x" * size)
        assert out.kept_bytes <= 1000 + 300 + 21
        if i < len(acks) and acks[i]:
            out.ack(out.sent)
            assert out.kept_bytes == 0
