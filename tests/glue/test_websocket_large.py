"""A large output on the kernel WebSocket, in process: written as fragments of one
message, with autobahn's pings between them, on a transport that pushes back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from glue_fakes import Browser, HostEnv, make_site_env
from test_websocket_inprocess import Socket

from ipytwist.web.wsformat import FRAGMENT_BYTES

#: What the fake transport takes before it pushes back (Twisted's bufferSize).
BUFFER = 64 * 1024


def frames_of(data: bytes) -> list[tuple[int, bool, bytes, int]]:
    """(opcode, fin, payload, where it starts) of every server frame in ``data``."""
    out, pos = [], 0
    while pos < len(data):
        start = pos
        fin, opcode, n = bool(data[pos] & 0x80), data[pos] & 0x0F, data[pos + 1] & 0x7F
        pos += 2
        if n >= 126:
            size = 2 if n == 126 else 8
            n = int.from_bytes(data[pos : pos + size], "big")
            pos += size
        out.append((opcode, fin, data[pos : pos + n], start))
        pos += n
    return out


@pytest.fixture
def web(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[HostEnv, Browser]:
    env, _, site = make_site_env(tmp_path, monkeypatch)
    return env, Browser(site)


def pushing_back(ws: Socket) -> list[int]:
    """Make the socket's transport pause its producer once BUFFER bytes are written
    since it last drained, as Twisted's TCP transport does; return the count."""
    since = [0]
    write = ws.transport.write

    def limited(data: bytes) -> None:
        write(data)
        since[0] += len(data)
        if since[0] > BUFFER and ws.transport.producer is not None:
            ws.transport.producer.pauseProducing()

    ws.transport.write = limited  # type: ignore[method-assign]  # a test double's hook
    return since


def test_a_large_output_is_fragmented_and_a_ping_waits_for_one_fragment_at_most(
    web: tuple[HostEnv, Browser],
) -> None:
    """A 6 MiB image goes out as a fragmented message (frames of at most 1 MiB), written
    64 KiB at a time while the client reads slowly.  A ping autobahn sends meanwhile
    goes out at the end of the current fragment: it never waits for the whole message,
    and the rest of the message is never put in the transport's buffer to make way for
    it (before, the first ping came after all 6 MiB, written at once)."""
    env, browser = web
    hk = env.start_kernel()
    ws = Socket(browser, f"/api/kernels/{hk.id}/channels?session_id=slow")
    since = pushing_back(ws)
    start = len(ws.transport.value())
    image = "QUJD" * (3 << 19)
    env.provisioner.workers[0].listener.worker_event(
        {"ev": "display_data", "data": {"image/png": image}, "metadata": {}}
    )
    buffered, pinged_at = [], []
    for _ in range(1000):
        if not ws.protocol.outbox.paused:
            break
        buffered.append(since[0])
        pinged_at.append(len(ws.transport.value()) - start)
        ws.protocol.sendPing(b"p")
        since[0] = 0
        ws.transport.producer.resumeProducing()
        # The next reactor turn: writing is paced by wall-clock time (10 ms a turn),
        # so on a loaded machine a fragment may wait for it.
        env.clock.advance(0)
    frames = frames_of(ws.transport.value()[start:])
    pings = [at for opcode, _, _, at in frames if opcode == 9]
    assert len(pings) == len(pinged_at) >= 40
    assert max(p - a for p, a in zip(pings, pinged_at, strict=True)) <= FRAGMENT_BYTES + BUFFER
    assert max(buffered) <= BUFFER + 64 * 1024 + 10
    data = [(op, fin, p) for op, fin, p, _ in frames if op in (0, 1)]
    assert [op for op, _, _ in data] == [1] + [0] * (len(data) - 1)
    assert [fin for _, fin, _ in data] == [False] * (len(data) - 1) + [True]
    assert 6 <= len(data) and max(len(p) for _, _, p in data) <= FRAGMENT_BYTES
    msg = json.loads(b"".join(p for _, _, p in data))
    assert msg["msg_type"] == "display_data" and msg["content"]["data"]["image/png"] == image


def test_closing_mid_frame_finishes_the_frame_before_the_close_frame(
    web: tuple[HostEnv, Browser],
) -> None:
    """The kernel shuts down while a large message is half written: the frame being
    written is finished, then the close frame follows it (not inside it)."""
    env, browser = web
    hk = env.start_kernel()
    ws = Socket(browser, f"/api/kernels/{hk.id}/channels?session_id=closing")
    pushing_back(ws)
    start = len(ws.transport.value())
    env.provisioner.workers[0].listener.worker_event(
        {"ev": "display_data", "data": {"image/png": "QUJD" * (1 << 19)}, "metadata": {}}
    )
    assert ws.protocol.outbox.mid_frame
    hub = env.sockets.hub(hk.id)
    assert hub is not None
    hub.close()
    frames = frames_of(ws.transport.value()[start:])
    assert [op for op, *_ in frames][-1] == 8  # close, after whole frames only
    assert [op for op, *_ in frames][:-1] == [1] and not frames[0][1]
    assert len(frames[0][2]) == FRAGMENT_BYTES
