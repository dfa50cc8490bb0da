"""Kernel WebSockets of the real service: the v1 subprotocol, malformed messages, and the
transcript of every client's cells."""

from __future__ import annotations

import json
import os
import struct

import nbformat
import websocket
from benchlib.messages import iopub_of, make_message, parent_id, stream_text
from benchlib.servers import WARM_POOL, Service
from benchlib.wsclient import V1_PROTOCOL, WSClient
from jupyter_client import BlockingKernelClient
from jupyter_server.services.kernels.connection.base import (
    deserialize_msg_from_ws_v1,
    serialize_msg_to_ws_v1,
)
from support.service import service_fixture

#: A fresh kernel per test (``kernel_id``).
svc = service_fixture("ws", "--allow-origin", "https://*.example.org", *WARM_POOL, shared=True)


# -- v1 subprotocol -------------------------------------------------------------------


def test_v1_subprotocol(svc: Service, kernel_id: str, clients: list[WSClient]) -> None:
    """A client offering v1.kernel.websocket.jupyter.org gets it selected; binary v1 frames
    built by jupyter_server's serialize_msg_to_ws_v1 are understood and every reply is a
    binary v1 frame that jupyter_server's deserialize_msg_from_ws_v1 reads."""
    ws = WSClient.connect(svc, kernel_id, "v1-client", v1=True)
    clients.append(ws)
    assert ws.subprotocol == V1_PROTOCOL

    msg = make_message("execute_request", {"code": "print('v1')\n40 + 2", "silent": False}, "v1")
    frame = serialize_msg_to_ws_v1(msg, "shell", pack=lambda o: json.dumps(o).encode())
    ws.ws.send_binary(frame)
    seen = []
    while True:
        ws.ws.settimeout(30)
        opcode, data = ws.ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_BINARY
        channel, parts = deserialize_msg_from_ws_v1(data)
        header, parent = json.loads(parts[0]), json.loads(parts[1])
        content = json.loads(parts[3])
        seen.append((channel, header["msg_type"], content))
        assert parent.get("msg_id") in (msg["header"]["msg_id"], None)
        if (
            header["msg_type"] == "status"
            and content["execution_state"] == "idle"
            and parent.get("msg_id") == msg["header"]["msg_id"]
        ):
            break
    replies = [s for s in seen if s[1] == "execute_reply"]
    assert replies and replies[0][0] == "shell" and replies[0][2]["status"] == "ok"
    assert ("iopub", "stream", {"name": "stdout", "text": "v1\n"}) in seen
    results = [s for s in seen if s[1] == "execute_result"]
    assert results[0][0] == "iopub" and results[0][2]["data"]["text/plain"] == "42"

    # Our own helper's framing (independent of ipytwist's) works too.
    assert ws.kernel_info()["channel"] == "shell"


# -- bad input ------------------------------------------------------------------------


def test_malformed_messages_are_dropped(
    svc: Service, kernel_id: str, clients: list[WSClient]
) -> None:
    """Non-JSON text, JSON that is not an object, JSON without a header, an unknown or
    iopub channel, and garbage binary frames (legacy and v1) are dropped; both connections
    stay open and keep working."""
    legacy = WSClient.connect(svc, kernel_id)
    v1 = WSClient.connect(svc, kernel_id, v1=True)
    clients += [legacy, v1]
    good = make_message("kernel_info_request", {}, "x")
    for text in (
        "not json",
        "[1, 2, 3]",
        '"a string"',
        '{"channel": "shell"}',
        '{"channel": "shell", "header": {"msg_id": "x"}}',
        json.dumps({**good, "channel": "bogus"}),
        json.dumps({**good, "channel": "iopub"}),
        json.dumps({**good, "channel": "shell", "content": [1]}),
        "[" * 100_000,
    ):
        legacy.ws.send(text)
    for blob in (
        b"",
        b"\x00",
        b"garbage binary frame",
        struct.pack("!I", 0xFFFFFFFF) + b"x" * 16,
        struct.pack("!2I", 1, 1000) + b"{}",
        os.urandom(256),
    ):
        legacy.ws.send_binary(blob)
        v1.ws.send_binary(blob)
    v1.ws.send_binary(struct.pack("<7Q", 6, 0, 0, 0, 0, 0, 10**12))
    v1.ws.send("text frame on a v1 connection")

    for client in (legacy, v1):
        reply, msgs = client.execute("print('still here')")
        assert reply["content"]["status"] == "ok"
        assert stream_text(iopub_of(msgs, parent_id(reply))) == "still here\n"
    assert svc.api("GET", f"/api/kernels/{kernel_id}").json()["connections"] == 2


