"""The worker link's frames, handshake and resumption (sans-IO, docs/durable-kernels.md)."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.chunks import fed_in_pieces

from ipytwist.framing import RecordDecoder, encode_record
from ipytwist.link.shake import DialerHandshake, LinkRefused, ListenerHandshake, Resumed
from ipytwist.link.wire import (
    PRE_AUTH_FRAME_BYTES,
    Frame,
    FrameDecoder,
    Inbound,
    Kind,
    LinkError,
    Outbound,
    encode_frame,
    frame_parts,
    handshake_mac,
    json_body,
    output_body,
    parse_output,
)

SECRET = b"s" * 32
KERNEL = "k-1"

frames = st.lists(
    st.one_of(
        st.builds(
            lambda k, s, a, b: Frame(k, s, a, b),
            st.sampled_from([Kind.EVENT, Kind.OUTPUT, Kind.REQUEST, Kind.CONTROL, Kind.EXITED]),
            st.integers(1, 2**64 - 1),
            st.integers(0, 2**64 - 1),
            st.binary(max_size=50),
        ),
        st.builds(
            lambda k, a, b: Frame(k, 0, a, b),
            st.sampled_from([Kind.HELLO, Kind.AUTH, Kind.WELCOME, Kind.REFUSE, Kind.ACK]),
            st.integers(0, 2**64 - 1),
            st.binary(max_size=50),
        ),
    ),
    max_size=8,
)
cuts = st.lists(st.integers(min_value=0, max_value=10_000), max_size=20)


@given(objs=frames, at=cuts)
def test_frames_come_back_in_any_chunking(objs: list[Frame], at: list[int]) -> None:
    """However the byte stream is split, every frame comes back once, in order, whole."""
    data = b"".join(encode_frame(f.kind, f.seq, f.ack, f.body) for f in objs)
    assert fed_in_pieces(FrameDecoder().feed, data, at) == objs


def test_output_keeps_its_fd_and_raw_bytes() -> None:
    """An OUTPUT body says which fd; bytes that are not UTF-8 (a cut character) stay raw."""
    data = b"".join(frame_parts(Kind.OUTPUT, 1, 0, output_body(2, b"\xe2\x82")))
    (frame,) = FrameDecoder().feed(data)
    assert parse_output(frame) == (2, b"\xe2\x82")
    with pytest.raises(LinkError):
        parse_output(Frame(Kind.OUTPUT, 1, 0, b"\x07x"))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (struct.pack(">IBQQ", PRE_AUTH_FRAME_BYTES + 1, 16, 1, 0), "not accepted"),
        (struct.pack(">I", 3) + b"abc", "not accepted"),
        (struct.pack(">IBQQ", 17, 99, 1, 0), "unknown kind"),
        (struct.pack(">IBQQ", 17, Kind.EVENT, 0, 0), "EVENT frame with seq 0"),
        (struct.pack(">IBQQ", 17, Kind.HELLO, 5, 0), "HELLO frame with seq 5"),
    ],
)
def test_bad_frames_are_refused_with_a_line_not_the_data(data: bytes, why: str) -> None:
    """A stranger cannot make the decoder hold more than a handshake's worth before it
    authenticated; a malformed header is an error that says what, never the bytes."""
    with pytest.raises(LinkError, match=why) as caught:
        FrameDecoder().feed(data)
    assert "abc" not in str(caught.value)


def handshake(listener: ListenerHandshake, dialer: DialerHandshake) -> tuple[Resumed, Resumed]:
    """Run a whole handshake through the decoders; (listener's, dialer's) resumption."""
    to_dialer, to_listener = FrameDecoder(), FrameDecoder()
    (hello,) = to_dialer.feed(listener.hello())
    auth, _ = dialer.receive(hello)
    (auth_frame,) = to_listener.feed(auth)
    welcome, at_listener = listener.receive(auth_frame)
    (welcome_frame,) = to_dialer.feed(welcome)
    _, at_dialer = dialer.receive(welcome_frame)
    assert at_dialer is not None
    return at_listener, at_dialer


def keeper(secret: bytes = SECRET, versions: tuple[int, ...] = (1,)) -> ListenerHandshake:
    listener = ListenerHandshake(secret, KERNEL, "a" * 32, "keeper-1", Inbound(), versions)
    listener.info = {"pid": 7}
    return listener


def service(secret: bytes = SECRET, inbound: Inbound | None = None) -> DialerHandshake:
    return DialerHandshake(secret, KERNEL, "b" * 32, "service-1", inbound or Inbound())


def test_a_handshake_agrees_on_version_streams_and_where_to_resume() -> None:
    """Both ends learn each other's stream; a fresh pair starts at seq 1 both ways."""
    at_keeper, at_service = handshake(keeper(), service())
    assert (at_keeper.version, at_keeper.peer_stream, at_keeper.peer_next) == (1, "service-1", 1)
    assert (at_service.peer_stream, at_service.peer_next, at_service.info) == (
        "keeper-1",
        1,
        {"pid": 7},
    )


