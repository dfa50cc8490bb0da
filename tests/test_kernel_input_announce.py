"""A cell's ``execute_input`` published by the kernel as the cell starts
(kernel/inputcount.py), with the execution count the worker's last reply gave; the
worker publishes its own only when the kernel did not know the count or it changed.
With a fake worker, a worker's handler, and a real kernel through jupyter_client."""

from __future__ import annotations

from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from support.fakes import FakeProvisioner, Iopub
from support.fakes import Requester as Client
from support.jupyter_kernel import iopub_until_idle, reply_to
from test_kernel_core import execute, started
from test_worker_requests import FakeLink, FakeShell

from ipytwist.worker import ANNOUNCED
from ipytwist.worker.link import Interrupts
from ipytwist.worker.requests import RequestHandlers


def _reply(prov: FakeProvisioner, count: int | None, content: dict[str, Any] | None = None) -> None:
    event: dict[str, Any] = {"ev": "reply", "content": content or {"status": "ok"}}
    if count is not None:
        event["count"] = count
    prov.workers[-1].listener.worker_event(event)


def _types(iopub: Iopub, msg: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(m["msg_type"], m["content"]) for m in iopub.msgs if m["parent_header"].get(
        "msg_id") == msg["msg_id"]]  # fmt: skip


def test_after_a_reply_the_next_cell_is_announced_by_the_kernel() -> None:
    kernel, prov, iopub, _ = started()
    client = Client()
    first, second = execute("a = 1"), execute("a")
    kernel.handle("shell", first, client)
    assert ANNOUNCED not in prov.workers[0].sent[0]  # a new worker's count: not known
    _reply(prov, 2, {"status": "ok", "execution_count": 1})
    kernel.handle("shell", second, client)
    assert prov.workers[0].sent[1][ANNOUNCED] == 2
    assert _types(iopub, second) == [
        ("status", {"execution_state": "busy"}),
        ("execute_input", {"code": "a", "execution_count": 2}),
    ]
    _reply(prov, 3, {"status": "ok"})
    assert client.reply_to(second)["content"]["execution_count"] == 2


def test_silent_cells_and_code_the_worker_refuses_are_not_announced() -> None:
    kernel, prov, iopub, _ = started()
    client = Client()
    kernel.handle("shell", execute("x"), client)
    _reply(prov, 2)
    refused = [
        execute("1", silent=True),
        execute(["not", "code"]),
        execute("1", user_expressions=[1]),
    ]
    for n, msg in enumerate(refused, start=1):
        kernel.handle("shell", msg, client)
        assert ANNOUNCED not in prov.workers[0].sent[n]
        assert [t for t, _ in _types(iopub, msg)] == ["status"]
        _reply(prov, 2)


def test_a_new_interpreter_says_its_own_count() -> None:
    kernel, prov, iopub, _ = started()
    client = Client()
    kernel.handle("shell", execute("x"), client)
    _reply(prov, 7)
    kernel.restart()
    prov.workers[-1].ready()
    msg = execute("y")
    kernel.handle("shell", msg, client)
    assert ANNOUNCED not in prov.workers[-1].sent[0]
    assert "execute_input" not in [t for t, _ in _types(iopub, msg)]


def test_the_worker_publishes_its_input_only_if_not_announced_with_its_count() -> None:
    shell, link = FakeShell(), FakeLink()
    handlers = RequestHandlers(shell, link, Interrupts())  # type: ignore[arg-type]
    for announced in (5, None, 99):  # the count is 5, then 6, then 7
        handlers.announced = announced
        handlers.execute({"code": "x"})
    inputs = [e["count"] for e in link.events if e["ev"] == "execute_input"]
    assert inputs == [6, 7]


def test_each_cell_has_one_execute_input_with_its_count(kc: BlockingKernelClient) -> None:
    """Also after user code set the count, and in order: busy, input, result, idle."""
    counts = []
    for code in ("1", "get_ipython().execution_count = 41", "2", "3"):
        msg_id = kc.execute(code)
        msgs = [m for _, m in iopub_until_idle(kc, msg_id)]
        kinds = [m["msg_type"] for m in msgs]
        assert kinds[:2] == ["status", "execute_input"] and kinds[-1] == "status", kinds
        assert kinds.count("execute_input") == 1, kinds
        assert msgs[1]["content"]["code"] == code
        reply_to(kc.get_shell_msg, msg_id)
        counts.append(msgs[1]["content"]["execution_count"])
    assert counts[2:] == [42, 43] and counts[1] == counts[0] + 1


def test_each_request_says_how_many_sigints_came_before_it() -> None:
    """The worker tells apart an interrupt for a request it has not read yet from one
    for a finished request by this count (worker/link.py ``Interrupts.discard``).  A
    reply that says the worker had more (user code sent itself one) raises it."""
    kernel, prov, _, _ = started()
    client, worker = Client(), prov.workers[0]
    kernel.handle("shell", execute("os.kill(os.getpid(), 2)"), client)
    assert worker.sent[-1]["sigints"] == 0
    worker.listener.worker_event({"ev": "reply", "content": {"status": "ok"}, "sigints": 1})
    kernel.handle("shell", execute("while True: pass"), client)
    assert worker.sent[-1]["sigints"] == 1
    kernel.interrupt()
    _reply(prov, 3)  # an older worker says nothing of its SIGINTs
    kernel.handle("shell", execute("1"), client)
    assert worker.sent[-1]["sigints"] == 2
