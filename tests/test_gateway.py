"""JupyterLab's back end as the client: jupyter_server with ``--gateway-url`` at ipytwist.

ipytwist runs under ``twistd``; a ``jupyter server`` process is pointed at it as
its kernel gateway.  Everything below talks to *jupyter_server* only (its REST
API and its kernel WebSocket), exactly as JupyterLab in a browser would, so
what is tested is the Kernel Gateway REST + WebSocket surface of ipytwist as
jupyter_server's ``GatewayClient`` uses it.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from benchlib.messages import iopub_of, parent_id
from benchlib.servers import JupyterServer, Service
from benchlib.wsclient import WSClient
from test_service_comms import WIDGETS, comm_msgs, opened


@dataclass
class Servers:
    """jupyter_server (what the tests talk to) with its kernels at ipytwist (the gateway)."""

    js: JupyterServer
    gateway: Service

    def get(self, path: str) -> requests.Response:
        return self.js.api("GET", path, timeout=60)

    def post(self, path: str, body: Any = None) -> requests.Response:
        return self.js.api("POST", path, json=body or {}, timeout=60)

    def delete(self, path: str) -> requests.Response:
        return self.js.api("DELETE", path, timeout=60)

    def from_gateway(self, path: str) -> requests.Response:
        """What ipytwist itself answers."""
        return self.gateway.api("GET", path, timeout=30)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    tmp = tmp_path_factory.mktemp("gateway")
    gateway = Service(str(tmp / "ipytwist"))
    js = JupyterServer(str(tmp / "jupyter_server"))
    try:
        gateway.start()
        js.extra += [f"--gateway-url={gateway.url}", f"--GatewayClient.auth_token={gateway.token}"]
        yield Servers(js.start(), gateway)
    finally:
        js.stop()
        gateway.stop()


def channel(servers: Servers, kernel_id: str) -> contextlib.closing[WSClient]:
    """A kernel WebSocket on jupyter_server, as JupyterLab opens it (legacy JSON)."""
    return contextlib.closing(WSClient.connect(servers.js, kernel_id, timeout=30))


def execute(chan: WSClient, code: str, within: float = 60.0) -> tuple[dict[str, Any], list[dict]]:
    """Run ``code``; return its execute_reply and its iopub messages (up to idle)."""
    return collect(chan, chan.execute_request(code), within)


def collect(chan: WSClient, msg_id: str, within: float) -> tuple[dict[str, Any], list[dict]]:
    reply, got = chan.finish(msg_id, within)
    return reply, iopub_of(got, msg_id)


def _stdout(iopub: list[dict[str, Any]]) -> str:
    return "".join(
        m["content"]["text"]
        for m in iopub
        if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
    )


@pytest.fixture
def kernel(servers: Servers) -> Iterator[str]:
    r = servers.post("/api/kernels", {"name": "ipytwist"})
    assert r.status_code == 201, r.text
    model = r.json()
    assert model["name"] == "ipytwist"
    uuid.UUID(model["id"])
    try:
        yield model["id"]
    finally:
        servers.delete(f"/api/kernels/{model['id']}")


SLIDER = "import ipywidgets\nw = ipywidgets.IntSlider(5)\ndisplay(w)"


# -- the tests --------------------------------------------------------------------------


def test_kernelspecs_come_from_the_gateway(servers: Servers) -> None:
    r = servers.get("/api/kernelspecs")
    assert r.status_code == 200, r.text
    specs = r.json()
    assert "ipytwist" in specs["kernelspecs"]
    # jupyter_server reports its own default name (adopting the gateway's lazily).
    assert specs["default"] in ("ipytwist", "python3")
    spec = specs["kernelspecs"]["ipytwist"]["spec"]
    assert spec["language"] == "python"
    # JupyterLab enables its debugger button only for a spec that says so.
    assert spec["metadata"]["debugger"] is True
    r = servers.get("/api/kernelspecs/ipytwist")
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "ipytwist"


def test_kernel_is_listed_by_both_servers(servers: Servers, kernel: str) -> None:
    r = servers.get("/api/kernels")
    assert r.status_code == 200, r.text
    assert kernel in [k["id"] for k in r.json()]
    r = servers.from_gateway(f"/api/kernels/{kernel}")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == kernel


def test_execute_through_jupyter_server(servers: Servers, kernel: str) -> None:
    with channel(servers, kernel) as chan:
        info = chan.kernel_info()
        assert info["content"]["status"] == "ok"
        assert info["content"]["language_info"]["name"] == "python"
        reply, iopub = execute(chan, "print(6*7)")
        assert reply["content"]["status"] == "ok", reply["content"]
        assert _stdout(iopub) == "42\n"
        types = [m["msg_type"] for m in iopub]
        assert types[0] == "status" and iopub[0]["content"]["execution_state"] == "busy"
        assert "execute_input" in types
        reply, iopub = execute(chan, "6*7")
        results = [m for m in iopub if m["msg_type"] == "execute_result"]
        assert results and results[0]["content"]["data"]["text/plain"] == "42"
    # The service's transcript marks these cells as run through the gateway.
    r = servers.from_gateway(f"/api/kernels/{kernel}/transcript")
    cells = {c["code"]: c for c in r.json()["cells"]}
    assert cells["print(6*7)"]["origin"] == "gateway"
    assert cells["6*7"]["outputs"][0]["data"]["text/plain"] == "42"


def test_interrupt_through_jupyter_server(servers: Servers, kernel: str) -> None:
    with channel(servers, kernel) as chan:
        chan.kernel_info()
        msg_id = chan.send(
            "shell",
            "execute_request",
            {"code": "import time; time.sleep(60)", "silent": False, "allow_stdin": False},
        )
        # Interrupt only once the cell is really running.
        chan.until(lambda m: m["msg_type"] == "execute_input" and parent_id(m) == msg_id, 30)
        started = time.monotonic()
        r = servers.post(f"/api/kernels/{kernel}/interrupt")
        assert r.status_code == 204, r.text
        reply, iopub = collect(chan, msg_id, within=20)
        assert time.monotonic() - started < 10
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert any(
            m["msg_type"] == "error" and m["content"]["ename"] == "KeyboardInterrupt" for m in iopub
        )
        # The kernel keeps working afterwards.
        reply, iopub = execute(chan, "print('still here')")
        assert _stdout(iopub) == "still here\n"


def test_restart_through_jupyter_server(servers: Servers, kernel: str) -> None:
    with channel(servers, kernel) as chan:
        chan.kernel_info()
        reply, _ = execute(chan, "x = 42")
        assert reply["content"]["status"] == "ok"
        reply, iopub = execute(chan, "print(x)")
        assert _stdout(iopub) == "42\n"
        r = servers.post(f"/api/kernels/{kernel}/restart")
        assert r.status_code == 200, r.text
        assert r.json()["id"] == kernel
        # The open WebSocket keeps working: JupyterLab asks for kernel_info again.
        chan.kernel_info()
        reply, iopub = execute(chan, "print('x' in dir())")
        assert _stdout(iopub) == "False\n"
    # So does a new connection.
    with channel(servers, kernel) as chan:
        chan.kernel_info()
        reply, iopub = execute(chan, "print('x' in dir())")
        assert reply["content"]["status"] == "ok", reply["content"]
        assert _stdout(iopub) == "False\n"
        reply, iopub = execute(chan, "x")
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "NameError"


def test_a_slider_through_jupyter_server(servers: Servers, kernel: str) -> None:
    """As JupyterLab drives a slider through the gateway: its model opens, an update
    from the page sets the kernel's value, and the kernel's own change comes back."""
    with channel(servers, kernel) as chan:
        chan.kernel_info()
        reply, got = chan.execute(SLIDER, 60)
        assert reply["content"]["status"] == "ok", reply["content"]
        sid = opened(got, "IntSliderModel")["content"]["comm_id"]
        update = {"method": "update", "state": {"value": 7}, "buffer_paths": []}
        chan.until_idle(chan.send("shell", "comm_msg", {"comm_id": sid, "data": update}))
        reply, iopub = execute(chan, "print(w.value)\nw.value = 9")
        assert _stdout(iopub) == "7\n"
        states = [m["content"]["data"].get("state") for m in comm_msgs(iopub, sid)]
        assert {"value": 9} in states


def test_a_widget_with_binary_buffers_leaves_the_gateway_connection_alive(
    servers: Servers, kernel: str
) -> None:
    """jupyter_server's gateway client reads every frame from the gateway as UTF-8 text:
    a binary frame (any message with buffers) would end its connection.  Its clients
    get such messages as text frames without their buffers, and go on."""
    with channel(servers, kernel) as chan:
        chan.kernel_info()
        reply, got = chan.execute(WIDGETS, 60)
        assert reply["content"]["status"] == "ok", reply["content"]
        image = opened(got, "ImageModel")
        assert image["buffers"] == [] and image["content"]["data"]["buffer_paths"] == [["value"]]
        reply, iopub = execute(chan, "print(bytes(img.value))")
        assert _stdout(iopub) == "b'\\x89PNG\\x00\\xff'\n"


def test_a_breakpoint_through_jupyter_server(servers: Servers, kernel: str) -> None:
    """JupyterLab's debugger path: debug_request on the control channel of
    jupyter_server's kernel WebSocket, through the gateway to ipytwist."""
    from support.dap_session import break_in, top_frame_locals
    from test_debugger_ws import CELL, WsDebug

    with channel(servers, kernel) as chan:
        assert chan.kernel_info()["content"]["debugger"] is True
        debug = WsDebug(chan)
        break_in(debug, CELL, 3, clientID="t", adapterID="", pathFormat="path")
        chan.execute_request(CELL)
        thread = debug.event("stopped")["body"]["threadId"]
        assert top_frame_locals(debug, thread)[1]["b"] == "42"
        assert debug("continue", threadId=thread)["success"]
        assert debug("disconnect", restart=False, terminateDebuggee=False)["success"]