def test_a_wrong_secret_is_refused_by_the_keeper_and_the_service_hears_why() -> None:
    """The keeper answers a wrong HMAC with REFUSE; the service reads it as a refusal."""
    listener, dialer = keeper(), service(secret=b"x" * 32)
    (hello,) = FrameDecoder().feed(listener.hello())
    auth, _ = dialer.receive(hello)
    with pytest.raises(LinkRefused, match="authentication failed") as refused:
        listener.receive(FrameDecoder().feed(auth)[0])
    (refusal,) = FrameDecoder().feed(refused.value.frame)
    with pytest.raises(LinkRefused, match="refused by the peer: authentication failed"):
        dialer.receive(refusal)


def test_a_keeper_without_the_secret_is_not_believed() -> None:
    """A socket file taken over by someone without the secret fails the service's check,
    even if it lets any AUTH through: its WELCOME cannot carry the right HMAC."""
    listener, dialer = keeper(), service()
    dialer.receive(FrameDecoder().feed(listener.hello())[0])
    forged = handshake_mac(b"y" * 32, "listener", 1, "a" * 32, "b" * 32, KERNEL)
    welcome = encode_frame(Kind.WELCOME, 0, 0, json_body({"mac": forged, "next": 1}))
    with pytest.raises(LinkRefused, match="did not prove"):
        dialer.receive(FrameDecoder().feed(welcome)[0])


def test_an_incompatible_version_is_refused_at_once() -> None:
    """A keeper that speaks only a version the service does not is told no in AUTH's place."""
    listener = keeper(versions=(7,))
    with pytest.raises(LinkRefused, match="no common link version") as refused:
        service().receive(FrameDecoder().feed(listener.hello())[0])
    (frame,) = FrameDecoder().feed(refused.value.frame)
    assert frame.kind is Kind.REFUSE


def test_a_socket_of_another_kernel_is_refused() -> None:
    """kernel.json and the socket disagree: the service refuses before it proves anything."""
    other = DialerHandshake(SECRET, "k-2", "b" * 32, "service-1", Inbound())
    with pytest.raises(LinkRefused, match="another kernel"):
        other.receive(FrameDecoder().feed(keeper().hello())[0])


def test_asking_for_what_was_acked_and_let_go_is_an_error() -> None:
    """The keeper lets go only of what was acked; asking for it again is a broken peer."""
    out = Outbound()
    for i in range(3):
        out.add(Kind.EVENT, b"%d" % i)
    out.ack(2)
    with pytest.raises(LinkError, match="peer asks for seq 2; kept 3 to 3"):
        out.resume(2)
    with pytest.raises(LinkError):
        out.ack(4)
    assert [seq for seq, _, _ in out.resume(3)] == [3]


def test_a_gap_in_seqs_is_an_error_and_a_repeat_is_dropped() -> None:
    inbound = Inbound("s")
    assert inbound.take(Frame(Kind.EVENT, 1, 0, b""))
    assert not inbound.take(Frame(Kind.EVENT, 1, 0, b""))
    with pytest.raises(LinkError, match="seq 3 after 1"):
        inbound.take(Frame(Kind.EVENT, 3, 0, b""))


def test_a_large_event_costs_twice_its_size_on_its_way_in() -> None:
    """A large frame alone in the buffer is handed over as that buffer, and the record
    decoder adopts it and lets go of it before parsing: the frame's bytes, then its text
    and the parsed string, never three copies (tests/reliability/test_large.py's bound)."""
    size = 8 << 20
    record = encode_record({"ev": "display", "data": "x" * size})
    decoder = FrameDecoder(1 << 30)
    decoder.push(encode_frame(Kind.EVENT, 1, 0, record))
    del record
    tracemalloc.start()
    try:
        frame = decoder.pop()
        assert frame is not None and isinstance(frame.body, bytearray)
        (event,) = RecordDecoder().feed(frame.body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(event["data"]) == size
    assert peak < 2.2 * size, peak / size
