"""The worker's sync markers while user code has closed fd 1 or put another file there:
owed, never written into the user's file, and paid once the pipe is back, so the
reader's count of markers keeps up with the events (worker/link.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from ipytwist.worker.link import Interrupts, WorkerLink

MARKER = b"\0sync\0"


@pytest.fixture(name="out")
def out_fixture() -> Iterator[tuple[WorkerLink, int, int]]:
    """(a link whose output fd is a pipe's write end, that fd, the pipe's read end)."""
    out_r, out_w = os.pipe()
    ev_r, ev_w = os.pipe()
    os.set_blocking(out_r, False)
    os.set_blocking(ev_r, False)
    link = WorkerLink(-1, ev_w, Interrupts(), sync_marker=MARKER, sync_fds=(out_w,))
    yield link, out_w, out_r
    for fd in (out_r, ev_r, ev_w):
        os.close(fd)
    try:
        os.close(out_w)
    except OSError:
        pass


def read(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return b""


def test_markers_missed_while_the_fd_is_closed_are_paid_when_it_is_back(out: Any) -> None:
    link, out_w, out_r = out
    saved = os.dup(out_w)
    os.close(out_w)  # user code: os.close(1)
    link.emit({"ev": "display_data"})
    link.emit({"ev": "display_data"})
    os.dup2(saved, out_w)  # the worker restores the pipe before the next request
    os.close(saved)
    assert read(out_r) == b""
    link.catch_up()
    assert read(out_r) == MARKER * 2
    link.emit({"ev": "display_data"})
    assert read(out_r) == MARKER  # one per event, the count kept


def test_no_marker_goes_into_a_file_user_code_put_on_the_fd(out: Any) -> None:
    link, out_w, out_r = out
    saved = os.dup(out_w)
    user_r, user_w = os.pipe()
    os.set_blocking(user_r, False)
    os.dup2(user_w, out_w)  # user code: os.dup2(f.fileno(), 1)
    link.emit({"ev": "display_data"})
    assert read(user_r) == b""
    link.catch_up()  # still the user's file: still owed
    assert read(user_r) == b""
    os.dup2(saved, out_w)
    link.catch_up()
    assert read(out_r) == MARKER
    for fd in (saved, user_r, user_w):
        os.close(fd)
