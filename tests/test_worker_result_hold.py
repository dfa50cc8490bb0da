"""A cell's result goes out with its reply, in one write, when nothing of user code can
run between them (worker/link.py, ``may_hold_result``): the reader wakes once for
both, and output keeps its order with them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from support.jupyter_kernel import iopub_until_idle

from ipytwist.framing import RecordDecoder
from ipytwist.worker.link import Interrupts, WorkerLink
from ipytwist.worker.requests import may_hold_result

MARKER = b"\0sync-marker\0"


@pytest.fixture(name="pipes")
def pipes_fixture() -> Iterator[tuple[WorkerLink, int, int]]:
    """A worker link writing events to a pipe and markers to another: (link, the events'
    read end, the output's read end)."""
    ev_r, ev_w = os.pipe()
    out_r, out_w = os.pipe()
    for fd in (ev_r, out_r):
        os.set_blocking(fd, False)
    link = WorkerLink(-1, ev_w, Interrupts(), sync_marker=MARKER, sync_fds=(out_w,))
    yield link, ev_r, out_r
    for fd in (ev_r, ev_w, out_r, out_w):
        os.close(fd)


def drained(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return b""


def test_a_held_result_goes_with_the_reply_in_one_write(pipes: Any) -> None:
    """Nothing is written for the held result; then one marker per event and both
    records, the result first, in what one read of the pipe gets."""
    link, ev_r, out_r = pipes
    link.hold_result = True
    link.emit({"ev": "execute_result", "data": {"text/plain": "1"}})
    assert drained(ev_r) == b"" and drained(out_r) == b""
    link.emit({"ev": "reply", "content": {"status": "ok"}})
    assert drained(out_r) == MARKER * 2
    assert [r["ev"] for r in RecordDecoder().feed(drained(ev_r))] == ["execute_result", "reply"]


def test_without_hold_each_event_is_written_at_once(pipes: Any) -> None:
    link, ev_r, out_r = pipes
    link.emit({"ev": "execute_result", "data": {}})
    assert drained(out_r) == MARKER
    assert [r["ev"] for r in RecordDecoder().feed(drained(ev_r))] == ["execute_result"]


def test_only_one_result_is_held(pipes: Any) -> None:
    """A second result (or any event) writes the held one first."""
    link, ev_r, out_r = pipes
    link.hold_result = True
    link.emit({"ev": "execute_result", "data": {"text/plain": "1"}})
    link.emit({"ev": "execute_result", "data": {"text/plain": "2"}})
    records = RecordDecoder().feed(drained(ev_r))
    assert [r["data"]["text/plain"] for r in records] == ["1", "2"]
    assert drained(out_r) == MARKER * 2


def test_a_result_is_held_only_if_no_user_code_can_run_after_it() -> None:
    callbacks: dict[str, list[Any]] = {"post_execute": [], "post_run_cell": []}
    shell = SimpleNamespace(ast_node_interactivity="last_expr", events=SimpleNamespace())
    shell.events.callbacks = callbacks
    assert may_hold_result(shell, {})
    assert not may_hold_result(shell, {"x": "print('ux')"})
    shell.ast_node_interactivity = "all"
    assert not may_hold_result(shell, {})
    shell.ast_node_interactivity = "last_expr_or_assign"
    for event in callbacks:
        callbacks[event].append(print)
        assert not may_hold_result(shell, {})
        callbacks[event].clear()
    assert may_hold_result(shell, {})


def order(kc: Any, code: str, **kwargs: Any) -> list[str]:
    """The iopub messages of ``code``: ``result`` and each stream's text, in order."""
    msg_id = kc.execute(code, **kwargs)
    seen = []
    for _, msg in iopub_until_idle(kc, msg_id):
        if msg["msg_type"] == "execute_result":
            seen.append("result")
        elif msg["msg_type"] == "stream":
            seen.extend(line for line in msg["content"]["text"].splitlines() if line)
    kc.get_shell_msg(timeout=30)
    return seen


def test_what_user_code_prints_after_the_result_comes_after_it(kc: Any) -> None:
    """A real kernel: a post_run_cell hook, user expressions and a cell whose every
    expression is displayed all print after the result; each keeps its place."""
    kc.execute_interactive("print('before')", timeout=30)
    assert order(kc, "print('a'); 1") == ["a", "result"]
    hook = "_hook = lambda result: print('hook')\n"
    kc.execute_interactive(hook + "get_ipython().events.register('post_run_cell', _hook)")
    try:
        assert order(kc, "1") == ["result", "hook"]
    finally:
        kc.execute_interactive("get_ipython().events.unregister('post_run_cell', _hook)")
    assert order(kc, "1", user_expressions={"x": "print('ux') or 2"}) == ["result", "ux"]
    kc.execute_interactive("get_ipython().ast_node_interactivity = 'all'")
    try:
        cell = "1\nimport os\n_ = os.system('echo after')"  # (C-level output)
        assert order(kc, cell) == ["result", "after"]
    finally:
        kc.execute_interactive("get_ipython().ast_node_interactivity = 'last_expr'")


def test_the_order_holds_after_a_cell_closed_fd_1(kc: Any) -> None:
    """A cell that closes fd 1 misses its markers there; they are paid once the pipe is
    restored, so the next cells keep their order (before, the reader's count stayed
    behind for good and output came as it was read: here the hook's line before the
    result)."""
    kc.execute_interactive("import os; os.close(1)", timeout=30)
    hook = "_hook = lambda result: print('hook')\n"
    kc.execute_interactive(hook + "get_ipython().events.register('post_run_cell', _hook)")
    try:
        for _ in range(3):
            assert order(kc, "1") == ["result", "hook"]
    finally:
        kc.execute_interactive("get_ipython().events.unregister('post_run_cell', _hook)")
