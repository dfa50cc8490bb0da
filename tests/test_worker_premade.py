"""The shell a fork server makes before any fork (``shell.premake``) and how a kernel
takes it (``shell.kernel_shell``): reused when the kernel's IPython directory and home
are the server's, with a history of its own; made anew otherwise.  In a subprocess (the
shell is a process-wide singleton), with a real history database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """\
import json, os, sys, threading
from ipytwist.worker.forkserver import preload
preload()
from ipytwist.worker.shell import WorkerShell, kernel_shell
premade = WorkerShell.instance()
server = {
    "threads": threading.active_count(),
    "history": premade.history_manager.enabled,
    "session": premade.history_manager.session_number,
}
os.environ["IPYTHONDIR"] = sys.argv[1]
shell = kernel_shell(lambda event: None)
shell.own_history()
shell.history_ready()
print(json.dumps({
    "server": server,
    "reused": shell is premade,
    "dir": shell.ipython_dir,
    "session": shell.history_manager.session_number,
    "in_is_history": shell.user_ns["In"] is shell.history_manager.input_hist_parsed,
}))
"""


def _kernel(tmp_path: Path, server_dir: Path, kernel_dir: Path) -> dict[str, object]:
    env = dict(os.environ, IPYTHONDIR=str(server_dir))
    got = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(kernel_dir)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert got.returncode == 0, got.stderr
    found: dict[str, object] = json.loads(got.stdout.strip().splitlines()[-1])
    return found


def test_the_servers_shell_is_reused_with_a_history_of_the_kernels(tmp_path: Path) -> None:
    ipython = tmp_path / "ipython"
    got = _kernel(tmp_path, ipython, ipython)
    # The server: no history database, no thread; the kernel: the same shell, its own.
    assert got["server"] == {"threads": 1, "history": False, "session": 0}
    assert got["reused"] is True and got["session"] == 1 and got["in_is_history"] is True
    assert (ipython / "profile_default" / "history.sqlite").exists()


def test_a_shell_made_for_another_ipython_directory_is_made_anew(tmp_path: Path) -> None:
    server, kernel = tmp_path / "server", tmp_path / "kernel"
    got = _kernel(tmp_path, server, kernel)
    assert got["reused"] is False and got["dir"] == str(kernel)
    assert got["session"] == 1 and got["in_is_history"] is True
    assert (kernel / "profile_default" / "history.sqlite").exists()
    assert not (server / "profile_default" / "history.sqlite").exists()
