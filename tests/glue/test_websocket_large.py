"""A large output on the kernel WebSocket, in process: written as fragments of one
message, with autobahn's pings between them, on a transport that pushes back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from glue_fakes import Browser, HostEnv, make_site_env
from test_websocket_inprocess import Socket

#: What the fake transport takes before it pushes back (Twisted's bufferSize).
BUFFER = 64 * 1024


def frames_of(data: bytes) -> list[tuple[int, bool, bytes]]:
    """(opcode, fin, payload) of every server frame in ``data``."""
    out, pos = [], 0
    while pos < len(data):
        fin, opcode, n = bool(data[pos] & 0x80), data[pos] & 0x0F, data[pos + 1] & 0x7F
        pos += 2
        if n >= 126:
            size = 2 if n == 126 else 8
            n = int.from_bytes(data[pos : pos + size], "big")
            pos += size
        out.append((opcode, fin, data[pos : pos + n]))
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


def test_a_large_output_is_fragmented_and_a_ping_gets_between_the_fragments(
    web: tuple[HostEnv, Browser],
) -> None:
    """A 6 MiB image goes out as fragments of at most 64 KiB, each written whole; while
    the client reads slowly, autobahn's pings go out between fragments, so a ping (and
    its pong) never waits for the whole message, nor is the rest of the message put in
    the transport's buffer to make way for it (it was, before: 6 MiB at the first ping)."""
    env, browser = web
    hk = env.start_kernel()
    ws = Socket(browser, f"/api/kernels/{hk.id}/channels?session_id=slow")
    since = pushing_back(ws)
    start = len(ws.transport.value())
    image = "QUJD" * (3 << 19)
    env.provisioner.workers[0].listener.worker_event(
        {"ev": "display_data", "data": {"image/png": image}, "metadata": {}}
    )
    buffered = []
    for _ in range(1000):
        if not ws.protocol.outbox.paused:
            break
        buffered.append(since[0])
        ws.protocol.sendPing(b"p")
        since[0] = 0
        ws.transport.producer.resumeProducing()
    frames = frames_of(ws.transport.value()[start:])
    opcodes = [opcode for opcode, _, _ in frames]
    assert opcodes.count(9) >= 90 and opcodes[0] == 1 and opcodes[-1] == 0
    assert max(buffered) <= BUFFER + 64 * 1024 + 14
    data = [(op, fin, p) for op, fin, p in frames if op in (0, 1)]
    assert [fin for _, fin, _ in data] == [False] * (len(data) - 1) + [True]
    assert max(len(p) for _, _, p in data) <= 64 * 1024
    msg = json.loads(b"".join(p for _, _, p in data))
    assert msg["msg_type"] == "display_data" and msg["content"]["data"]["image/png"] == image
