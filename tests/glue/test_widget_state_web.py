"""The kernel's widget state through the web layer in process: the transcript's JSON and
``transcript.ipynb`` carry the live models at their latest values, a restart clears them,
and a malformed widget message is one line in the service's log."""

from __future__ import annotations

import base64
from typing import Any

import nbformat
from glue_fakes import Browser, HostEnv, parse_response
from test_long_responses import answer
from twisted.logger import formatEvent, globalLogPublisher

from ipytwist.wire import new_message

SLIDER = {
    "_model_name": "IntSliderModel",
    "_model_module": "@jupyter-widgets/controls",
    "_model_module_version": "2.0.0",
    "value": 5,
}


def publish(hk: Any, parent: dict, msg_type: str, content: dict, buffers: Any = None) -> None:
    """An iopub message of the kernel, as its worker's comm would publish it."""
    msg = new_message(msg_type, content, "kernel", parent, buffers=buffers)
    hk.kernel.output_log.publish(msg)


def widget_cell(hk: Any) -> dict:
    """A cell that made a slider (with a buffer) and a comm of another target."""
    request = new_message("execute_request", {"code": "IntSlider(5)"}, "page")
    hk.transcript.request(request, "page")
    opened = {"target_name": "jupyter.widget", "metadata": {"version": "2.1.0"}}
    data = {"state": {**SLIDER, "blob": None}, "buffer_paths": [["blob"]]}
    publish(hk, request, "comm_open", {**opened, "comm_id": "s1", "data": data}, [b"\x00\x01"])
    publish(hk, request, "comm_open", {**opened, "comm_id": "c", "target_name": "other"})
    view = {"model_id": "s1", "version_major": 2, "version_minor": 0}
    content = {"data": {"application/vnd.jupyter.widget-view+json": view}, "metadata": {}}
    publish(hk, request, "execute_result", {**content, "execution_count": 1})
    return request


def test_a_page_opened_later_gets_the_widgets_at_their_latest_values(
    web: tuple[HostEnv, Browser],
) -> None:
    env, browser = web
    hk = env.start_kernel()
    request = widget_cell(hk)
    for value in range(6, 1000):  # the kernel's echoes of a slider dragged in some window
        update = {"method": "echo_update", "state": {"value": value}, "buffer_paths": []}
        publish(hk, request, "comm_msg", {"comm_id": "s1", "data": update})
    body = answer(env, browser, f"/api/kernels/{hk.id}/transcript").json()
    widgets = body["widgets"]
    assert widgets["version_major"] == 2 and widgets["version_minor"] == 0
    assert widgets["state"] == {
        "s1": {
            "model_name": "IntSliderModel",
            "model_module": "@jupyter-widgets/controls",
            "model_module_version": "2.0.0",
            "state": {**SLIDER, "value": 999},
            "buffers": [
                {"encoding": "base64", "path": ["blob"], "data": base64.b64encode(b"\0\1").decode()}
            ],
        }
    }
    assert body["dropped_widgets"] == 0 and body["bytes"] == hk.transcript.size
    nb = answer(env, browser, f"/api/kernels/{hk.id}/transcript.ipynb").json()
    nbformat.validate(nbformat.from_dict(nb))
    assert nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"] == widgets


def test_a_restart_clears_the_widgets_of_the_old_interpreter(
    web: tuple[HostEnv, Browser],
) -> None:
    env, browser = web
    hk = env.start_kernel()
    widget_cell(hk)
    assert hk.transcript.widgets.models
    _, transport = browser.send("POST", f"/api/kernels/{hk.id}/restart")
    assert hk.kernel.execution_state == "restarting" and not hk.transcript.widgets.models
    env.provisioner.report_ready()  # the new interpreter: the restart is answered
    restarted = parse_response(transport.value())
    assert restarted is not None and restarted.code == 200
    body = answer(env, browser, f"/api/kernels/{hk.id}/transcript").json()
    assert body["widgets"]["state"] == {} and len(body["cells"]) == 1
    nb = answer(env, browser, f"/api/kernels/{hk.id}/transcript.ipynb").json()
    assert "widgets" not in nb["metadata"]


def test_a_dead_worker_takes_its_widgets_with_it(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    hk = env.start_kernel()
    widget_cell(hk)
    env.provisioner.workers[0].die()  # a new interpreter starts: the models are gone
    assert hk.kernel.execution_state == "restarting" and not hk.transcript.widgets.models
    env.provisioner.report_ready()
    body = answer(env, browser, f"/api/kernels/{hk.id}/transcript").json()
    assert body["widgets"]["state"] == {} and body["bytes"] == hk.transcript.size


def test_a_malformed_widget_message_is_one_line_in_the_log_and_the_kernel_serves_on(
    web: tuple[HostEnv, Browser],
) -> None:
    env, browser = web
    hk = env.start_kernel()
    request = widget_cell(hk)
    lines: list[str] = []

    def observer(event: dict[str, Any]) -> None:
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    try:
        bad = {"method": "update", "state": {"value": "s3cret"}, "buffer_paths": [["value", 0]]}
        publish(hk, request, "comm_msg", {"comm_id": "s1", "data": bad}, [b"x"])
        widget_lines = [line for line in lines if "widget message" in line]
        assert len(widget_lines) == 1, lines
        for _ in range(10_000):  # a flood: a few lines, then one that counts the rest
            publish(hk, request, "comm_msg", {"comm_id": "s1", "data": bad}, [b"x"])
        env.clock.advance(60)
    finally:
        globalLogPublisher.removeObserver(observer)
    assert hk.id in widget_lines[0] and "comm_msg" in widget_lines[0]
    assert "s3cret" not in widget_lines[0]
    assert len(lines) <= 12 and "suppressed" in lines[-1], lines
    body = answer(env, browser, f"/api/kernels/{hk.id}/transcript").json()
    assert body["widgets"]["state"]["s1"]["state"]["value"] == 5
