"""A real kernel started from its kernelspec through jupyter_client, and driving it with
jupyter_client's blocking client."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

TIMEOUT = 20


@contextlib.contextmanager
def running_kernel(
    name: str = "ipytwist", **start: Any
) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    """Start a kernel from its kernelspec (``start`` goes to ``start_kernel``: ``env=``,
    ``stderr=``); always shut it down afterwards."""
    km = KernelManager(kernel_name=name)
    km.start_kernel(**start)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=30)
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def forget_arrived(kc: BlockingKernelClient) -> None:
    """Forget messages left over from earlier tests (only ever already-arrived ones)."""
    for get in (kc.get_iopub_msg, kc.get_shell_msg, kc.get_stdin_msg, kc.get_control_msg):
        while True:
            try:
                get(timeout=0)
            except Exception:
                break


def iopub_until_idle(
    kc: BlockingKernelClient, msg_id: str, timeout: float = TIMEOUT
) -> list[tuple[float, dict]]:
    """(arrival time, message) of iopub messages parented to ``msg_id``, up to its idle."""
    deadline = time.monotonic() + timeout
    out: list[tuple[float, dict]] = []
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.0, deadline - time.monotonic()))
        now = time.monotonic()
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        out.append((now, msg))
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return out


def reply_to(get: Callable[..., dict], msg_id: str, timeout: float = TIMEOUT) -> dict:
    """The reply to ``msg_id`` from a channel's ``get_*_msg``, skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        msg = get(timeout=max(0.0, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


def wait_iopub(
    kc: BlockingKernelClient, match: Callable[[dict], bool], timeout: float = TIMEOUT
) -> dict:
    """The first iopub message that ``match``es (others are dropped)."""
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.0, deadline - time.monotonic()))
        if match(msg):
            return msg


def execute(kc: BlockingKernelClient, code: str, **kw: Any) -> tuple[dict, list[dict]]:
    """Run ``code``; return its execute_reply and its iopub messages."""
    msg_id = kc.execute(code, **kw)
    msgs = [m for _, m in iopub_until_idle(kc, msg_id)]
    return reply_to(kc.get_shell_msg, msg_id), msgs


def stdout_of(msgs: list[dict]) -> str:
    return "".join(
        m["content"]["text"]
        for m in msgs
        if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
    )


def send_control(kc: BlockingKernelClient, msg_type: str, content: dict | None = None) -> str:
    msg = kc.session.msg(msg_type, content or {})
    kc.control_channel.send(msg)
    return msg["header"]["msg_id"]


def started(kc: BlockingKernelClient, msg_id: str) -> None:
    """Wait until the cell ``msg_id`` printed ``started`` (its user code is running)."""
    wait_iopub(
        kc,
        lambda m: (
            m["parent_header"].get("msg_id") == msg_id
            and m["msg_type"] == "stream"
            and "started" in m["content"]["text"]
        ),
    )


def interrupt_request(kc: BlockingKernelClient, km: KernelManager) -> None:
    """An interrupt_request on the control channel, answered ok."""
    msg_id = send_control(kc, "interrupt_request")
    assert reply_to(kc.get_control_msg, msg_id)["content"]["status"] == "ok"


def worker_pid(kc: BlockingKernelClient) -> int:
    """The pid of the kernel's interpreter (its worker)."""
    _, msgs = execute(kc, "import os; print(os.getpid())")
    return int(stdout_of(msgs))
