"""Comms end to end on the real service: widgets over the kernel WebSocket (legacy
frames and v1 frames, with binary buffers both ways) and over ZeroMQ with
jupyter_client.  A client opens a widget, updates it, the kernel's value changes, and
the kernel's own change reaches a second client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from benchlib.messages import make_message
from benchlib.servers import WARM_POOL, Service
from benchlib.wsclient import WSClient
from jupyter_client import BlockingKernelClient
from jupyter_server.services.kernels.connection.base import (
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)
from support.service import service_fixture

svc = service_fixture("comms", *WARM_POOL, shared=True)

WIDGETS = (
    "import ipywidgets\n"
    "w = ipywidgets.IntSlider(5)\n"
    "img = ipywidgets.Image(value=b'\\x89PNG\\x00\\xff')\n"
    "display(w, img)"
)
NEW_IMAGE = b"\x00new\xff\x80"


def send(ws: WSClient, msg_type: str, content: dict[str, Any], buffers: list[bytes]) -> str:
    """A message with binary buffers, framed by jupyter_server's own serializers."""
    msg = make_message(msg_type, content, ws.session_id)
    msg["buffers"] = buffers
    if ws.v1:
        # (given a dict, jupyter_server's serializer leaves the buffers out: a list then)
        parts = [json.dumps(msg[k]).encode() for k in ("header", "parent_header", "metadata")]
        parts += [json.dumps(msg["content"]).encode(), *buffers]
        ws.ws.send_binary(serialize_msg_to_ws_v1(parts, "shell"))
    else:
        ws.ws.send_binary(serialize_binary_message({**msg, "channel": "shell"}))
    return str(msg["header"]["msg_id"])


def opened(msgs: list[dict[str, Any]], model: str) -> dict[str, Any]:
    """The comm_open of the widget model ``model``."""
    for m in msgs:
        if m["msg_type"] == "comm_open" and m["content"]["data"]["state"]["_model_name"] == model:
            return m
    raise AssertionError(f"no {model} opened in {[m['msg_type'] for m in msgs]}")


def comm_msgs(msgs: list[dict[str, Any]], comm_id: str) -> list[dict[str, Any]]:
    return [m for m in msgs if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id]


@pytest.mark.parametrize("v1", [False, True], ids=["legacy", "v1"])
def test_widgets_over_websockets_with_binary_buffers_both_ways(
    svc: Service, kernel_id: str, clients: list[WSClient], v1: bool
) -> None:
    a = WSClient.connect(svc, kernel_id, v1=v1)
    b = WSClient.connect(svc, kernel_id, v1=v1)
    clients += [a, b]
    a.kernel_info()
    reply, got = a.execute(WIDGETS)
    assert reply["content"]["status"] == "ok", reply
    slider, image = opened(got, "IntSliderModel"), opened(got, "ImageModel")
    assert slider["content"]["target_name"] == "jupyter.widget"
    assert image["buffers"] == [b"\x89PNG\x00\xff"]  # a binary frame carried it
    views = [m for m in got if m["msg_type"] == "display_data"]
    view = views[0]["content"]["data"]["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == slider["content"]["comm_id"]
    b.until(lambda m: m["msg_type"] == "comm_open")  # the other client sees it too

    sid, iid = slider["content"]["comm_id"], image["content"]["comm_id"]
    update = {"method": "update", "state": {"value": 7}, "buffer_paths": []}
    send(a, "comm_msg", {"comm_id": sid, "data": update}, [])
    image_update = {"method": "update", "state": {}, "buffer_paths": [["value"]]}
    last = send(a, "comm_msg", {"comm_id": iid, "data": image_update}, [NEW_IMAGE])
    a.until_idle(last)
    reply, got = a.execute("print(w.value, bytes(img.value))")
    assert "".join(m["content"].get("text", "") for m in got) == f"7 {NEW_IMAGE!r}\n"

    # The kernel's own change, and the echo of a's, reach b.
    a.execute("w.value = 9")
    seen = b.until(
        lambda m: any(
            m2["content"]["data"].get("state") == {"value": 9} for m2 in comm_msgs([m], sid)
        )
    )
    states = [m["content"]["data"] for m in comm_msgs(seen, sid)]
    assert {"method": "echo_update", "state": {"value": 7}, "buffer_paths": []} in states
    echoed = [m for m in comm_msgs(seen, iid) if m["content"]["data"]["method"] == "echo_update"]
    assert echoed and echoed[0]["buffers"] == [NEW_IMAGE]


def test_comm_info_lists_the_widgets_over_websocket(
    svc: Service, kernel_id: str, clients: list[WSClient]
) -> None:
    a = WSClient.connect(svc, kernel_id)
    clients.append(a)
    a.kernel_info()
    _, got = a.execute(WIDGETS)
    sid = opened(got, "IntSliderModel")["content"]["comm_id"]
    asked = a.send("shell", "comm_info_request", {"target_name": "jupyter.widget"})
    (reply,) = [m for m in a.until_idle(asked) if m["msg_type"] == "comm_info_reply"] or [
        a.until(lambda m: m["msg_type"] == "comm_info_reply")[-1]
    ]
    assert reply["content"]["comms"][sid] == {"target_name": "jupyter.widget"}
    asked = a.send("shell", "comm_info_request", {"target_name": "other"})
    got = a.until(lambda m: m["msg_type"] == "comm_info_reply")
    assert got[-1]["content"] == {"status": "ok", "comms": {}}


def test_widgets_over_zeromq_with_jupyter_client(kc: BlockingKernelClient) -> None:
    kc.execute(WIDGETS)
    msgs = []
    while not (
        msgs
        and msgs[-1]["msg_type"] == "status"
        and msgs[-1]["content"]["execution_state"] == "idle"
    ):
        msgs.append(kc.get_iopub_msg(timeout=30))
    slider, image = opened(msgs, "IntSliderModel"), opened(msgs, "ImageModel")
    assert [bytes(b) for b in image["buffers"]] == [b"\x89PNG\x00\xff"]
    sid, iid = slider["content"]["comm_id"], image["content"]["comm_id"]
    update = {"method": "update", "state": {"value": 7}, "buffer_paths": []}
    kc.session.send(kc.shell_channel.socket, "comm_msg", {"comm_id": sid, "data": update})
    image_update = {"method": "update", "state": {}, "buffer_paths": [["value"]]}
    content = {"comm_id": iid, "data": image_update}
    kc.session.send(kc.shell_channel.socket, "comm_msg", content, buffers=[NEW_IMAGE])
    echoed: list[dict[str, Any]] = []
    while not echoed:  # the change is echoed to every client, its buffer with it
        msg = kc.get_iopub_msg(timeout=30)
        if msg["msg_type"] == "comm_msg" and msg["content"]["comm_id"] == iid:
            echoed.append(msg)
    assert echoed[0]["content"]["data"]["method"] == "echo_update"
    assert [bytes(b) for b in echoed[0]["buffers"]] == [NEW_IMAGE]
    reply = kc.execute_interactive(
        "print(w.value, bytes(img.value))", timeout=30, output_hook=msgs.append
    )
    assert reply["content"]["status"] == "ok"
    text = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
    assert text.endswith(f"7 {NEW_IMAGE!r}\n")
    info = kc.comm_info(target_name="jupyter.widget", reply=True, timeout=30)
    assert info["content"]["comms"][sid] == {"target_name": "jupyter.widget"}
