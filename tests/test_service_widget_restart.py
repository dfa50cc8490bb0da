"""Issue 17, item 6 (interrupt and restart behave with widgets alive), end to end on the
real service with a legacy and a v1 WebSocket client and a ZeroMQ client
(jupyter_client):

- interrupting a loop that sets a slider leaves the slider usable: the kernel's next
  change reaches every client, and a client's change reaches the kernel;
- a restart closes the kernel's widgets and tells every frontend: each client gets a
  ``comm_close`` for every widget model before the ``restarting`` status, and the
  transcript's widget state is empty."""

from __future__ import annotations

from typing import Any

from benchlib.servers import WARM_POOL, Service
from benchlib.wsclient import WSClient
from jupyter_client import BlockingKernelClient
from support.service import service_fixture

svc = service_fixture("widget-restart", *WARM_POOL)

SLIDER = "import ipywidgets\ns = ipywidgets.IntSlider()\ndisplay(s)"
LOOP = "i = 0\nwhile True:\n    i += 1\n    s.value = i % 50"


def is_status(msg: dict[str, Any], state: str) -> bool:
    return msg["msg_type"] == "status" and msg["content"]["execution_state"] == state


def slider_values(msgs: list[dict[str, Any]], comm_id: str) -> list[int]:
    return [
        m["content"]["data"]["state"]["value"]
        for m in msgs
        if m["msg_type"] == "comm_msg"
        and m["content"]["comm_id"] == comm_id
        and "value" in m["content"]["data"].get("state", {})
    ]


def zmq_until(kc: BlockingKernelClient, pred: Any, timeout: float = 30) -> list[dict]:
    got: list[dict] = []
    while not got or not pred(got[-1]):
        got.append(kc.get_iopub_msg(timeout=timeout))
    return got


def test_interrupt_and_restart_with_a_slider_alive(svc: Service) -> None:
    kid = svc.start_kernel()
    legacy, v1 = WSClient.connect(svc, kid), WSClient.connect(svc, kid, v1=True)
    kc = BlockingKernelClient()
    kc.load_connection_file(svc.connection_file(kid))
    kc.start_channels()
    try:
        legacy.kernel_info()
        v1.kernel_info()
        kc.wait_for_ready(timeout=60)
        reply, got = legacy.execute(SLIDER)
        assert reply["content"]["status"] == "ok", reply
        models = [m["content"]["comm_id"] for m in got if m["msg_type"] == "comm_open"]
        (sid,) = [
            m["content"]["comm_id"]
            for m in got
            if m["msg_type"] == "comm_open"
            and m["content"]["data"]["state"]["_model_name"] == "IntSliderModel"
        ]
        assert len(models) == 3  # the slider, its layout and its style

        # Interrupt a loop that sets the slider: it stays usable.
        loop = legacy.execute_request(LOOP)
        legacy.until(lambda m: len(slider_values([m], sid)) > 0)
        assert svc.api("POST", f"/api/kernels/{kid}/interrupt").status_code == 204
        reply, _ = legacy.finish(loop)
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        reply, got = legacy.execute("s.value = 99")
        assert slider_values(got, sid)[-1] == 99
        v1.until(lambda m: 99 in slider_values([m], sid))
        zmq_until(kc, lambda m: 99 in slider_values([m], sid))
        update = {"method": "update", "state": {"value": 77}, "buffer_paths": []}
        sent = v1.send("shell", "comm_msg", {"comm_id": sid, "data": update})
        # Handled (busy/idle around it) before another connection's cell: two
        # connections' messages have no order between them.
        v1.until(lambda m: is_status(m, "idle") and m["parent_header"].get("msg_id") == sent)
        reply, got = legacy.execute("print(s.value)")
        assert [m["content"]["text"] for m in got if m["msg_type"] == "stream"] == ["77\n"]

        # A restart closes every model on every client, before 'restarting'.
        transcript = svc.api("GET", f"/api/kernels/{kid}/transcript").json()
        assert set(transcript["widgets"]["state"]) == set(models)
        assert svc.api("POST", f"/api/kernels/{kid}/restart").status_code == 200
        for name, msgs in (
            ("legacy", legacy.until(lambda m: is_status(m, "restarting"))),
            ("v1", v1.until(lambda m: is_status(m, "restarting"))),
            ("zmq", zmq_until(kc, lambda m: is_status(m, "restarting"))),
        ):
            closed = [m["content"]["comm_id"] for m in msgs if m["msg_type"] == "comm_close"]
            assert sorted(closed) == sorted(models), (name, closed)
        assert not svc.api("GET", f"/api/kernels/{kid}/transcript").json()["widgets"]["state"]
        reply, got = legacy.execute("'s' in dir()", timeout=60)  # a fresh interpreter
        results = [m["content"]["data"]["text/plain"] for m in got if "data" in m["content"]]
        assert results == ["False"], results
    finally:
        kc.stop_channels()
        legacy.close()
        v1.close()
        svc.delete_kernel(kid)
