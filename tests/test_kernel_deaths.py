"""Kernel (kernel/core.py) with a fake worker: the worker's death, before and after it
was ready (the fixture and helpers of test_kernel_core.py)."""

from __future__ import annotations

from typing import Any

import pytest
from support.fakes import Requester as Client
from test_kernel_core import execute, started

from ipytwist.kernel.supervisor import MAX_EARLY_DEATHS


@pytest.fixture
def env() -> Any:
    return started()


def test_worker_death_fails_the_cell_and_starts_a_new_worker(env: Any) -> None:
    """The running cell gets an error naming the cause; clients see restarting, then idle
    once the new worker is ready; queued executes are aborted."""
    kernel, prov, iopub, _ = env
    client = Client()
    running, queued = execute("boom"), execute("next")
    kernel.handle("shell", running, client)
    kernel.handle("shell", queued, client)
    prov.workers[0].die("was killed by signal 11 (SIGSEGV)")
    reply = client.reply_to(running)["content"]
    assert reply["status"] == "error"
    assert "SIGSEGV" in reply["evalue"]
    assert "execution_count" in reply
    kinds = [t for t, _ in iopub.of(running)]
    assert ("status", "restarting") in iopub.of(running)
    assert "error" in kinds
    assert kinds[-1] == "status" and iopub.of(running)[-1] == ("status", "idle")
    assert client.reply_to(queued)["content"]["status"] == "aborted"
    assert len(prov.workers) == 2
    assert kernel.execution_state == "restarting"
    prov.workers[1].ready()
    assert iopub.states()[-1] == "idle"
    after = execute("again")
    kernel.handle("shell", after, client)
    assert prov.workers[1].sent[-1]["content"]["code"] == "again"


def test_worker_that_never_starts_is_given_up(env: Any) -> None:
    """After repeated deaths before ready, the kernel reports dead and stops respawning."""
    kernel, prov, iopub, _ = env
    prov.workers[0].die()  # was ready: counts as a normal crash
    for _ in range(MAX_EARLY_DEATHS):
        prov.workers[-1].die("exited with status 1")
    assert kernel.execution_state == "dead"
    assert iopub.states()[-1] == "dead"
    assert len(prov.workers) == MAX_EARLY_DEATHS + 1


def test_a_cell_waiting_for_a_replacement_that_dies_at_start_runs_on_the_next(
    env: Any,
) -> None:
    """A cell sent while a crashed worker is replaced waits for the new one; if that one
    dies before it is ever ready (it ran nothing), the cell is not aborted but runs on
    the one after (a crash cycle's ``1`` came back ``aborted`` in CI).  Once the kernel
    gives up, it is aborted."""
    kernel, prov, _, _ = env
    client = Client()
    kernel.handle("shell", execute("boom"), client)
    prov.workers[0].die("exited with status 1")
    waiting = execute("1")
    kernel.handle("shell", waiting, client)
    prov.workers[1].die("exited with status 1")  # never ready
    assert not [m for m in client.replies() if m["parent_header"] == waiting["header"]]
    prov.workers[2].ready()
    assert prov.workers[2].sent[-1]["content"]["code"] == "1"
    prov.workers[2].reply({"status": "ok", "execution_count": 1})
    assert client.reply_to(waiting)["content"]["status"] == "ok"
    prov.workers[2].die()
    given_up = execute("2")
    kernel.handle("shell", given_up, client)
    for _ in range(MAX_EARLY_DEATHS):
        prov.workers[-1].die("exited with status 1")
    assert client.reply_to(given_up)["content"]["status"] == "aborted"
