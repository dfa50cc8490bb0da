"""The worker process ends quietly: nothing on stderr when it is told to stop."""

from __future__ import annotations

from typing import Any

from support.worker_proc import run_cells


def test_worker_exits_without_output(tmp_path: object) -> None:
    """A worker that ran a cell and is told to shut down writes nothing to stdout or
    stderr on its way out (IPython's exit handlers used to run twice, and the second run
    printed 'Exception ignored in atexit callback')."""
    run = run_cells(tmp_path, ["x = 1"])
    assert run.returncode == 0
    assert run.err.decode(errors="replace").strip() == ""


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
    run = run_cells(tmp_path, [code])
    assert run.returncode == 0, run.err
    assert (tmp_path / "open.txt").read_text() == "left open"
    assert (tmp_path / "atexit.txt").read_text() == "bye"
    assert (tmp_path / "finalize.txt").read_text() == "bye"
