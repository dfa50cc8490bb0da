"""The real ipytwist kernel, started from its kernelspec through jupyter_client: output
timing, busy and idle, stop_on_error, interrupts and stdin.  (Heartbeat, crashes and
shutdown: test_kernel_recovery.py.)"""

from __future__ import annotations

import time
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from support.jupyter_kernel import (
    TIMEOUT,
    execute,
    interrupt_request,
    iopub_until_idle,
    reply_to,
    send_control,
    started,
    stdout_of,
    wait_iopub,
    worker_pid,
)

# -- output timing ---------------------------------------------------------------


def test_stream_output_arrives_as_it_is_produced(kc: BlockingKernelClient) -> None:
    """A flushed print reaches the client at once, not when the cell finishes."""
    msg_id = kc.execute("print('a', flush=True); import time; time.sleep(1); print('b')")
    msgs = iopub_until_idle(kc, msg_id)
    streams = [(t, m["content"]["text"]) for t, m in msgs if m["msg_type"] == "stream"]
    assert "".join(text for _, text in streams) == "a\nb\n"
    t_a = next(t for t, text in streams if "a" in text)
    t_b = next(t for t, text in streams if "b" in text)
    t_idle = msgs[-1][0]
    assert t_b - t_a >= 0.7
    assert t_idle - t_a >= 0.7
    assert reply_to(kc.get_shell_msg, msg_id)["content"]["status"] == "ok"


# -- busy / idle -----------------------------------------------------------------


def _assert_busy_idle(kc: BlockingKernelClient, msg_id: str) -> list[dict]:
    msgs = [m for _, m in iopub_until_idle(kc, msg_id)]
    states = [m["content"]["execution_state"] for m in msgs if m["msg_type"] == "status"]
    assert states == ["busy", "idle"], msgs
    assert msgs[0]["msg_type"] == "status"
    return msgs


@pytest.mark.parametrize(
    "send",
    [
        lambda kc: kc.execute("1 + 1"),
        lambda kc: kc.execute("1/0"),
        lambda kc: kc.complete("pri"),
        lambda kc: kc.inspect("print"),
        lambda kc: kc.is_complete("x = ("),
        lambda kc: kc.history(hist_access_type="tail", n=3),
        lambda kc: kc.kernel_info(),
        lambda kc: kc.comm_info(),
    ],
    ids=[
        "execute",
        "execute-error",
        "complete",
        "inspect",
        "is_complete",
        "history",
        "kernel_info",
        "comm_info",
    ],
)
def test_every_shell_request_is_surrounded_by_busy_and_idle(
    kc: BlockingKernelClient, send: Any
) -> None:
    """busy then idle, both parented to the request; the reply comes in between."""
    msg_id = send(kc)
    _assert_busy_idle(kc, msg_id)
    reply = reply_to(kc.get_shell_msg, msg_id)
    if reply["msg_type"] == "execute_reply":
        assert isinstance(reply["content"]["execution_count"], int)


def test_control_requests_are_surrounded_by_busy_and_idle(kc: BlockingKernelClient) -> None:
    """kernel_info on control gets busy/idle and a reply on control."""
    msg_id = send_control(kc, "kernel_info_request")
    _assert_busy_idle(kc, msg_id)
    reply = reply_to(kc.get_control_msg, msg_id)
    assert reply["msg_type"] == "kernel_info_reply"
    assert reply["content"]["implementation"] == "ipytwist"


# -- stop_on_error ---------------------------------------------------------------


def test_error_aborts_queued_executes(kc: BlockingKernelClient) -> None:
    """After a failing cell, executes already queued are answered 'aborted', with a count."""
    # The first cell waits in input() until the other two are surely queued behind it
    # (a kernel_info sent after them on the same socket has been answered).
    ids = [
        kc.execute("input(); 1/0", allow_stdin=True),
        kc.execute("ran2 = 1"),
        kc.execute("ran3 = 1"),
    ]
    kc.get_stdin_msg(timeout=TIMEOUT)
    reply_to(kc.get_shell_msg, kc.kernel_info())
    kc.input("")
    replies = [reply_to(kc.get_shell_msg, i)["content"] for i in ids]
    assert replies[0]["status"] == "error"
    assert replies[0]["ename"] == "ZeroDivisionError"
    assert [r["status"] for r in replies[1:]] == ["aborted", "aborted"]
    assert all(isinstance(r["execution_count"], int) for r in replies)
    for i in ids:
        _assert_busy_idle(kc, i)
    reply, _ = execute(kc, "print('ran2' in globals(), 'ran3' in globals())")
    assert reply["content"]["status"] == "ok"


def test_without_stop_on_error_queued_executes_run(kc: BlockingKernelClient) -> None:
    """stop_on_error=False: a failing cell does not abort the ones queued after it."""
    ids = [
        kc.execute("1/0", stop_on_error=False),
        kc.execute("soe2 = 2"),
        kc.execute("soe3 = 3"),
    ]
    replies = [reply_to(kc.get_shell_msg, i)["content"] for i in ids]
    assert [r["status"] for r in replies] == ["error", "ok", "ok"]
    _, msgs = execute(kc, "print(soe2 + soe3)")
    assert stdout_of(msgs) == "5\n"


# -- interrupts ------------------------------------------------------------------

