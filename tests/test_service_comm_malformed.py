"""Issue 17, item 6: a malformed comm or debug message is one log line and never a crash,
on the real service, from a legacy WebSocket, a v1 WebSocket and a ZeroMQ client.

Comm messages without a comm_id, with data that is not an object, to a comm that does
not exist (this one went to every client's stderr before), a comm_open without a
target; a debug_request that is not DAP: each is one line in the service's log without
its payload, and the debug_request's sender gets an error reply.  A comm_msg whose
buffer path does not lead into the state makes ipywidgets show its traceback, as on
ipykernel.  No client gets anything on stderr, and the slider set afterwards by the
same client takes the value."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from benchlib.running import running_service
from benchlib.servers import Service
from benchlib.wsclient import WSClient
from jupyter_client import BlockingKernelClient
from test_service_comms import send as send_with_buffers

MARKER = "PAYLOAD-MARKER-c0ffee"
SLIDER = "import ipywidgets\ns = ipywidgets.IntSlider()\ndisplay(s)"
#: What the log says of each malformed message of :func:`malformed`, in order.
LINES = [
    "ignored a comm_msg: its comm_id is not a string",
    "ignored a comm_msg: its data is not an object",
    "worker: No such comm: (4 characters)",
    "ignored a comm_open: its target_name is not a string",
    "malformed debug_request",
]


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory, "comm-malformed") as s:
        yield s


def malformed(sid: str) -> list[tuple[str, str, dict[str, Any], list[bytes]]]:
    """(channel, msg_type, content, buffers) of each malformed message."""
    bad_path = {"method": "update", "state": {"value": 3}, "buffer_paths": [["value", "x"]]}
    return [
        ("shell", "comm_msg", {"data": {"x": MARKER}}, []),
        ("shell", "comm_msg", {"comm_id": sid, "data": [MARKER]}, []),
        ("shell", "comm_msg", {"comm_id": "nope", "data": {"x": MARKER}}, []),
        ("shell", "comm_open", {"comm_id": "c", "data": {"x": MARKER}}, []),
        ("control", "debug_request", {"seq": MARKER}, []),
        ("shell", "comm_msg", {"comm_id": sid, "data": bad_path}, [MARKER.encode()]),
    ]


def slider_of(msgs: list[dict[str, Any]]) -> str:
    (sid,) = [
        m["content"]["comm_id"]
        for m in msgs
        if m["msg_type"] == "comm_open"
        and m["content"]["data"]["state"]["_model_name"] == "IntSliderModel"
    ]
    return str(sid)


def zmq_run(kc: BlockingKernelClient, code: str) -> list[dict[str, Any]]:
    """Every iopub message up to the idle of ``code``, whatever its parent."""
    msg_id = kc.execute(code)
    got = [kc.get_iopub_msg(timeout=30)]
    while not (
        got[-1]["msg_type"] == "status"
        and got[-1]["content"]["execution_state"] == "idle"
        and got[-1]["parent_header"].get("msg_id") == msg_id
    ):
        got.append(kc.get_iopub_msg(timeout=30))
    return got


def check(svc: Service, since: int, got: list[dict[str, Any]], printed: str) -> None:
    log = svc.log()[since:]
    assert MARKER not in log
    lines = [line for line in log.splitlines() if any(x in line for x in LINES)]
    assert sorted(x for line in lines for x in LINES if x in line) == sorted(LINES), lines
    assert not [m for m in got if m["msg_type"] == "stream" and m["content"]["name"] == "stderr"]
    (debug,) = [m for m in got if m["msg_type"] == "debug_reply"]
    assert debug["content"]["success"] is False and "malformed" in debug["content"]["message"]
    errors = [m["content"]["ename"] for m in got if m["msg_type"] == "error"]
    assert errors == ["TypeError"], errors  # ipywidgets' own traceback of the bad path
    assert printed == "9\n"


@pytest.mark.parametrize("v1", [False, True], ids=["legacy", "v1"])
def test_malformed_comm_and_debug_messages_over_websocket(svc: Service, v1: bool) -> None:
    kid = svc.start_kernel()
    ws = WSClient.connect(svc, kid, v1=v1)
    try:
        ws.kernel_info()
        _, got = ws.execute(SLIDER)
        sid = slider_of(got)
        since = len(svc.log())
        ws.received.clear()
        for channel, msg_type, content, buffers in malformed(sid):
            if buffers:
                send_with_buffers(ws, msg_type, content, buffers)
            else:
                ws.send(channel, msg_type, content)
        update = {"method": "update", "state": {"value": 9}, "buffer_paths": []}
        ws.send("shell", "comm_msg", {"comm_id": sid, "data": update})
        _, msgs = ws.execute("print(s.value)")
        printed = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
        check(svc, since, ws.received, printed)
    finally:
        ws.close()
        svc.delete_kernel(kid)


def test_malformed_comm_and_debug_messages_over_zeromq(svc: Service) -> None:
    kid = svc.start_kernel()
    kc = BlockingKernelClient()
    kc.load_connection_file(svc.connection_file(kid))
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        sid = slider_of(zmq_run(kc, SLIDER))
        since = len(svc.log())
        got = []
        for channel, msg_type, content, buffers in malformed(sid):
            sock = kc.control_channel.socket if channel == "control" else kc.shell_channel.socket
            kc.session.send(sock, msg_type, content, buffers=buffers or None)
        got.append(kc.get_control_msg(timeout=30))
        update = {"method": "update", "state": {"value": 9}, "buffer_paths": []}
        kc.session.send(kc.shell_channel.socket, "comm_msg", {"comm_id": sid, "data": update})
        got += zmq_run(kc, "print(s.value)")
        printed = "".join(
            m["content"]["text"]
            for m in got
            if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
        )
        check(svc, since, got, printed)
    finally:
        kc.stop_channels()
        svc.delete_kernel(kid)
