"""The service's end of the fork server, in process: a request carries the service's
environment, directory and limits with the keeper's socket and secret, and its answer
is the keeper's pid; a server that cannot take it (gone, or silent: then it is killed)
makes the keeper start as before; a dead server is replaced."""

from __future__ import annotations

import array
import json
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from resource import RLIMIT_NOFILE, getrlimit
from typing import Any

import pytest
from support.fake_process import FakeReactor
from support.linkglue import Listener
from twisted.python.failure import Failure

from ipytwist.kernel import forkclient
from ipytwist.kernel.forkclient import ENTRY, ForkedKeeper, ForkServer
from ipytwist.kernel.linkspawn import KeeperProcess, LinkProvisioner
from ipytwist.worker.forkserver import FORK_FD_ENV, PID

KEEPER = 99_999_002  # the pid the server answers (above any pid_max)


class KeepingReactor(FakeReactor):
    """Keeps the fork server's end of the socket (the child would have it), with the
    server's answer to its first request already waiting there (unless ``answer`` is
    None: a silent server)."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: list[socket.socket] = []
        self.answer: int | None = KEEPER

    def spawnProcess(  # type: ignore[override]  # the fake's own signature
        self, processProtocol: Any, executable: Any, args: Any = (), env: Any = None, **kw: Any
    ) -> Any:
        if env and FORK_FD_ENV in env:
            self.kept.append(socket.socket(fileno=os.dup(int(env[FORK_FD_ENV]))))
            if self.answer is not None:
                self.kept[-1].send(PID.pack(self.answer))
        processProtocol.connectionMade = lambda: None  # the fake process has no stdin
        return super().spawnProcess(processProtocol, executable, args, env, **kw)


@pytest.fixture
def reactor() -> Iterator[KeepingReactor]:
    r = KeepingReactor()
    yield r
    for s in r.kept:
        s.close()
    r.close()


def _receive(server: socket.socket) -> tuple[dict[str, Any], list[int]]:
    fds = array.array("i")
    data, anc, _, _ = server.recvmsg(1 << 20, socket.CMSG_SPACE(8))
    for _, _, payload in anc:
        fds.frombytes(payload)
    request: dict[str, Any] = json.loads(data)
    return request, list(fds)


def _spawn(links: LinkProvisioner, tmp_path: Any, told: list[Any]) -> Any:
    path = str(tmp_path / "k" / "link.sock")
    os.makedirs(os.path.dirname(path))
    return links.spawn(Listener(), path, b"s" * 32, "k", told.append)


def _answers(reactor: KeepingReactor) -> None:
    """The reactor finds the server's socket readable (it reads every answer there)."""
    for reader in list(reactor.readers):
        if select.select([reader], [], [], 0)[0]:
            reader.doRead()


def test_a_request_carries_the_keepers_socket_and_secret(
    reactor: KeepingReactor, tmp_path: Any
) -> None:
    """The request goes at once; the answer (the keeper's pid) is read by the reactor,
    never waited for, and only then is the keeper the worker's and told."""
    links, told = LinkProvisioner(reactor, str(tmp_path), forks=ForkServer(reactor)), []
    worker = _spawn(links, tmp_path, told)
    (started,) = reactor.spawned  # the server only: no keeper of the service's own
    assert started["args"][-1] == ENTRY and worker.keeper is None and told == []
    _answers(reactor)
    assert isinstance(worker.keeper, ForkedKeeper) and told == [worker.keeper]
    assert worker.keeper.pid == KEEPER and not worker.keeper.reports_end
    request, fds = _receive(reactor.kept[0])
    try:
        assert request["cwd"] == os.getcwd() and request["env"]["IPYTWIST_KERNEL_ID"] == "k"
        assert request["rlimits"]["RLIMIT_NOFILE"] == list(getrlimit(RLIMIT_NOFILE))
        assert socket.socket(fileno=os.dup(fds[0])).getsockname() == str(tmp_path / "k/link.sock")
        assert os.read(fds[1], 64) == b"s" * 32
    finally:
        for fd in fds:
            os.close(fd)


def test_a_server_that_cannot_take_it_leaves_the_keeper_to_start_as_before(
    reactor: KeepingReactor, tmp_path: Any
) -> None:
    forks = ForkServer(reactor)
    links, told = LinkProvisioner(reactor, str(tmp_path), forks=forks), []
    forks.prestart()
    reactor.kept.pop().close()  # the server is gone, the service has not seen it yet
    worker = _spawn(links, tmp_path, told)
    assert [s["args"][1:] for s in reactor.spawned][-1] == ["-m", "ipytwist.worker"]
    assert isinstance(worker.keeper, KeeperProcess) and told == [worker.keeper]


