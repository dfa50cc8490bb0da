"""The state directory: a second service on it, the lock of a killed service, and a
directory that is read-only or full, at the start or later.

Read-only and full directories are real: a small tmpfs mounted on the state
directory (``mount``, so these scenarios need root, as CI runs), read-only or
filled up with a file of zeros.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..procs import pid_alive, settle, wait_for
from ..running import TempFactory
from ..servers import Service
from .storms import workers

#: How long a refused service may take to exit (it imports Twisted and IPython's kin).
REFUSE_TIMEOUT = 60.0
#: The tmpfs of the full-disk scenario: room for the lock, server.json and a kernel.
TMPFS_KIB = 256
#: The line a refused service logs.
REFUSED = "ipytwist cannot start:"


class StateService(Service):
    """A service on a state directory given, rather than one of its own; it serves once
    ``server.json`` there names its own pid (a killed one may have left its own)."""

    def __init__(self, base_dir: str, state_dir: str, *extra: str, **kw: Any) -> None:
        super().__init__(base_dir, *extra, **kw)
        self._state_dir = state_dir

    @property
    def state_dir(self) -> str:
        return self._state_dir

    def listening(self) -> bool:
        return super().listening() and self.proc is not None and self.info["pid"] == self.pid


@dataclass
class Refused:
    """A service started where it must not start."""

    exit_code: int | None
    seconds: float
    lines: list[str]  # the lines it logged with REFUSED in them
    traceback: bool

    @property
    def one_clear_line(self) -> bool:
        return len(self.lines) == 1 and not self.traceback


def run_refused(svc: Service) -> Refused:
    """Run ``svc`` to its end (it must not start) and read what it said."""
    os.makedirs(svc.base_dir, exist_ok=True)
    t0 = time.monotonic()
    try:
        done = subprocess.run(
            svc.argv(),
            env=svc.environment(),
            cwd=svc.base_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=REFUSE_TIMEOUT,
        )
        code: int | None = done.returncode
        out = (done.stdout + done.stderr).decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        code, out = None, ((e.stdout or b"") + (e.stderr or b"")).decode(errors="replace")
    lines = [line for line in out.splitlines() if REFUSED in line]
    return Refused(code, time.monotonic() - t0, lines, "Traceback" in out)


@contextmanager
def tmpfs(path: str, kib: int, read_only: bool = False) -> Iterator[str]:
    """A tmpfs of ``kib`` KiB mounted on ``path`` (0700) for the ``with`` block."""
    os.makedirs(path, exist_ok=True)
    options = f"size={kib}k,mode=0700" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "ipytwist-test", path], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)


def fill(directory: str) -> str:
    """Fill the file system of ``directory`` with a file of zeros; return its path."""
    path = os.path.join(directory, "filler")
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return path


@dataclass
class SecondService:
    refused: Refused
    server_json_kept: bool  # the first one's server.json is as it wrote it
    first_serves: bool  # the first one still answers, and starts a kernel


def second_service(tmp: TempFactory, first: Service) -> SecondService:
    """Start a second service on the state directory of ``first``, which serves."""
    with open(os.path.join(first.state_dir, "server.json")) as f:
        before = f.read()
    second = StateService(str(tmp.mktemp("second")), first.state_dir)
    refused = run_refused(second)
    try:
        with open(os.path.join(first.state_dir, "server.json")) as f:
            kept = f.read() == before
    except FileNotFoundError:
        kept = False
    kid = first.start_kernel()
    serves = first.api("GET", f"/api/kernels/{kid}").status_code == 200
    first.delete_kernel(kid)
    return SecondService(refused, kept, serves)


@dataclass
class KilledLock:
    killed_workers_alive: int  # interpreters of the killed service still alive at the restart
    serves_after_s: float  # the new service started -> it serves
    new_pid_in_server_json: bool


def killed_service_lock(tmp: TempFactory, name: str = "killed") -> KilledLock:
    """A service with a kernel, SIGKILLed; a new one on its state directory at once."""
    first = Service(str(tmp.mktemp(name)))
    first.start()
    try:
        first.start_kernel()
        wait_for(lambda: workers(first), 30, "the kernel's interpreter")
        left = list(workers(first))
        assert first.proc is not None
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        alive = sum(1 for pid, _ in left if pid_alive(pid))
        second = StateService(str(tmp.mktemp(name + "-again")), first.state_dir)
        t0 = time.monotonic()
        second.start()
        try:
            serves_s = time.monotonic() - t0
            with open(os.path.join(second.state_dir, "server.json")) as f:
                ours = json.load(f)["pid"] == second.pid
            return KilledLock(alive, serves_s, ours)
        finally:
            second.stop()
    finally:
        first.stop()


@dataclass
class FullLater:
    posts: list[tuple[int, str]]  # (status, reason/message) of each POST while full
    kernels_listed: int  # GET /api/kernels while full (the one started before)
    workers_after: int  # interpreters alive once the refused POSTs settled
    files_after: list[str]  # the state directory while full (the filler aside), and
    # what is in its kernels/ (the worker link's directories), as "kernels/<name>"
    after_freeing: int  # a POST once the filler is gone


def listing(state_dir: str) -> list[str]:
    """What a state directory holds, and what its kernels/ holds as "kernels/<name>"."""
    files = sorted(os.listdir(state_dir))
    if "kernels" in files:
        files += [f"kernels/{f}" for f in sorted(os.listdir(os.path.join(state_dir, "kernels")))]
    return files


def full_later(svc: Service, posts: int = 5) -> FullLater:
    """``svc`` runs on a small tmpfs with one kernel; the tmpfs fills up; ``posts`` POSTs
    /api/kernels; then the filler goes and one more POST."""
    kid = svc.start_kernel()
    wait_for(lambda: len(workers(svc)) >= 1, 30, "the kernel's interpreter")
    filler = fill(svc.state_dir)
    answers = []
    for _ in range(posts):
        r = svc.api("POST", "/api/kernels", json={"name": "ipytwist"})
        answers.append((r.status_code, r.text[:300]))
    listed = len(svc.request("GET", "/api/kernels"))
    settle(lambda: len(workers(svc)) == 1, 10)
    alive = len(workers(svc))
    files = [f for f in listing(svc.state_dir) if f != "filler"]
    os.unlink(filler)
    r = svc.api("POST", "/api/kernels", json={"name": "ipytwist"})
    if r.status_code == 201:
        svc.delete_kernel(r.json()["id"])
    svc.delete_kernel(kid)
    return FullLater(answers, listed, alive, files, r.status_code)


def unwritable_at_start(tmp: TempFactory, state: str) -> Refused:
    """A service started on a ``read-only`` or ``full`` tmpfs."""
    svc = Service(str(tmp.mktemp(state)))
    with tmpfs(svc.state_dir, 64, read_only=state == "read-only"):
        if state == "full":
            fill(svc.state_dir)
        return run_refused(svc)


def full_later_service(tmp: TempFactory) -> tuple[FullLater, str, list[str]]:
    """:func:`full_later` on a service of its own on a tmpfs of :data:`TMPFS_KIB`; also
    the service's log and what its state directory holds once it stopped."""
    svc = Service(str(tmp.mktemp("full-later")))
    with tmpfs(svc.state_dir, TMPFS_KIB):
        svc.start()
        try:
            r = full_later(svc)
        finally:
            svc.stop()
        left = listing(svc.state_dir)
    return r, svc.log(), left