BLOCKERS = {
    "busy-loop": "print('started', flush=True)\nwhile True: pass",
    "sleep": "import time; print('started', flush=True); time.sleep(100)",
}


def _sigint(kc: BlockingKernelClient, km: KernelManager) -> None:
    assert km.kernel_spec.interrupt_mode == "signal"
    km.interrupt_kernel()


INTERRUPTERS = {"interrupt_request": interrupt_request, "sigint": _sigint}


def _assert_interrupted(kc: BlockingKernelClient, msg_id: str, t0: float) -> None:
    reply = reply_to(kc.get_shell_msg, msg_id, timeout=TIMEOUT)
    elapsed = time.monotonic() - t0
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert elapsed < 1.0
    errors = [m for _, m in iopub_until_idle(kc, msg_id) if m["msg_type"] == "error"]
    # The traceback ends in user code, not in the worker's signal handler.
    assert errors and "ipytwist" not in "".join(errors[0]["content"]["traceback"])
    reply, msgs = execute(kc, "print('still here')")
    assert reply["content"]["status"] == "ok"
    assert stdout_of(msgs) == "still here\n"


@pytest.mark.parametrize("how", sorted(INTERRUPTERS))
@pytest.mark.parametrize("blocker", sorted(BLOCKERS))
def test_interrupt_stops_running_code(
    kc: BlockingKernelClient, km: KernelManager, blocker: str, how: str
) -> None:
    """Busy loops and sleeps stop within a second with KeyboardInterrupt; the kernel lives."""
    msg_id = kc.execute(BLOCKERS[blocker])
    started(kc, msg_id)
    t0 = time.monotonic()
    INTERRUPTERS[how](kc, km)
    _assert_interrupted(kc, msg_id, t0)


@pytest.mark.parametrize("attempt", range(3))
def test_interrupt_right_after_execute_input_is_not_lost(
    kc: BlockingKernelClient, km: KernelManager, attempt: int
) -> None:
    """An interrupt sent the moment the cell is announced (before its code may have
    started) still stops it."""
    msg_id = kc.execute("while True: pass")
    wait_iopub(
        kc,
        lambda m: m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "execute_input",
    )
    t0 = time.monotonic()
    interrupt_request(kc, km)
    _assert_interrupted(kc, msg_id, t0)


@pytest.mark.parametrize("how", sorted(INTERRUPTERS))
def test_interrupt_stops_pending_input(
    kc: BlockingKernelClient, km: KernelManager, how: str
) -> None:
    """A cell waiting in input() is interrupted like any other."""
    msg_id = kc.execute("input('wait? ')", allow_stdin=True)
    request = kc.get_stdin_msg(timeout=TIMEOUT)
    assert request["content"]["prompt"] == "wait? "
    t0 = time.monotonic()
    INTERRUPTERS[how](kc, km)
    _assert_interrupted(kc, msg_id, t0)


# -- stdin -----------------------------------------------------------------------


def test_input_round_trip(kc: BlockingKernelClient) -> None:
    """input() asks the client on stdin, parented to the execute; the answer reaches code."""
    msg_id = kc.execute("name = input('name? ')\nprint('hello', name)", allow_stdin=True)
    request = kc.get_stdin_msg(timeout=TIMEOUT)
    assert request["msg_type"] == "input_request"
    assert request["parent_header"]["msg_id"] == msg_id
    assert request["content"] == {"prompt": "name? ", "password": False}
    kc.input("x")
    msgs = [m for _, m in iopub_until_idle(kc, msg_id)]
    assert stdout_of(msgs) == "hello x\n"
    assert reply_to(kc.get_shell_msg, msg_id)["content"]["status"] == "ok"


def test_getpass_asks_for_a_password(kc: BlockingKernelClient) -> None:
    """getpass() sends an input_request with password=True."""
    msg_id = kc.execute("import getpass\nsecret = getpass.getpass('pw: ')", allow_stdin=True)
    request = kc.get_stdin_msg(timeout=TIMEOUT)
    assert request["content"] == {"prompt": "pw: ", "password": True}
    kc.input("s3cret")
    assert reply_to(kc.get_shell_msg, msg_id)["content"]["status"] == "ok"
    _, msgs = execute(kc, "print(secret)")
    assert stdout_of(msgs) == "s3cret\n"


def test_input_without_allow_stdin_fails(kc: BlockingKernelClient) -> None:
    """With allow_stdin=False, input() raises StdinNotImplementedError and nothing is asked."""
    reply, _ = execute(kc, "input('never? ')", allow_stdin=False)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "StdinNotImplementedError"
    with pytest.raises(Exception):  # noqa: B017 - queue.Empty
        kc.get_stdin_msg(timeout=0)


def test_display_of_lone_surrogates_does_not_break_the_worker(kc: BlockingKernelClient) -> None:
    """Text with lone surrogates is displayed (escaped in JSON), the interpreter survives."""
    old_pid = worker_pid(kc)
    reply, msgs = execute(kc, "display({'text/plain': 'a\\udcffb\\ud800'}, raw=True)")
    assert reply["content"]["status"] == "ok"
    (shown,) = [m for m in msgs if m["msg_type"] == "display_data"]
    assert shown["content"]["data"]["text/plain"].startswith("a")
    assert worker_pid(kc) == old_pid
