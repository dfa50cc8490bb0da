"""After our close frame goes unanswered, a connection lingers: half-closed, it reads
and drops what the peer still sends, and is cut :data:`LINGER_SECONDS` later (the real
site on a StringTransport; the close handshake's timeout is called as autobahn's
timer would, the linger runs on the fake clock).  End to end: ``test_ws_linger.py``."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from glue_fakes import Browser, HostEnv, make_site_env
from test_websocket_inprocess import Socket

from ipytwist.web.reading import LINGER_SECONDS

LIMIT = 1000


@pytest.fixture
def refused(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[HostEnv, Socket, list[str]]:
    """A connection that sent the head of a message past the limit: its close frame
    1009 is written, and it waits for the peer's answer.  The list records half-closes."""
    env, _, site = make_site_env(tmp_path, monkeypatch, max_message_bytes=LIMIT)
    hk = env.start_kernel()
    ws = Socket(Browser(site), f"/api/kernels/{hk.id}/channels?session_id=s1")
    half: list[str] = []
    ws.transport.loseWriteConnection = lambda: half.append("half")  # type: ignore[attr-defined]  # TCP has it, StringTransport not
    # A text frame of 3 x LIMIT bytes, masked with zeros: its head and a first part.
    head = bytes([0x81, 0x80 | 126]) + struct.pack("!H", 3 * LIMIT) + bytes(4)
    ws.protocol.dataReceived(head + b"q" * LIMIT)
    assert ws.protocol.state == ws.protocol.STATE_CLOSING
    assert struct.pack("!H", 1009) in ws.transport.value()
    return env, ws, half


def test_an_unanswered_close_half_closes_and_the_connection_is_cut_after_the_linger(
    refused: tuple[HostEnv, Socket, list[str]],
) -> None:
    env, ws, half = refused
    ws.protocol.onCloseHandshakeTimeout()
    assert half == ["half"] and not ws.transport.disconnecting
    ws.protocol.dataReceived(b"q" * LIMIT)  # the rest of the message: dropped
    env.clock.advance(LINGER_SECONDS - 0.1)
    assert not ws.transport.disconnecting
    env.clock.advance(0.1)
    assert ws.transport.disconnected  # aborted: autobahn's own end of a close timeout


def test_a_peer_that_closes_while_the_connection_lingers_ends_the_linger(
    refused: tuple[HostEnv, Socket, list[str]],
) -> None:
    env, ws, half = refused
    ws.protocol.onCloseHandshakeTimeout()
    ws.close()  # its close frame, then its end of the connection
    assert half == ["half"]
    lingering = [c for c in env.clock.getDelayedCalls() if c.func == ws.protocol._linger_over]
    assert not lingering


def test_a_transport_that_cannot_half_close_is_cut_at_once(
    refused: tuple[HostEnv, Socket, list[str]],
) -> None:
    """(TLS cannot half-close: there the close timeout resets, as autobahn does.)"""
    _, ws, half = refused
    del ws.transport.loseWriteConnection  # type: ignore[attr-defined]  # set by the fixture above
    ws.protocol.onCloseHandshakeTimeout()
    assert ws.transport.disconnected and half == []
