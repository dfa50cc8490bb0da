"""A real worker process driven over its two pipes, without a kernel around it: for
tests of what the worker itself does (how it ends, how it counts cells)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ipytwist.framing import RecordDecoder, encode_record
from ipytwist.worker import EVENT_FD, REQUEST_FD


@dataclass
class WorkerRun:
    returncode: int
    replies: list[dict[str, Any]]  # the reply content of each cell, in order
    out: bytes
    err: bytes
    events: list[dict[str, Any]]  # every event, in order


def execute(code: str) -> dict[str, Any]:
    """The worker record of an execute request for ``code``."""
    return {"req": "execute", "content": {"code": code}}


def run_cells(
    ipython_dir: object, cells: list[str], extra: list[dict[str, Any]] | None = None
) -> WorkerRun:
    """A worker (IPYTHONDIR ``ipython_dir``) runs ``cells`` one after another and is
    then told to shut down; what it replied, its exit status, stdout and stderr.
    ``extra``: more of each cell's request record (a client's terminal size)."""
    records = [{**execute(code), **(extra[n] if extra else {})} for n, code in enumerate(cells)]
    return run_records(ipython_dir, records)


Record = dict[str, Any] | Callable[[list[dict[str, Any]]], dict[str, Any]]


def run_records(ipython_dir: object, records: Sequence[Record]) -> WorkerRun:
    """A worker runs the request ``records`` one after another, each once the last
    was answered, and is then told to shut down.  A record may be a function of the
    events so far (to name a comm the worker opened)."""
    req_r, req_w = os.pipe()
    ev_r, ev_w = os.pipe()

    def child_fds() -> None:
        os.dup2(req_r, REQUEST_FD)
        os.dup2(ev_w, EVENT_FD)

    proc = subprocess.Popen(
        [sys.executable, "-m", "ipytwist.worker"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=child_fds,
        pass_fds=(req_r, ev_w, REQUEST_FD, EVENT_FD),
        env=dict(os.environ, IPYTHONDIR=str(ipython_dir)),
    )
    os.close(req_r)
    os.close(ev_w)
    decoder = RecordDecoder()
    events: list[dict[str, Any]] = []
    try:
        with os.fdopen(ev_r, "rb", buffering=0) as ev:

            def until(kind: str, count: int) -> None:
                while sum(e.get("ev") == kind for e in events) < count:
                    data = ev.read(65536)
                    assert data, f"the worker ended before {kind!r} #{count}: {events}"
                    events.extend(decoder.feed(data))

            until("ready", 1)
            for n, record in enumerate(records, 1):
                os.write(req_w, encode_record(record(events) if callable(record) else record))
                until("reply", n)
            os.write(req_w, encode_record({"req": "shutdown"}))
            os.close(req_w)
            req_w = -1
            out, err = proc.communicate(timeout=30)
    finally:
        if req_w >= 0:
            os.close(req_w)
        proc.kill()
        proc.wait()
    replies = [e["content"] for e in events if e.get("ev") == "reply"]
    return WorkerRun(proc.returncode, replies, out, err, events)
