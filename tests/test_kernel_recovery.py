"""The real ipytwist kernel through jupyter_client, when things break: the heartbeat while
code runs, interpreters that crash, shutdown with and without restart, and output that
user code broke."""

from __future__ import annotations

import os
import signal
import time

import pytest
import zmq
from benchlib.procs import pid_alive, wait_for
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from support.jupyter_kernel import (
    TIMEOUT,
    execute,
    interrupt_request,
    iopub_until_idle,
    reply_to,
    running_kernel,
    send_control,
    started,
    stdout_of,
    wait_iopub,
    worker_pid,
)

# -- heartbeat -------------------------------------------------------------------


def test_heartbeat_answers_while_code_runs(kc: BlockingKernelClient, km: KernelManager) -> None:
    """The heartbeat echoes while user code sleeps in the interpreter."""
    msg_id = kc.execute("import time; print('started', flush=True); time.sleep(3)")
    started(kc, msg_id)
    info = km.get_connection_info()
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    try:
        sock.connect(f"tcp://{info['ip']}:{info['hb_port']}")
        for i in range(3):
            sock.send(b"ping %d" % i)
            assert sock.poll(1000), "no heartbeat within 1 s"
            assert sock.recv() == b"ping %d" % i
    finally:
        sock.close()
    interrupt_request(kc, km)
    assert reply_to(kc.get_shell_msg, msg_id)["content"]["ename"] == "KeyboardInterrupt"


# -- crash and recover -----------------------------------------------------------


CRASHES = {
    "os._exit": ("import os; os._exit(1)", "exited with status 1"),
    "segfault": ("import ctypes; ctypes.string_at(0)", "SIGSEGV"),
    "sigkill": (
        "import time; print('started', flush=True); time.sleep(100)",
        "SIGKILL",
    ),
}


@pytest.mark.parametrize("crash", sorted(CRASHES))
def test_worker_crash_is_reported_and_recovered(kc: BlockingKernelClient, crash: str) -> None:
    """A dying interpreter fails the running cell with the cause, clients see restarting,
    and the same client then runs code in a fresh interpreter."""
    code, cause = CRASHES[crash]
    old_pid = worker_pid(kc)
    execute(kc, "survivor = 42")
    msg_id = kc.execute(code)
    if crash == "sigkill":
        started(kc, msg_id)
        os.kill(old_pid, signal.SIGKILL)
    reply = reply_to(kc.get_shell_msg, msg_id)
    assert reply["content"]["status"] == "error"
    assert cause in reply["content"]["evalue"]
    assert isinstance(reply["content"]["execution_count"], int)
    msgs = [m for _, m in iopub_until_idle(kc, msg_id)]
    states = [m["content"]["execution_state"] for m in msgs if m["msg_type"] == "status"]
    assert "restarting" in states
    errors = [m for m in msgs if m["msg_type"] == "error"]
    assert errors and cause in errors[0]["content"]["evalue"]
    reply, msgs = execute(kc, "print('survivor' in globals())")
    assert reply["content"]["status"] == "ok"
    assert stdout_of(msgs) == "False\n"
    assert worker_pid(kc) != old_pid


def test_background_children_neither_delay_a_crash_nor_outlive_it(
    kc: BlockingKernelClient,
) -> None:
    """A child process and a forked copy left running by user code hold the worker's
    output pipes; the worker's death is still reported at once, and both are ended with
    it (they are in its process group)."""
    code = (
        "import os, subprocess\n"
        "child = subprocess.Popen(['sleep', '30'])\n"
        "fork = os.fork()\n"
        "if fork == 0:\n"
        "    import time; time.sleep(30); os._exit(0)\n"
        "print(child.pid, fork)"
    )
    _, msgs = execute(kc, code)
    children = [int(p) for p in stdout_of(msgs).split()]
    assert all(pid_alive(p) for p in children)
    started_at = time.monotonic()
    msg_id = kc.execute("import os; os._exit(1)")
    reply = reply_to(kc.get_shell_msg, msg_id)
    assert time.monotonic() - started_at < 3
    assert "exited with status 1" in reply["content"]["evalue"]
    iopub_until_idle(kc, msg_id)
    wait_for(lambda: not any(pid_alive(p) for p in children), 5, "the children to end")
    reply, _ = execute(kc, "1")
    assert reply["content"]["status"] == "ok"


# -- shutdown --------------------------------------------------------------------


def test_shutdown_with_restart_keeps_kernel_with_fresh_state(
    kc: BlockingKernelClient, km: KernelManager
) -> None:
    """shutdown_request(restart=True): same kernel process, new interpreter, state gone."""
    execute(kc, "before_restart = 1")
    old_pid = worker_pid(kc)
    msg_id = send_control(kc, "shutdown_request", {"restart": True})
    reply = reply_to(kc.get_control_msg, msg_id)
    assert reply["content"] == {"status": "ok", "restart": True}
    wait_iopub(
        kc,
        lambda m: m["msg_type"] == "status" and m["content"]["execution_state"] == "restarting",
    )
    assert km.is_alive()
    reply, msgs = execute(kc, "print('before_restart' in globals())")
    assert reply["content"]["status"] == "ok"
    assert stdout_of(msgs) == "False\n"
    assert worker_pid(kc) != old_pid


def test_shutdown_without_restart_ends_the_kernel() -> None:
    """shutdown_request: reply, then the kernel process and its interpreter exit cleanly."""
    with running_kernel("ipytwist") as (km, kc):
        worker = worker_pid(kc)
        msg_id = send_control(kc, "shutdown_request", {"restart": False})
        reply = reply_to(kc.get_control_msg, msg_id)
        assert reply["content"] == {"status": "ok", "restart": False}
        process = km.provisioner.process
        assert process.wait(timeout=TIMEOUT) == 0
        with pytest.raises(ProcessLookupError):
            os.kill(worker, 0)


@pytest.mark.parametrize(
    "breakage",
    [
        "import os; os.close(1)",
        "import sys; sys.stdout = None",
        "import sys; sys.stdout.close()",
        "import os; os.close(2); import sys; sys.stderr = None",
    ],
)
def test_printing_works_again_in_the_next_cell(kc: BlockingKernelClient, breakage: str) -> None:
    """Whatever a cell does to stdout/stderr, the next cell prints normally (C-level
    output included)."""
    execute(kc, breakage)
    reply, msgs = execute(
        kc, "import os, sys; print('py'); os.system('echo c'); print('err', file=sys.stderr)"
    )
    assert reply["content"]["status"] == "ok"
    assert stdout_of(msgs) == "py\nc\n"
    errs = [m["content"]["text"] for m in msgs if m["msg_type"] == "stream"]
    assert "err\n" in "".join(errs)
