"""A WebSocket client still sending when the service closes on it gets the close frame
that says why, whatever its pace (the real service, a raw client socket).

The service refuses a message past ``--max-message-bytes`` as soon as its frame's head
arrives: a close frame 1009.  A client learns of it only once it has sent the whole
message and reads; if that takes longer than the close handshake may (a slow link, a
busy machine), the service used to reset the connection then, and the client got
``ConnectionResetError`` instead of the close frame.  Now it half-closes after the
close frame and drops what still comes, for up to ``LINGER_SECONDS``.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator

import pytest
from benchlib.running import running_service
from benchlib.servers import Service
from benchlib.wsclient import WSClient, WSClosed

from ipytwist.web.reading import CLOSE_HANDSHAKE_SECONDS, LINGER_SECONDS

LIMIT = 100_000
SIZE = 300_000


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory, "linger", "--max-message-bytes", str(LIMIT)) as s:
        yield s


def frame_head(size: int) -> bytes:
    """The head of a masked text frame of ``size`` bytes, with an all-zero mask (the
    payload goes as it is)."""
    return bytes([0x81, 0x80 | 127]) + struct.pack("!Q", size) + bytes(4)


def test_a_client_slower_than_the_close_handshake_still_gets_the_close_frame(
    svc: Service,
) -> None:
    kid = svc.start_kernel()
    client = WSClient.connect(svc, kid)
    try:
        sock = client.ws.sock
        payload = b"q" * SIZE
        sock.sendall(frame_head(SIZE) + payload[: SIZE // 3])
        # The client's own pace, the scenario: the rest comes after the handshake's time.
        time.sleep(CLOSE_HANDSHAKE_SECONDS + 0.5)
        sock.sendall(payload[SIZE // 3 :])
        with pytest.raises(WSClosed) as closed:
            while True:
                client.recv(timeout=LINGER_SECONDS)
        assert closed.value.code == 1009
        assert f"exceeds payload limit of {LIMIT}" in closed.value.reason
        sock.settimeout(LINGER_SECONDS)
        assert sock.recv(1) == b""  # then the end of the stream, not a reset
    finally:
        client.close()
    again = WSClient.connect(svc, kid)
    try:
        reply, _ = again.execute("1 + 1")
        assert reply["content"]["status"] == "ok"
    finally:
        again.close()
        svc.delete_kernel(kid)
