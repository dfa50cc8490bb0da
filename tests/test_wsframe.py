"""Pre-framed server WebSocket frames (shared by all connections) parse as a client sees them."""

from __future__ import annotations

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from ipytwist.web.wsformat import ws_frame

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70_000]


def client_parse(data: bytes) -> list:
    protocol = ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN, max_size=None)
    protocol.receive_data(data)
    return protocol.events_received()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("is_binary", [False, True])
def test_frame_parses_as_one_message(size: int, is_binary: bool) -> None:
    payload = (b"x" if not is_binary else b"\xff") * size
    frame = ws_frame(payload, is_binary)
    [event] = client_parse(frame)
    assert event.opcode == (Opcode.BINARY if is_binary else Opcode.TEXT)
    assert event.fin
    assert event.data == payload


def test_frames_back_to_back() -> None:
    payloads = [b"a" * n for n in SIZES]
    events = client_parse(b"".join(ws_frame(p, False) for p in payloads))
    assert [e.data for e in events] == payloads
