"""``print('x', end='')`` in a long cell reaches clients while the cell runs
(worker/partial.py): the flush thread's clock of cells, and a real kernel, both when the
thread sleeps (the kernel was idle) and when it keeps time (cells keep coming)."""

from __future__ import annotations

import threading

from jupyter_client.blocking.client import BlockingKernelClient
from support.jupyter_kernel import iopub_until_idle, reply_to

from ipytwist.worker.partial import CellClock

LONG_CELL = "print('partial', end=''); import time; time.sleep(1.5); print('!')"


def test_a_cell_that_starts_wakes_the_sleeping_thread() -> None:
    cells = CellClock()
    woke = threading.Event()

    def thread() -> None:
        cells.wait_for_a_cell()
        woke.set()

    t = threading.Thread(target=thread, daemon=True)
    t.start()
    assert not woke.wait(0.05)  # (nothing started: it sleeps)
    cells.start()
    t.join(5)
    assert woke.is_set()


def test_the_thread_keeps_time_while_cells_run_and_sleeps_after() -> None:
    cells = CellClock()
    cells.start()
    cells.wait_for_a_cell()  # at once: a cell started since the last look
    assert cells.went_on()  # it still runs
    cells.done()
    assert not cells.went_on()
    cells.start()
    cells.done()  # a short cell between two looks
    assert cells.went_on()
    assert not cells.went_on()


def _partial_then_rest(kc: BlockingKernelClient) -> None:
    msg_id = kc.execute(LONG_CELL)
    msgs = iopub_until_idle(kc, msg_id)
    streams = [(t, m["content"]["text"]) for t, m in msgs if m["msg_type"] == "stream"]
    assert "".join(text for _, text in streams) == "partial!\n"
    t_partial = next(t for t, text in streams if text.startswith("partial"))
    assert msgs[-1][0] - t_partial >= 1.0, streams  # it came long before the cell ended
    assert reply_to(kc.get_shell_msg, msg_id)["content"]["status"] == "ok"


def test_a_partial_line_arrives_while_its_cell_runs(kc: BlockingKernelClient) -> None:
    _partial_then_rest(kc)  # the flush thread slept: the kernel was idle


def test_a_partial_line_arrives_right_after_a_run_of_short_cells(
    kc: BlockingKernelClient,
) -> None:
    for _ in range(20):
        msg_id = kc.execute("1")
        iopub_until_idle(kc, msg_id)
        reply_to(kc.get_shell_msg, msg_id)
    _partial_then_rest(kc)  # the flush thread was keeping time
