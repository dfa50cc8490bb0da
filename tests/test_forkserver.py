"""Kernels forked by the fork server (the service's default; docs/fork-server.md): two
kernels from one server share no random state, history session, environment or working
directory; a dead fork server is replaced and a kernel start never fails; the record
names the keeper; ``--no-fork-server`` starts each in a new Python.  Real
service, REST and WebSocket."""

from __future__ import annotations

import json
import os
import resource
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from benchlib.procs import children as _children
from benchlib.procs import fork_servers, wait_for
from benchlib.wsclient import WSClient
from support import durable
from support.durable import DurableService, durable_base

#: What a kernel says of itself, as one JSON line.
PROBE = """\
import json, os, random, resource, signal
from ipytwist.worker.forkserver import forked
print(json.dumps({
    "forked": forked(),
    "random": random.random(),
    "session": get_ipython().history_manager.session_number,
    "cwd": os.getcwd(),
    "leak": os.environ.get("LEAKED"),
    "fork_fd": os.environ.get("IPYTWIST_FORK_FD"),
    "pgid_is_pid": os.getpgid(0) == os.getpid(),
    "sigterm_default": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
    "sigchld_default": signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL,
    "sigpipe_ignored": signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN,
    "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
}))
"""


class ForkService(durable.ForkService):
    """A fork service whose environment has a name a kernel may change."""

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "LEAKED": "from-the-service"}


def _probe(svc: DurableService, kernel_id: str, before: str = "") -> dict[str, Any]:
    ws = WSClient.connect(svc, kernel_id, "A")
    try:
        ws.kernel_info()
        if before:
            reply, _ = ws.execute(before)
            assert reply["content"]["status"] == "ok", reply
        reply, got = ws.execute(PROBE, timeout=60)
        assert reply["content"]["status"] == "ok", reply
        text = "".join(m["content"]["text"] for m in got if m["msg_type"] == "stream")
        found: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
        return found
    finally:
        ws.close()


@pytest.fixture(scope="module")
def svc() -> Iterator[ForkService]:
    with durable.fork_service(ForkService) as service:
        yield service


def _fork_servers(svc: DurableService) -> list[int]:
    assert svc.proc is not None
    return fork_servers(svc.proc.pid)


def test_two_forked_kernels_share_nothing_they_must_not(svc: ForkService) -> None:
    first = svc.start_kernel()
    # The first kernel changes what a careless fork server would hand on.
    a = _probe(svc, first, "import os; os.chdir('/tmp'); os.environ['LEAKED'] = 'a'")
    b = _probe(svc, svc.start_kernel())
    assert a["forked"] and b["forked"]
    assert a["random"] != b["random"]
    assert a["session"] != b["session"]
    assert a["cwd"] == "/tmp"
    # The service's directory (the fork server itself sits in /) and its environment.
    assert os.path.realpath(b["cwd"]) == os.path.realpath(svc.base_dir)
    assert b["leak"] == "from-the-service" and b["fork_fd"] is None
    assert b["pgid_is_pid"] and b["sigterm_default"] and b["sigchld_default"]
    assert b["sigpipe_ignored"]  # as in a new Python


def test_the_fork_server_holds_no_thread_and_no_file(svc: ForkService) -> None:
    """The server has made the IPython shell its kernels reuse, but no history database
    connection (sqlite's must never cross a fork), no thread, and no open file but its
    standard ones (the service's log)."""
    assert _probe(svc, svc.start_kernel())["forked"]  # it has loaded all and forked
    for pid in wait_for(lambda: _fork_servers(svc) or None, 30, "a fork server", 0.05):
        assert os.listdir(f"/proc/{pid}/task") == [str(pid)]
        fds = [int(fd) for fd in os.listdir(f"/proc/{pid}/fd")]
        paths = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds if fd > 2]  # not stdio
        assert [p for p in paths if p.startswith("/") and not p.startswith("/dev/")] == []


def test_a_dead_fork_server_is_replaced(svc: ForkService) -> None:
    svc.start_kernel()  # one server, at least, has started
    servers = wait_for(lambda: _fork_servers(svc) or None, 30, "a fork server", 0.05)
    for pid in servers:
        os.kill(pid, signal.SIGKILL)
    # Reaped, not only dead: the service has seen its end (a zombie's cmdline is empty).
    reaped = lambda: not any(os.path.exists(f"/proc/{pid}") for pid in servers)  # noqa: E731
    wait_for(reaped, 30, "its end", 0.05)
    got = _probe(svc, svc.start_kernel())
    assert got["forked"] is True
    assert set(_fork_servers(svc)) - set(servers)


def test_a_kernel_gets_the_services_limits_at_its_start(svc: ForkService) -> None:
    """The fork server started with the service's limits; lowered since, they are the
    kernel's."""
    assert svc.proc is not None
    soft, hard = resource.prlimit(svc.proc.pid, resource.RLIMIT_NOFILE)
    lower = min(soft, 512) - 1
    resource.prlimit(svc.proc.pid, resource.RLIMIT_NOFILE, (lower, hard))
    try:
        got = _probe(svc, svc.start_kernel())
    finally:
        resource.prlimit(svc.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
    assert got["forked"] and got["nofile"] == lower


def test_a_kernel_started_just_before_the_service_dies_is_readopted() -> None:
    """The request is in the server's queue when the service is SIGKILLed: the server
    still forks its keeper (no PDEATHSIG; the keeper ignores SIGPIPE, as a new Python,
    when it greets a service that is gone), and the next service re-adopts it."""
    with durable_base() as base:
        first = ForkService(base).start()
        again = None
        try:
            kid = first.start_kernel()
            first.kill()
            again = ForkService(base).start()
            again.listed(kid)
            assert _probe(again, kid)["forked"]
        finally:
            first.stop()
            if again is not None:
                again.stop()


def test_the_record_names_the_forked_keeper(svc: ForkService) -> None:
    """The server answers each request with the keeper's pid, and the kernel's record
    names it: the fork server's child, in a session of its own."""
    kid = svc.start_kernel()
    keeper = svc.keeper(kid)
    assert keeper in _fork_children(svc), keeper
    # The answer (and the kernel's start) may come before the keeper's setsid; its
    # interpreter, which answers requests, is forked after it.
    assert _probe(svc, kid)["forked"] is True
    with open(f"/proc/{keeper}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[3]) == keeper  # setsid: its own session


def test_no_fork_server_starts_each_kernel_in_a_new_python() -> None:
    with durable_base() as base:
        plain = DurableService(base, "--no-fork-server").start()
        try:
            kid = plain.start_kernel()
            assert not _fork_servers(plain)
            assert _probe(plain, kid)["forked"] is False
            assert plain.keeper(kid) in _children(plain.pid)
        finally:
            plain.stop()


def _fork_children(svc: DurableService) -> list[int]:
    return [pid for server in _fork_servers(svc) for pid in _children(server)]
