"""A client that stops reading, against the real service with small send-queue bounds.

The service runs with ``--client-queue-messages 20 --slow-client-grace 1``: a connection
whose send queue stays over 20 messages for a second is closed with code 4008, while the
other connections go on at full speed, and the closed client gets what it missed when it
reconnects with the same ``session_id``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websocket
from service_proc import (
    Service,
    WSClient,
    WSClosed,
    ids,
    iopub_of,
    parent_id,
    running_service,
    wait_for,
)
from twisted.python import usage

from ipytwist.tap import Options
from ipytwist.web.sendqueue import QueueLimits

N_DISPLAYS = 3000
PAD = 4000
# ~12 MB of iopub: far more than the kernel's socket buffers and the transport's
# 64 KiB buffer hold for a client that does not read.
FLOOD = (
    "from IPython.display import display\n"
    f"for i in range({N_DISPLAYS}):\n"
    f"    display({{'text/plain': f'{{i:05d}} ' + 'x' * {PAD}}}, raw=True)\n"
)
SMALL_RCVBUF = ((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),)
# websocket-client checks UTF-8 in pure Python (~1.5 ms per 4 KB text frame); without
# this a client reads ~600 of these messages/s, slower than the kernel writes them.
FAST = {"skip_utf8_validation": True}
CLOSE_LINE = "closing slow WebSocket client"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: Any) -> Iterator[Service]:
    with running_service(
        tmp_path_factory,
        "slow",
        "--client-queue-messages",
        "100",
        "--slow-client-grace",
        "1",
    ) as s:
        yield s


def read_until_closed(ws: WSClient, timeout: float = 30.0) -> tuple[int | None, str] | None:
    """Read everything the server sent; its close frame's (code, reason), or None if the
    connection dropped without one."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "the server neither closed nor dropped the connection"
        try:
            ws.recv(left)
        except WSClosed as e:
            return e.code, e.reason
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return None


def test_slow_client_is_closed_and_catches_up_by_replay(
    svc: Service, clients: list[WSClient]
) -> None:
    """Client A (a 4 KiB receive buffer) connects and does not read; client B runs a cell
    that displays 3000 outputs of ~4 KB (~12 MB).  B receives every iopub message of its
    request, in order, and its idle status without waiting for A.  A's send queue goes over
    its bound of 100 messages; a second later the service logs once that it closed a slow
    client ("send queue over its bound for 1s (...): client too slow") and A no longer
    counts as a connection.  A stays stalled while B runs a 2 s cell (longer than the 1 s
    autobahn gives a closing handshake by default); when A finally reads, it gets the
    messages that had been written to it, then the close frame with code 4008 and the
    logged reason.  A reconnecting with the same session_id receives the messages it
    missed, once and in order, through the idle status of B's requests: A's two
    connections together saw exactly what B saw."""
    kid = svc.start_kernel()
    try:
        a = WSClient.connect(svc, kid, "slow-A", sockopt=SMALL_RCVBUF, **FAST)
        b = WSClient.connect(svc, kid, "fast-B", **FAST)
        clients += [a, b]
        reply, _ = b.execute("1")  # the kernel is up; A has these in its buffers
        assert reply["content"]["status"] == "ok"

        flood_id = b.execute_request(FLOOD)
        b.until_idle(flood_id, timeout=60)
        flood_b = iopub_of(b.received, flood_id)
        shown = [
            m["content"]["data"]["text/plain"][:5]
            for m in flood_b
            if m["msg_type"] == "display_data"
        ]
        assert shown == [f"{i:05d}" for i in range(N_DISPLAYS)]
        assert len(set(ids(flood_b))) == len(flood_b)

        wait_for(lambda: CLOSE_LINE in svc.log(), 30, "the slow client to be closed", step=0.1)
        wait_for(
            lambda: svc.api("GET", f"/api/kernels/{kid}").json()["connections"] == 1,
            10,
            "the slow connection to be gone",
        )
        lines = [line for line in svc.log().splitlines() if CLOSE_LINE in line]
        assert len(lines) == 1, lines
        reason = lines[0].split(CLOSE_LINE + ": ", 1)[1]
        assert reason.startswith("send queue over its bound for 1s (")
        assert reason.endswith("): client too slow")

        # A stays stalled for longer than a default closing handshake would wait.
        reply, later_b = b.execute("import time\ntime.sleep(2)\nprint('later')")
        later_id = parent_id(reply)
        assert reply["content"]["status"] == "ok"
        later_b = iopub_of(later_b, later_id)

        assert read_until_closed(a) == (4008, reason)
        first_part = iopub_of(a.received, flood_id)
        assert first_part, "A got none of the flood before its queue filled"
        assert len(first_part) < len(flood_b)
        assert ids(first_part) == ids(flood_b)[: len(first_part)]

        a2 = WSClient.connect(svc, kid, "slow-A", **FAST)
        clients.append(a2)
        a2.until_idle(later_id, timeout=30)
        replayed = iopub_of(a2.received, flood_id)
        assert ids(first_part) + ids(replayed) == ids(flood_b)
        assert replayed[-1]["msg_type"] == "status"
        assert replayed[-1]["content"]["execution_state"] == "idle"
        assert ids(iopub_of(a2.received, later_id)) == ids(later_b)
        assert not [m for m in a2.received if "no longer" in m["content"].get("text", "")]
        assert not [m for m in a.received + a2.received if m["msg_type"] == "execute_reply"]
    finally:
        svc.delete_kernel(kid)


def test_queue_options_default_and_validate() -> None:
    """Without options the send-queue bounds are the built-in defaults (50,000 messages,
    32 MiB, 10 s); the options set them, and a bound below 1 or a negative grace is
    refused."""
    opts = Options()
    opts.parseOptions([])
    assert (
        opts["client-queue-messages"],
        opts["client-queue-bytes"],
        opts["slow-client-grace"],
    ) == (50_000, 32 * 1024 * 1024, 10.0)
    assert QueueLimits() == QueueLimits(50_000, 32 * 1024 * 1024, 10.0)
    opts = Options()
    opts.parseOptions(
        [
            "--client-queue-messages",
            "7",
            "--client-queue-bytes",
            "4096",
            "--slow-client-grace",
            "0.5",
        ]
    )
    assert (
        opts["client-queue-messages"],
        opts["client-queue-bytes"],
        opts["slow-client-grace"],
    ) == (7, 4096, 0.5)
    for bad in (
        ["--client-queue-messages", "0"],
        ["--client-queue-bytes", "0"],
        ["--slow-client-grace", "-1"],
    ):
        with pytest.raises(usage.UsageError):
            Options().parseOptions(bad)