@pytest.mark.parametrize("answered_before", [False, True])
def test_a_silent_server_is_killed_and_the_keeper_starts_as_before(
    reactor: KeepingReactor, tmp_path: Any, answered_before: bool
) -> None:
    """No answer in time (START_TIMEOUT for a server still importing, ANSWER_TIMEOUT once
    it has answered): it is SIGKILLed, never to fork that keeper late beside the one
    started instead, with copies of the descriptors the request carried."""
    reactor.answer = None
    forks = ForkServer(reactor)
    links, told = LinkProvisioner(reactor, str(tmp_path), forks=forks), []
    forks.prestart()
    forks.answered = answered_before
    server = forks.process
    assert server is not None and server.transport is not None
    worker = _spawn(links, tmp_path, told)
    timeout = forkclient.ANSWER_TIMEOUT if answered_before else forkclient.START_TIMEOUT
    reactor.advance(timeout - 0.01)
    assert worker.keeper is None and server.transport.signals == []  # type: ignore[attr-defined]
    reactor.advance(0.01)
    assert server.transport.signals == ["KILL"]  # type: ignore[attr-defined]  # the fake's
    assert isinstance(worker.keeper, KeeperProcess) and told == [worker.keeper]
    (keeper,) = [s for s in reactor.spawned if s["args"][1:] == ["-m", "ipytwist.worker"]]
    assert keeper["env"]["IPYTWIST_LINK_FD"] in {str(fd) for fd in keeper["childFDs"]}
    assert forks.sock is None and forks.process is None


def test_what_a_dying_server_was_asked_starts_as_before(
    reactor: KeepingReactor, tmp_path: Any
) -> None:
    reactor.answer = None
    forks = ForkServer(reactor)
    links, told = LinkProvisioner(reactor, str(tmp_path), forks=forks), []
    worker = _spawn(links, tmp_path, told)
    assert forks.process is not None and worker.keeper is None
    forks.process.processEnded(Failure(Exception("killed")))
    assert isinstance(worker.keeper, KeeperProcess) and told == [worker.keeper]


def test_a_dead_server_is_replaced_on_the_next_request(reactor: KeepingReactor) -> None:
    forks = ForkServer(reactor)
    forks.prestart()
    assert forks.process is not None
    forks.process.processEnded(Failure(Exception("killed")))
    r, w = os.pipe()
    listen = socket.socket(socket.AF_UNIX)
    got: list[ForkedKeeper] = []
    try:
        assert forks.fork({}, (listen.fileno(), r), got.append, lambda *_: None)
        _answers(reactor)
        assert [k.pid for k in got] == [KEEPER] and forks.starts == 2
        _, fds = _receive(reactor.kept[-1])
        for fd in fds:
            os.close(fd)
    finally:
        listen.close()
        os.close(r)
        os.close(w)


def test_a_forked_keeper_is_signalled_through_its_pidfd() -> None:
    """Not the service's child: SIGTERM goes through a pidfd taken at the fork, so once
    it has ended (and its pid may be another's) a kill reaches nothing; the pidfd on the
    reactor tells its end."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        keeper, reactor, ended = ForkedKeeper(child.pid), FakeReactor(), []
        keeper.watch(reactor, lambda: ended.append(True))
        (pidfd,) = reactor.readers
        assert keeper.reports_end and not select.select([pidfd], [], [], 0)[0]
        keeper.kill()
        assert select.select([pidfd], [], [], 10)[0]  # readable: it has ended
        pidfd.doRead()
        assert ended == [True] and not reactor.readers
        assert child.wait(10) == -signal.SIGTERM
        keeper.kill()  # ended and reaped: nothing, and no error
    finally:
        child.kill()
        child.wait()


class _Gone:
    """A forked keeper whose end its pidfd tells."""

    reports_end, pid = True, KEEPER

    def kill(self) -> None:
        pass


@pytest.mark.parametrize("link_first", [True, False])
def test_a_forked_keeper_that_dies_without_a_word_ends_its_worker_at_once(
    link_first: bool,
) -> None:
    """Killed outright (no ``EXITED``): the worker ends once both the link's end and the
    pidfd's are seen, in either order, not a grace period later."""
    from support.linkglue import KID, SECRET, Taking, shake
    from twisted.internet.task import Clock

    from ipytwist.kernel.linked import KEEPER_GONE, LinkedWorker
    from ipytwist.link.end import LinkEnd

    ended: list[str] = []
    worker = LinkedWorker(Listener(), SECRET, KID, Clock())
    worker.keeper = _Gone()
    worker.ended.addCallback(ended.append)
    transport = Taking()
    worker.makeConnection(transport)
    shake(worker, LinkEnd(True, SECRET, KID), transport)
    first, second = (
        (worker.connectionLost, worker.keeper_gone)
        if link_first
        else (worker.keeper_gone, worker.connectionLost)
    )
    first()
    assert ended == []
    second()
    assert ended == [KEEPER_GONE]
