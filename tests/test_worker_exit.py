"""The worker process ends quietly: nothing on stderr when it is told to stop."""

from __future__ import annotations

import os
import subprocess
import sys

from ipytwist.framing import RecordDecoder, encode_record
from ipytwist.worker import EVENT_FD, REQUEST_FD


def test_worker_exits_without_output(tmp_path: object) -> None:
    """A worker that ran a cell and is told to shut down writes nothing to stdout or
    stderr on its way out (IPython's exit handlers used to run twice, and the second run
    printed 'Exception ignored in atexit callback')."""
    req_r, req_w = os.pipe()
    ev_r, ev_w = os.pipe()

    def child_fds() -> None:
        os.dup2(req_r, REQUEST_FD)
        os.dup2(ev_w, EVENT_FD)

    env = dict(os.environ, IPYTHONDIR=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ipytwist.worker"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=child_fds,
        pass_fds=(req_r, ev_w, REQUEST_FD, EVENT_FD),
        env=env,
    )
    os.close(req_r)
    os.close(ev_w)
    decoder = RecordDecoder()
    events: list[dict] = []
    try:
        with os.fdopen(ev_r, "rb", buffering=0) as ev:

            def until(kind: str) -> None:
                while not any(e.get("ev") == kind for e in events):
                    data = ev.read(65536)
                    assert data, f"the worker ended before {kind!r}: {events}"
                    events.extend(decoder.feed(data))

            until("ready")
            os.write(req_w, encode_record({"req": "execute", "content": {"code": "x = 1"}}))
            until("reply")
            os.write(req_w, encode_record({"req": "shutdown"}))
            os.close(req_w)
            req_w = -1
            out, err = proc.communicate(timeout=30)
    finally:
        if req_w >= 0:
            os.close(req_w)
        proc.kill()
        proc.wait()
    assert proc.returncode == 0
    assert err.decode(errors="replace").strip() == ""
