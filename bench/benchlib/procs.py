"""Processes seen through ``/proc`` (liveness, memory, CPU time, fds, descendants), and
polling until something holds."""

from __future__ import annotations

import glob
import json
import os
import signal
import time
from collections.abc import Callable, Iterable
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def wait_for(check: Callable[[], Any], timeout: float, what: str, step: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def settle(check: Callable[[], Any], timeout: float, step: float = 0.05) -> bool:
    """Poll ``check`` until it is truthy or ``timeout`` passes; return whether it held.
    (``wait_for`` raises instead; scenarios report, their callers assert.)"""
    try:
        wait_for(check, timeout, "settle", step)
    except AssertionError:
        return False
    return True


def _stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (the 3rd field on)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live (not zombie) process."""
    try:
        state = _stat_fields(pid)[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def start_time(pid: int) -> str | None:
    """Field 22 of ``/proc/<pid>/stat``, to tell a pid from a later reuse of it."""
    try:
        return _stat_fields(pid)[19]
    except (OSError, IndexError):
        return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` (None if it is gone)."""
    try:
        fields = _stat_fields(pid)
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return None


def status_kib(pid: int, field: str = "VmRSS") -> int | None:
    """A figure of ``/proc/<pid>/status`` in KiB (``VmRSS``, ``VmHWM``...); None if the
    process has none (a zombie)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def rss_mib(pid: int) -> float:
    """The resident memory of process ``pid``, in MiB (its VmRSS)."""
    kib = status_kib(pid)
    if kib is None:
        raise AssertionError(f"no VmRSS for pid {pid}")
    return kib / 1024


def rss_kib(pid: int) -> int:
    """The resident memory of process ``pid`` in KiB; 0 if it is gone."""
    try:
        return status_kib(pid) or 0
    except (OSError, ValueError):
        return 0


def fd_count(pid: int) -> int:
    """How many file descriptors ``pid`` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's list), zombies included."""
    out: list[int] = []
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(path) as f:
                out += [int(p) for p in f.read().split()]
        except (OSError, ValueError):
            pass
    return out


def fork_servers(pid: int) -> list[int]:
    """The fork servers among ``pid``'s children (zombies not: their command is gone)."""
    found = []
    for child in children(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                if b"ipytwist.worker.forkserver" in f.read():
                    found.append(child)
        except OSError:
            pass
    return found


def parent(pid: int) -> int | None:
    """The parent of ``pid``; None if it is gone."""
    try:
        return int(_stat_fields(pid)[1])
    except (OSError, IndexError, ValueError):
        return None


def kernel_processes(root: int, workers: Iterable[int]) -> tuple[int, ...]:
    """``workers`` (interpreters) and, for each one below ``root``, the processes between
    it and ``root`` (its keeper, over the worker link; not the fork server that forked
    the keeper, which is the service's), sorted: exactly what runs below a service whose
    kernels are these interpreters, its fork server aside."""
    found: set[int] = set()
    servers = set(fork_servers(root))
    for pid in workers:
        chain = [pid]
        up = parent(pid)
        while up is not None and up not in (root, 0, 1) and up not in servers and len(chain) < 8:
            chain.append(up)
            up = parent(up)
        found.update(chain if up == root or up in servers else chain[:1])
    return tuple(sorted(found))


def kernel_descendants(pid: int) -> list[int]:
    """Every process below the service ``pid`` but its fork server, sorted."""
    servers = set(fork_servers(pid))
    return [p for p in descendants(pid) if p not in servers]


def kernel_children(pid: int) -> list[int]:
    """The service's own children but its fork server, and the fork server's (the keepers
    it forked): one per kernel."""
    servers = fork_servers(pid)
    return [p for p in children(pid) if p not in servers] + [
        p for s in servers for p in children(s)
    ]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, sorted."""
    found: list[int] = []
    todo = children(pid)
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children(p)
    return sorted(found)


def kill_leftovers(pids: dict[int, str | None]) -> list[int]:
    """SIGKILL the processes of ``pids`` (pid: its :func:`start_time` when seen) that are
    still there, and not a later process with the same pid."""
    killed = []
    for pid, started in pids.items():
        if started is not None and start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return killed


def keeper_pids(state_dir: str) -> list[int]:
    """The keepers the kernels' records (``kernels/*/kernel.json``) in ``state_dir`` name."""
    pids = []
    top = os.path.join(state_dir, "kernels")
    for name in os.listdir(top) if os.path.isdir(top) else []:
        try:
            with open(os.path.join(top, name, "kernel.json")) as f:
                pid = json.load(f).get("keeper_pid")
        except (OSError, ValueError):
            continue
        if isinstance(pid, int):
            pids.append(pid)
    return pids


def end_keepers(state_dir: str) -> None:
    """SIGTERM every keeper still alive that a record in ``state_dir`` names (each ends
    its interpreter's group): what a run leaves behind."""
    for pid in keeper_pids(state_dir):
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
