"""Comm routing in the kernel (kernel/comms.py, core.py) with a fake worker: a client's
comm messages wait their turn behind a running cell and get no reply, the worker's
comm messages are published on iopub with their buffers, parented to the request."""

from __future__ import annotations

from typing import Any

import pytest
from support.fakes import FakeProvisioner, FakeWorker, Iopub
from support.fakes import Requester as Client
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher

from ipytwist.kernel import Kernel
from ipytwist.wire import new_message

Env = tuple[Kernel, FakeWorker, Iopub]


@pytest.fixture
def env() -> Env:
    prov = FakeProvisioner()
    kernel = Kernel(Clock(), prov)
    iopub = Iopub()
    kernel.output_log.subscribe(iopub)
    kernel.start()
    prov.workers[0].ready()
    return kernel, prov.workers[0], iopub


def message(msg_type: str, content: dict[str, Any], buffers: list[bytes] | None = None) -> dict:
    return new_message(msg_type, content, "client", buffers=buffers)


def test_a_comm_msg_sent_while_a_cell_runs_is_handled_after_it(env: Env) -> None:
    kernel, worker, iopub = env
    client = Client()
    cell = message("execute_request", {"code": "while True: pass"})
    kernel.handle("shell", cell, client)
    update = message("comm_msg", {"comm_id": "w1", "data": {"x": 1}}, [b"\x00\xff"])
    kernel.handle("shell", update, client)
    assert [r["req"] for r in worker.sent] == ["execute"]
    worker.reply({"status": "ok"})
    (_, record) = worker.sent
    assert record == {
        "req": "comm",
        "header": update["header"],
        "content": {
            "msg_type": "comm_msg",
            "header": update["header"],
            "content": {"comm_id": "w1", "data": {"x": 1}},
            "metadata": {},
        },
        "buffers": [b"\x00\xff"],
        "sigints": 0,
    }
    worker.reply({"status": "ok"})
    # Busy and idle around it, as ipykernel does for every shell message; no reply.
    assert iopub.of(update) == [("status", "busy"), ("status", "idle")]
    assert [r["msg_type"] for r in client.replies()] == ["execute_reply"]


def test_the_workers_comm_messages_reach_iopub_with_buffers_parented_to_the_request(
    env: Env,
) -> None:
    kernel, worker, iopub = env
    cell = message("execute_request", {"code": "display(slider)"})
    kernel.handle("shell", cell, Client())
    opened = {"comm_id": "w1", "target_name": "jupyter.widget", "data": {"state": {}}}
    kernel.worker_event({"ev": "comm_open", "content": opened, "metadata": {"version": "2.1.0"}})
    sent = {"comm_id": "w1", "data": {"method": "update"}}
    bufs = [b"\x01\x02", b""]
    kernel.worker_event({"ev": "comm_msg", "content": sent, "buffers": bufs})
    kernel.worker_event({"ev": "comm_close", "content": {"comm_id": "w1", "data": {}}})
    kernel.worker_event({"ev": "comm_msg", "content": {"data": {}}})  # no comm_id: dropped
    worker.reply({"status": "ok"})
    comms = [m for m in iopub.msgs if m["msg_type"].startswith("comm_")]
    assert [m["msg_type"] for m in comms] == ["comm_open", "comm_msg", "comm_close"]
    assert all(m["parent_header"]["msg_id"] == cell["msg_id"] for m in comms)
    assert comms[0]["content"] == opened
    assert comms[0]["metadata"] == {"version": "2.1.0"}
    assert comms[1]["buffers"] == [b"\x01\x02", b""]


@pytest.mark.parametrize("channel", ["shell", "control"])
def test_comm_info_is_asked_of_the_worker_and_answered_on_its_channel(
    env: Env, channel: str
) -> None:
    kernel, worker, _ = env
    client = Client()
    info = message("comm_info_request", {"target_name": "jupyter.widget"})
    kernel.handle(channel, info, client)
    assert worker.sent[-1]["req"] == "comm_info"
    assert worker.sent[-1]["content"] == {"target_name": "jupyter.widget"}
    comms = {"w1": {"target_name": "jupyter.widget"}}
    worker.reply({"status": "ok", "comms": comms})
    reply = client.reply_to(info)
    assert client.sent[-1][0] == channel
    assert reply["msg_type"] == "comm_info_reply"
    assert reply["content"] == {"status": "ok", "comms": comms}


def test_a_comm_open_is_no_longer_closed_by_the_kernel(env: Env) -> None:
    """It used to answer every comm_open with a comm_close; now the worker decides."""
    kernel, worker, iopub = env
    opening = message("comm_open", {"comm_id": "c", "target_name": "t", "data": {}})
    kernel.handle("shell", opening, Client())
    assert worker.sent[-1]["req"] == "comm"
    worker.reply({"status": "ok"})
    assert [m["msg_type"] for m in iopub.msgs if m["msg_type"].startswith("comm")] == []


def test_comm_messages_queued_at_shutdown_get_no_aborted_reply(env: Env) -> None:
    kernel, worker, _ = env
    client = Client()
    kernel.handle("shell", message("execute_request", {"code": "1"}), client)
    kernel.handle("shell", message("comm_msg", {"comm_id": "c", "data": {}}), client)
    kernel.shutdown()
    assert [r["msg_type"] for r in client.replies()] == ["execute_reply"]


MALFORMED = [
    ("comm_msg", {"data": {}}, "its comm_id is not a string"),
    ("comm_msg", {"comm_id": 5, "data": {}}, "its comm_id is not a string"),
    ("comm_open", {"comm_id": "c", "data": {}}, "its target_name is not a string"),
    ("comm_close", {"comm_id": "c", "data": ["x" * 1000]}, "its data is not an object"),
]


def test_a_malformed_comm_message_is_one_log_line_and_the_kernel_goes_on(env: Env) -> None:
    kernel, worker, iopub = env
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        for msg_type, content, _ in MALFORMED:
            kernel.handle("shell", message(msg_type, content), Client())
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert worker.sent == []  # none reached the worker
    lines = [formatEvent(e) for e in events if "ignored a comm" in formatEvent(e)]
    assert lines == [f"ignored a {t}: {why}" for t, _, why in MALFORMED]
    assert all("x" * 100 not in line for line in lines)  # never the payload
    client = Client()
    fine = message("comm_msg", {"comm_id": "c"})  # no data: the worker makes it {}
    kernel.handle("shell", fine, client)
    assert worker.sent[-1]["req"] == "comm"


def test_the_workers_log_event_is_one_log_line_and_nothing_on_iopub(env: Env) -> None:
    kernel, _, iopub = env
    events: list[dict[str, Any]] = []
    seen = len(iopub.msgs)
    globalLogPublisher.addObserver(events.append)
    try:
        kernel.worker_event({"ev": "log", "text": "No such comm: c9" + "x" * 500})
    finally:
        globalLogPublisher.removeObserver(events.append)
    lines = [formatEvent(e) for e in events]
    assert lines == ["worker: No such comm: c9" + "x" * 184], lines
    assert iopub.msgs[seen:] == []
