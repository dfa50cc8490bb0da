"""The worker process ends quietly: nothing on stderr when it is told to stop."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from ipytwist.framing import RecordDecoder, encode_record
from ipytwist.worker import EVENT_FD, REQUEST_FD


def run_then_shut_down(tmp_path: object, code: str) -> tuple[int, bytes, bytes]:
    """A worker runs ``code`` in one cell and is told to shut down; its exit status,
    stdout and stderr."""
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
            os.write(req_w, encode_record({"req": "execute", "content": {"code": code}}))
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
    return proc.returncode, out, err


def test_worker_exits_without_output(tmp_path: object) -> None:
    """A worker that ran a cell and is told to shut down writes nothing to stdout or
    stderr on its way out (IPython's exit handlers used to run twice, and the second run
    printed 'Exception ignored in atexit callback')."""
    returncode, _, err = run_then_shut_down(tmp_path, "x = 1")
    assert returncode == 0
    assert err.decode(errors="replace").strip() == ""


def test_exit_still_flushes_the_users_files_and_runs_their_exit_handlers(tmp_path: Any) -> None:
    """The worker skips the garbage collector's passes at exit (after a day of
    completions they took most of a second, and every DELETE and restart waited for
    them), but still ends like Python: a file the user left open and unflushed is
    written out, and the user's ``atexit`` handlers and ``weakref.finalize`` calls run."""
    code = (
        "import atexit, weakref\n"
        f"f = open({str(tmp_path / 'open.txt')!r}, 'w')\n"
        "f.write('left open')\n"
        "def bye(path):\n"
        "    with open(path, 'w') as g:\n"
        "        g.write('bye')\n"
        f"atexit.register(bye, {str(tmp_path / 'atexit.txt')!r})\n"
        "class Thing: pass\n"
        "thing = Thing()\n"
        f"weakref.finalize(thing, bye, {str(tmp_path / 'finalize.txt')!r})\n"
        "cycles = []\n"
        "for _ in range(100000):\n"
        "    a = []; a.append(a); cycles.append(a)\n"
    )
    returncode, _, err = run_then_shut_down(tmp_path, code)
    assert returncode == 0, err
    assert (tmp_path / "open.txt").read_text() == "left open"
    assert (tmp_path / "atexit.txt").read_text() == "bye"
    assert (tmp_path / "finalize.txt").read_text() == "bye"
