"""Issue 17, item 3: a restart closes the kernel's widgets and tells every frontend.

When the interpreter goes (a restart, a worker that dies), every client is told a
``comm_close`` for each comm open in it, before the ``restarting`` status: those the
worker opened (a widget) and those a client opened and the worker took.  The kernel
with a fake worker, and the transcript that follows its output log."""

from __future__ import annotations

from typing import Any

from support.fakes import FakeProvisioner, FakeWorker, Iopub
from support.fakes import Requester as Client
from twisted.internet.task import Clock

from ipytwist.kernel import Kernel
from ipytwist.kernel.comms import LiveComms
from ipytwist.kernel.transcript import Transcript
from ipytwist.wire import new_message

STATE = {"_model_name": "IntSliderModel", "_model_module": "m", "_model_module_version": "2"}


def widget_open(comm_id: str) -> dict[str, Any]:
    data = {"state": {**STATE, "value": 1}, "buffer_paths": []}
    content = {"comm_id": comm_id, "target_name": "jupyter.widget", "data": data}
    return {"ev": "comm_open", "content": content}


def client_comm(msg_type: str, comm_id: str) -> dict[str, Any]:
    content = {"comm_id": comm_id, "data": {}, "target_name": "jupyter.widget.control"}
    return new_message(msg_type, content, "client")


def closes_then_status(iopub: Iopub, since: int) -> list[tuple[str, str]]:
    return [
        (m["msg_type"], m["content"].get("comm_id", m["content"].get("execution_state")))
        for m in iopub.msgs[since:]
        if m["msg_type"] in ("comm_close", "status")
    ]


def started() -> tuple[Kernel, FakeProvisioner, Iopub, Transcript]:
    prov = FakeProvisioner()
    kernel = Kernel(Clock(), prov)
    iopub = Iopub()
    transcript = Transcript(max_bytes=1 << 20)
    kernel.output_log.subscribe(iopub)
    kernel.output_log.subscribe(transcript)
    kernel.start()
    prov.workers[0].ready()
    return kernel, prov, iopub, transcript


def open_comms(kernel: Kernel, worker: FakeWorker) -> None:
    """w1, w2 and w3 opened by the cell (w2 closed again); c1 and c2 by a client (the
    worker refuses c2: it publishes its comm_close); c3 opened and closed by a client."""
    client = Client()
    kernel.handle("shell", new_message("execute_request", {"code": "w"}, "client"), client)
    for comm_id in ("w1", "w2", "w3"):
        kernel.worker_event(widget_open(comm_id))
    kernel.worker_event({"ev": "comm_close", "content": {"comm_id": "w2", "data": {}}})
    worker.reply({"status": "ok"})
    for msg_type, comm_id in [("comm_open", "c1"), ("comm_open", "c2"), ("comm_open", "c3")]:
        kernel.handle("shell", client_comm(msg_type, comm_id), client)
        if comm_id == "c2":
            kernel.worker_event({"ev": "comm_close", "content": {"comm_id": "c2", "data": {}}})
        worker.reply({"status": "ok"})
    kernel.handle("shell", client_comm("comm_close", "c3"), client)
    worker.reply({"status": "ok"})


def test_a_restart_closes_every_open_comm_on_iopub_and_clears_the_widget_state() -> None:
    kernel, prov, iopub, transcript = started()
    open_comms(kernel, prov.workers[0])
    assert set(transcript.widgets.models) == {"w1", "w3"}
    seen = len(iopub.msgs)
    kernel.restart()
    assert closes_then_status(iopub, seen) == [
        ("comm_close", "w1"),
        ("comm_close", "w3"),
        ("comm_close", "c1"),
        ("status", "restarting"),
    ]
    assert all(m["content"]["data"] == {} for m in iopub.msgs[seen:-1])
    assert transcript.widgets.models == {} and transcript.widgets.size == 0
    # The new interpreter's comms are its own: a second restart closes only those.
    prov.workers[0].die("exited with status 0")
    prov.workers[1].ready()
    kernel.worker_event(widget_open("n1"))
    seen = len(iopub.msgs)
    kernel.restart()
    assert closes_then_status(iopub, seen) == [("comm_close", "n1"), ("status", "restarting")]


def test_a_worker_that_dies_closes_its_comms_parented_to_the_running_cell() -> None:
    kernel, prov, iopub, transcript = started()
    open_comms(kernel, prov.workers[0])
    cell = new_message("execute_request", {"code": "crash()"}, "client")
    kernel.handle("shell", cell, Client())
    seen = len(iopub.msgs)
    prov.workers[0].die()
    closes = [m for m in iopub.msgs[seen:] if m["msg_type"] == "comm_close"]
    assert [m["content"]["comm_id"] for m in closes] == ["w1", "w3", "c1"]
    assert all(m["parent_header"]["msg_id"] == cell["msg_id"] for m in closes)
    assert transcript.widgets.models == {}
    prov.workers[1].ready()
    seen = len(iopub.msgs)
    kernel.restart()  # nothing left open to close
    assert closes_then_status(iopub, seen) == [("status", "restarting")]


def test_the_open_comms_kept_are_bounded_and_an_unusable_id_is_not_kept() -> None:
    comms = LiveComms(max_comms=3)
    for i in range(5):
        comms.follow("comm_open", {"comm_id": f"c{i}"})
    comms.follow("comm_open", {"comm_id": "x" * 2000})  # longer than any id kept
    comms.follow("comm_open", {"comm_id": 7})
    comms.follow("comm_msg", {"comm_id": "m"})
    assert list(comms.ids) == ["c2", "c3", "c4"] and comms.forgotten == 2
    closed: list[dict[str, Any]] = []
    comms.close_all(closed.append)
    assert closed == [{"comm_id": f"c{i}", "data": {}} for i in (2, 3, 4)]
    assert not comms.ids
