"""The debugger over the service's kernel WebSocket, as JupyterLab's debugger panel
uses it through ``--gateway-url``: debug_request on the control channel, debug_reply
back on it, debug_event on iopub; a breakpoint in a cell shows its locals, and every
other client of the kernel sees the debugger's events too."""

from __future__ import annotations

from typing import Any

import pytest
from benchlib.servers import WARM_POOL, Service
from benchlib.wsclient import WSClient
from support.dap_session import break_in, top_frame_locals
from support.service import service_fixture

svc = service_fixture("ws", "--allow-origin", "https://*.example.org", *WARM_POOL, shared=True)

CELL = "def f(a):\n    b = a * 3\n    return b\n\nz = f(14)\n"


class WsDebug:
    def __init__(self, ws: WSClient) -> None:
        self.ws = ws
        self.seq = 0

    def __call__(self, command: str, **arguments: Any) -> dict[str, Any]:
        self.seq += 1
        content = {"type": "request", "seq": self.seq, "command": command, "arguments": arguments}
        msg_id = self.ws.send("control", "debug_request", content)
        (*_, reply) = self.ws.until(
            lambda m: m["msg_type"] == "debug_reply" and m["parent_header"]["msg_id"] == msg_id
        )
        assert reply["channel"] == "control"
        return dict(reply["content"])

    def event(self, name: str) -> dict[str, Any]:
        (*_, msg) = self.ws.until(
            lambda m: m["msg_type"] == "debug_event" and m["content"].get("event") == name
        )
        assert msg["channel"] == "iopub"
        return dict(msg["content"])


@pytest.mark.parametrize("v1", [False, True], ids=["legacy", "v1"])
def test_a_breakpoint_over_the_websocket(
    svc: Service, kernel_id: str, clients: list[WSClient], v1: bool
) -> None:
    ws = WSClient.connect(svc, kernel_id, "panel", v1=v1)
    other = WSClient.connect(svc, kernel_id, "other")
    clients += [ws, other]
    assert ws.kernel_info()["content"]["debugger"] is True
    debug = WsDebug(ws)
    path = break_in(debug, CELL, 3, clientID="t", adapterID="", pathFormat="path")
    msg_id = ws.execute_request(CELL)
    thread = debug.event("stopped")["body"]["threadId"]
    other.until(lambda m: m["msg_type"] == "debug_event" and m["content"]["event"] == "stopped")
    frame, values = top_frame_locals(debug, thread)
    assert (frame["name"], frame["line"], frame["source"]["path"]) == ("f", 3, path)
    assert values["a"] == "14" and values["b"] == "42"
    assert debug("continue", threadId=thread)["success"]

    def replied(m: dict[str, Any]) -> bool:
        return m["msg_type"] == "execute_reply" and m["parent_header"]["msg_id"] == msg_id

    if not any(replied(m) for m in ws.received):  # (it may have come with continue's)
        ws.until(replied)
    assert [m["content"]["status"] for m in ws.received if replied(m)] == ["ok"]
    assert debug("disconnect", restart=False, terminateDebuggee=True)["success"]
