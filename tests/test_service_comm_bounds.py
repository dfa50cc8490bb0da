"""Issue 17, item 6: comm messages (and a debug_request) from clients are held to
--max-message-bytes, on ZeroMQ, the WebSocket's legacy frames and its v1 frames, on the
real service.

A ``comm_msg`` that sets a Text widget to 200 kB (in its JSON, or as a binary buffer)
with ``--max-message-bytes 100000``: the WebSocket sends a close frame 1009 that says
so (it used to reset the TCP connection, and log two lines), ZeroMQ drops it; either
way the service logs one line that does not carry the payload, the widget keeps its
value, and the same client (reconnected, for a WebSocket) sets it with a small
``comm_msg`` afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from benchlib.messages import make_message
from benchlib.procs import wait_for
from benchlib.running import running_service
from benchlib.servers import Service
from benchlib.wsclient import WSClient, WSClosed
from jupyter_client import BlockingKernelClient
from jupyter_server.services.kernels.connection.base import (
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)

LIMIT = 100_000
BIG = 200_000
TEXT = "import ipywidgets\ns = ipywidgets.Text('start')\ndisplay(s)"
PAYLOAD = "q" * 64  # what would show the payload in the log


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory, "comm-bounds", "--max-message-bytes", str(LIMIT)) as s:
        yield s


def widget(svc: Service, kid: str) -> tuple[WSClient, str]:
    """A window with a Text widget displayed, and the widget's comm id."""
    ws = WSClient.connect(svc, kid)
    ws.kernel_info()
    _, got = ws.execute(TEXT)
    (sid,) = [
        m["content"]["comm_id"]
        for m in got
        if m["msg_type"] == "comm_open"
        and m["content"]["data"]["state"]["_model_name"] == "TextModel"
    ]
    return ws, sid


def update(sid: str, value: str | None, session: str, paths: Any = ()) -> dict[str, Any]:
    state = {} if value is None else {"value": value}
    data = {"method": "update", "state": state, "buffer_paths": list(paths)}
    return make_message("comm_msg", {"comm_id": sid, "data": data}, session)


def send_ws(
    ws: WSClient, msg: dict[str, Any], buffers: list[bytes], binary: bool, channel: str = "shell"
) -> None:
    if ws.v1:
        parts = [json.dumps(msg[k]).encode() for k in ("header", "parent_header", "metadata")]
        ws.ws.send_binary(
            serialize_msg_to_ws_v1([*parts, json.dumps(msg["content"]).encode(), *buffers], "shell")
        )
    elif binary:
        ws.ws.send_binary(serialize_binary_message({**msg, "channel": "shell", "buffers": buffers}))
    else:
        ws.ws.send(json.dumps({**msg, "channel": channel}))


def value_of(ws: WSClient) -> str:
    _, got = ws.execute("print(len(s.value), s.value[:10])")
    return "".join(m["content"]["text"] for m in got if m["msg_type"] == "stream")


def log_lines(svc: Service, since: int) -> list[str]:
    return [line for line in svc.log()[since:].splitlines() if str(LIMIT) in line]


@pytest.mark.parametrize(
    "how",
    ["legacy JSON", "legacy binary", "v1", "debug_request"],
)
def test_a_comm_msg_over_the_limit_closes_the_websocket_with_1009(svc: Service, how: str) -> None:
    kid = svc.start_kernel()
    ws, sid = widget(svc, kid)
    v1 = how == "v1"
    big = WSClient.connect(svc, kid, v1=v1)
    try:
        since = len(svc.log())
        if how == "debug_request":
            args = {"code": PAYLOAD * (BIG // 64)}
            content = {"type": "request", "seq": 1, "command": "dumpCell", "arguments": args}
            msg = make_message("debug_request", content, big.session_id)
            send_ws(big, msg, [], binary=False, channel="control")
        elif how == "legacy JSON":
            send_ws(big, update(sid, PAYLOAD * (BIG // 64), big.session_id), [], binary=False)
        else:
            msg = update(sid, None, big.session_id, [["value"]])
            send_ws(big, msg, [PAYLOAD.encode() * (BIG // 64)], binary=True)
        with pytest.raises(WSClosed) as closed:  # a close frame, not a dropped connection
            while True:
                big.recv()
        assert closed.value.code == 1009
        assert f"exceeds payload limit of {LIMIT}" in closed.value.reason
        wait_for(lambda: log_lines(svc, since), 10, "the refused message logged")
        lines = log_lines(svc, since)
        assert len(lines) == 1 and PAYLOAD not in lines[0], lines
        assert value_of(ws) == "5 start\n"
        again = WSClient.connect(svc, kid, v1=v1, session_id=big.session_id)
        try:
            send_ws(again, update(sid, "small", again.session_id), [], binary=False)
            wait_for(lambda: value_of(ws) == "5 small\n", 10, "the small update taken")
        finally:
            again.close()
    finally:
        big.close()
        ws.close()
        svc.delete_kernel(kid)


def test_a_comm_msg_over_the_limit_is_dropped_on_zeromq(svc: Service) -> None:
    kid = svc.start_kernel()
    ws, sid = widget(svc, kid)
    kc = BlockingKernelClient()
    kc.load_connection_file(svc.connection_file(kid))
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        since = len(svc.log())
        big = {
            "comm_id": sid,
            "data": {"method": "update", "state": {}, "buffer_paths": [["value"]]},
        }
        # Buffers of 10 kB each: no frame is too big for ZeroMQ, the message is.
        chunks = [PAYLOAD.encode() * 160] * (BIG // 10_240)
        kc.session.send(kc.shell_channel.socket, "comm_msg", big, buffers=chunks)
        args = {"code": PAYLOAD * (BIG // 64)}
        debug = {"type": "request", "seq": 1, "command": "dumpCell", "arguments": args}
        kc.session.send(kc.control_channel.socket, "debug_request", debug)
        wait_for(lambda: len(log_lines(svc, since)) == 2, 10, "the dropped messages logged")
        lines = log_lines(svc, since)
        # (Two sockets: either may be read first.)
        assert sorted(line.split("] ")[1].split(":")[0] for line in lines) == ["control", "shell"]
        assert not [line for line in lines if PAYLOAD in line], lines
        kc.control_channel.send(info := kc.session.msg("kernel_info_request", {}))
        reply = kc.get_control_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == info["header"]["msg_id"]
        assert value_of(ws) == "5 start\n"
        small = {"comm_id": sid, "data": {"method": "update", "state": {"value": "small"}}}
        kc.session.send(kc.shell_channel.socket, "comm_msg", small)
        wait_for(lambda: value_of(ws) == "5 small\n", 10, "the small update taken")
    finally:
        kc.stop_channels()
        ws.close()
        svc.delete_kernel(kid)