def test_the_transcript_has_every_clients_cells_and_downloads_as_a_notebook(
    svc: Service,
) -> None:
    """A cell run over WebSocket and one run by a ZeroMQ client (jupyter console
    --existing) are both in GET /api/kernels/{id}/transcript, in order, marked with their
    origin, with their outputs; the page follows on from its last_msg_id; the .ipynb
    download is a valid notebook; DELETE clears it."""
    kid = svc.start_kernel()
    ws = WSClient.connect(svc, kid)
    kc = BlockingKernelClient()
    kc.load_connection_file(svc.connection_file(kid))
    kc.start_channels()
    try:
        reply, _ = ws.execute("print('from ws')")
        assert reply["content"]["status"] == "ok"
        kc.wait_for_ready(timeout=30)
        zreply = kc.execute_interactive("print('from zmq')", timeout=30)
        assert zreply["content"]["status"] == "ok"
        ws.until_idle(zreply["parent_header"]["msg_id"])
        body = svc.api("GET", f"/api/kernels/{kid}/transcript").json()
        cells = [c for c in body["cells"] if "from" in c["code"]]
        assert [(c["origin"], c["state"], c["outputs"][0]["text"]) for c in cells] == [
            ("websocket", "done", "from ws\n"),
            ("zmq", "done", "from zmq\n"),
        ]
        assert body["kernel"]["id"] == kid
        follow = WSClient.connect(svc, kid, since_msg_id=body["last_msg_id"])
        try:
            reply, msgs = ws.execute("print('later')")
            got = follow.until_idle(parent_id(reply))
            assert [m for m in got if m["msg_type"] == "stream"][0]["content"]["text"] == "later\n"
            assert not [m for m in got if "from ws" in str(m["content"])]  # no duplicate
        finally:
            follow.close()
        r = svc.api("GET", f"/api/kernels/{kid}/transcript.ipynb")
        assert "attachment" in r.headers["content-disposition"]
        nb = nbformat.from_dict(r.json())
        nbformat.validate(nb)
        assert "print('later')" in [c.source for c in nb.cells]
        assert svc.api("DELETE", f"/api/kernels/{kid}/transcript").status_code == 204
        assert svc.api("GET", f"/api/kernels/{kid}/transcript").json()["cells"] == []
    finally:
        kc.stop_channels()
        ws.close()
        svc.delete_kernel(kid)


def test_a_truncated_output_is_whole_for_download_while_the_log_keeps_it(svc: Service) -> None:
    """The transcript keeps a long output's head and tail with an exact count of the lines
    hidden; GET .../transcript/cells/{id}/output gives every line while the kernel's output
    log still holds them."""
    kid = svc.start_kernel()
    ws = WSClient.connect(svc, kid)
    try:
        reply, _ = ws.execute("for i in range(5000): print(i)")
        cell_id = parent_id(reply)
        cells = svc.api("GET", f"/api/kernels/{kid}/transcript").json()["cells"]
        (shown,) = [c for c in cells if c["id"] == cell_id]
        assert shown["outputs"][0]["hidden_lines"] == 3000
        r = svc.api("GET", f"/api/kernels/{kid}/transcript/cells/{cell_id}/output")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert r.text == "".join(f"{i}\n" for i in range(5000))
        missing = svc.api("GET", f"/api/kernels/{kid}/transcript/cells/nope/output")
        assert missing.status_code == 404
    finally:
        ws.close()
        svc.delete_kernel(kid)
