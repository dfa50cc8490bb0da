"""WorkerProcess and LocalProvisioner against a fake reactor (as txtorcon tests its
controller): ``spawnProcess`` records the call and hands the protocol a fake
process transport.  The stream pipes are real ``os.pipe`` ends where the protocol
reads them itself; signals to process groups are recorded, never sent."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from ipytwist.framing import encode_record
from ipytwist.kernel.process import (
    STREAM_READ_PAUSE,
    TOKEN_ENV,
    LocalProvisioner,
    WorkerProcess,
    describe_exit,
)
from ipytwist.worker import EVENT_FD, REQUEST_FD, SYNC_ENV, sync_marker

PID = 99_999_001  # above any pid_max: even a stray signal could reach no process


class Listener:
    """The kernel's side: everything the worker reports, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    def worker_output(self, name: str, data: bytes) -> None:
        if self.log and self.log[-1][0] == name:  # chunking is not part of the contract
            self.log[-1] = (name, self.log[-1][1] + data)
        else:
            self.log.append((name, data))

    def worker_event(self, event: dict[str, Any]) -> None:
        self.log.append(("event", event))

    def worker_exited(self, worker: Any, description: str) -> None:
        self.log.append(("exited", description))


class FakePipe:
    """Twisted's reader/writer of one child fd, over a real pipe end (or none)."""

    def __init__(self, fd: int = -1) -> None:
        self.fd = fd
        self.reading = True

    def fileno(self) -> int:
        return self.fd

    def stopReading(self) -> None:
        self.reading = False

    def startReading(self) -> None:
        self.reading = True


class FakeProcess:
    """What ``spawnProcess`` returns: records what the protocol does to the process."""

    def __init__(self, proto: Any, pipes: dict[int, FakePipe]) -> None:
        self.proto = proto
        self.pid = PID
        self.pipes = pipes
        self.closed: list[int] = []
        self.written: list[tuple[int, bytes]] = []
        self.signals: list[str] = []
        self.exited = False

    def closeChildFD(self, fd: int) -> None:
        self.closed.append(fd)
        self.pipes.pop(fd, None)

    def writeToChild(self, fd: int, data: bytes) -> None:
        self.written.append((fd, data))

    def signalProcess(self, sig: str) -> None:
        if self.exited:
            raise ProcessExitedAlready()
        self.signals.append(sig)


class FakeReactor(MemoryReactorClock):
    """A clock whose spawnProcess records the call and connects a FakeProcess."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[dict[str, Any]] = []
        self.fds: list[int] = []
        #: child fd -> our (read end, write end) of a real pipe behind it
        self.ends: dict[int, tuple[int, int]] = {}

    def _pipe(self) -> tuple[int, int]:
        r, w = os.pipe()
        os.set_blocking(r, False)
        self.fds += [r, w]
        return r, w

    def spawnProcess(  # type: ignore[override]
        self,
        processProtocol: Any,
        executable: Any,
        args: Any = (),
        env: Any = None,
        path: Any = None,
        uid: Any = None,
        gid: Any = None,
        usePTY: Any = False,
        childFDs: Any = None,
    ) -> FakeProcess:
        self.spawned.append(
            {"proto": processProtocol, "executable": executable, "args": list(args), "env": env}
            | {"path": path, "childFDs": dict(childFDs or {})}
        )
        pipes = {0: FakePipe(), REQUEST_FD: FakePipe()}
        for fd in (1, 2, EVENT_FD):
            self.ends[fd] = self._pipe()
            pipes[fd] = FakePipe(self.ends[fd][0])
        process = FakeProcess(processProtocol, pipes)
        processProtocol.makeConnection(process)
        return process

    def child_writes(self, fd: int, data: bytes) -> None:
        """The worker writes ``data`` to its fd (it waits in the pipe, unread)."""
        os.write(self.ends[fd][1], data)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


@pytest.fixture
def killed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    """os.kill and os.killpg, recorded instead of sent."""
    sent: list[tuple[str, int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append(("kill", pid, sig)))
    monkeypatch.setattr(os, "killpg", lambda pid, sig: sent.append(("killpg", pid, sig)))
    return sent


@pytest.fixture
def reactor() -> Iterator[FakeReactor]:
    r = FakeReactor()
    yield r
    r.close()


Spawned = tuple[WorkerProcess, FakeProcess, Listener, bytes]


@pytest.fixture
def spawned(reactor: FakeReactor, killed: list[Any]) -> Spawned:
    listener = Listener()
    proto = LocalProvisioner(reactor, python="/opt/py/bin/python3", env={}).start(listener)
    call = reactor.spawned[-1]
    marker = sync_marker(call["env"][SYNC_ENV])
    return proto, proto.transport, listener, marker


# -- LocalProvisioner ----------------------------------------------------------------------


def test_the_provisioner_spawns_python_m_ipytwist_worker(
    reactor: FakeReactor, killed: list[Any]
) -> None:
    env = {"HOME": "/home/x", TOKEN_ENV: "service-secret"}
    prov = LocalProvisioner(reactor, python="/opt/py/bin/python3", env=env, cwd="/srv/work")
    proto = prov.start(Listener())
    (call,) = reactor.spawned
    assert isinstance(proto, WorkerProcess) and call["proto"] is proto
    assert call["executable"] == "/opt/py/bin/python3"
    assert call["args"] == ["/opt/py/bin/python3", "-m", "ipytwist.worker"]
    assert call["path"] == "/srv/work"
    assert call["childFDs"] == {0: "w", 1: "r", 2: "r", REQUEST_FD: "w", EVENT_FD: "r"}
    child_env = call["env"]
    assert child_env["HOME"] == "/home/x"
    assert child_env["PYTHONIOENCODING"] == "utf-8"
    assert TOKEN_ENV not in child_env  # the service's token is not user code's business
    assert env[TOKEN_ENV] == "service-secret"  # and the caller's mapping is not changed
    assert re.fullmatch(r"[0-9a-f]{32}", child_env[SYNC_ENV])
    # The protocol is connected: it knows the pid and closed the child's stdin.
    assert proto.pid == PID and proto.alive
    assert proto.transport.closed == [0]


def test_each_worker_gets_its_own_sync_token_and_the_parent_environment(
    reactor: FakeReactor, killed: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "service-secret")
    monkeypatch.setenv("GLUE_TEST_VAR", "inherited")
    monkeypatch.setenv("PYTHONIOENCODING", "latin-1")
    prov = LocalProvisioner(reactor)
    prov.start(Listener())
    prov.start(Listener())
    first, second = (c["env"] for c in reactor.spawned)
    assert first["GLUE_TEST_VAR"] == "inherited" and TOKEN_ENV not in first
    assert first["PYTHONIOENCODING"] == "latin-1"  # set by the user: kept
    assert first[SYNC_ENV] != second[SYNC_ENV]
    assert reactor.spawned[0]["args"][1:] == ["-m", "ipytwist.worker"]


# -- output and events ----------------------------------------------------------------------


def test_output_on_fds_1_and_2_reaches_the_listener(spawned: Spawned) -> None:
    proto, _, listener, _ = spawned
    proto.childDataReceived(1, b"out\n")
    proto.childDataReceived(2, b"err\n")
    assert listener.log == [("stdout", b"out\n"), ("stderr", b"err\n")]


def test_events_are_decoded_and_delivered_in_order_with_output(spawned: Spawned) -> None:
    """The worker printed a, then event 1, then b, then event 2, then c.  The stdout
    bytes arrive first, the events later and in odd chunks; the listener still
    sees them in the order they happened."""
    proto, _, listener, marker = spawned
    ev1 = {"ev": "stream_test", "n": 1}
    ev2 = {"ev": "reply", "content": {"status": "ok"}}
    proto.childDataReceived(1, b"a" + marker + b"b" + marker + b"c")
    assert listener.log == [("stdout", b"a")]  # b and c wait for their events
    records = encode_record(ev1) + encode_record(ev2)
    proto.childDataReceived(EVENT_FD, records[:3])  # not even a whole length prefix
    assert listener.log == [("stdout", b"a")]
    proto.childDataReceived(EVENT_FD, records[3:])
    assert listener.log == [
        ("stdout", b"a"),
        ("event", ev1),
        ("stdout", b"b"),
        ("event", ev2),
        ("stdout", b"c"),
    ]


def test_a_marker_split_across_reads_is_still_a_marker(spawned: Spawned) -> None:
    proto, _, listener, marker = spawned
    proto.childDataReceived(2, b"x" + marker[:5])
    proto.childDataReceived(2, marker[5:] + b"y")
    assert listener.log == [("stderr", b"x")]
    proto.childDataReceived(EVENT_FD, encode_record({"ev": "e"}))
    assert listener.log == [("stderr", b"x"), ("event", {"ev": "e"}), ("stderr", b"y")]


def test_output_waiting_in_the_pipe_is_read_before_an_event(
    reactor: FakeReactor, spawned: Spawned
) -> None:
    """What the worker wrote to fd 1 before an event is delivered before it, even
    when the reactor has not read that pipe yet."""
    proto, _, listener, marker = spawned
    reactor.child_writes(1, b"early" + marker)
    proto.childDataReceived(EVENT_FD, encode_record({"ev": "e"}))
    assert listener.log == [("stdout", b"early"), ("event", {"ev": "e"})]


def test_stream_reads_pause_to_collect_output_on_the_clock(
    reactor: FakeReactor, spawned: Spawned
) -> None:
    """After a read, the pipe is left alone for STREAM_READ_PAUSE so that a loop of
    prints arrives in few reads; then what piled up is read at once."""
    proto, process, listener, _ = spawned
    proto.childDataReceived(1, b"1\n")
    assert not process.pipes[1].reading
    reactor.child_writes(1, b"2\n")
    reactor.child_writes(1, b"3\n")
    assert listener.log == [("stdout", b"1\n")]
    reactor.advance(STREAM_READ_PAUSE)
    assert listener.log == [("stdout", b"1\n2\n3\n")]
    assert not process.pipes[1].reading  # still streaming: keep collecting
    reactor.advance(STREAM_READ_PAUSE)  # nothing more: back to reading as data comes
    assert process.pipes[1].reading


def test_the_output_gate_stops_and_restarts_every_reader(spawned: Spawned) -> None:
    proto, process, _, _ = spawned
    proto.pause_output()
    assert [process.pipes[fd].reading for fd in (1, 2, EVENT_FD)] == [False] * 3
    proto.resume_output()
    assert [process.pipes[fd].reading for fd in (1, 2, EVENT_FD)] == [True] * 3


@pytest.mark.parametrize(
    "garbage",
    [b"\xff\xff\xff\xff", b"\x00\x00\x00\x03abc", b"\x00\x00\x00\x05" + b"[" * 5],
    ids=["too-large", "not-json", "not-an-object-start"],
)
def test_a_corrupt_event_pipe_kills_the_worker(
    spawned: Spawned, killed: list[Any], garbage: bytes
) -> None:
    proto, process, listener, _ = spawned
    proto.childDataReceived(EVENT_FD, garbage + encode_record({"ev": "after"}))
    assert process.signals == ["KILL"]
    assert ("killpg", PID, signal.SIGKILL) in killed
    assert not [e for e in listener.log if e[0] == "event"]


# -- requests -----------------------------------------------------------------------------


def test_records_go_to_the_request_fd(spawned: Spawned, killed: list[Any]) -> None:
    proto, process, _, _ = spawned
    proto.send({"req": "execute", "content": {"code": "1"}})
    assert process.written == [
        (REQUEST_FD, encode_record({"req": "execute", "content": {"code": "1"}}))
    ]
    proto.signal(signal.SIGINT)
    assert killed == [("kill", PID, signal.SIGINT)]


def test_an_idle_request_pipe_is_written_at_once(reactor: FakeReactor, spawned: Spawned) -> None:
    """Nothing queued in Twisted's writer: the record goes straight into the pipe."""
    proto, process, _, _ = spawned
    r, w = reactor._pipe()
    writer = FakePipe(w)
    writer.dataBuffer = b""  # type: ignore[attr-defined]
    writer._tempDataBuffer = []  # type: ignore[attr-defined]
    process.pipes[REQUEST_FD] = writer
    proto.send({"req": "complete"})
    assert process.written == []
    assert os.read(r, 1024) == encode_record({"req": "complete"})


# -- stopping and ending ---------------------------------------------------------------------


def test_stop_sends_shutdown_and_kills_after_the_grace_period(
    reactor: FakeReactor, spawned: Spawned, killed: list[Any]
) -> None:
    proto, process, listener, _ = spawned
    d = proto.stop(reactor, grace=2.0)
    assert process.written == [(REQUEST_FD, encode_record({"req": "shutdown"}))]
    assert REQUEST_FD in process.closed  # EOF on the request pipe
    reactor.advance(1.9)
    assert process.signals == [] and not d.called
    reactor.advance(0.2)
    assert process.signals == ["KILL"] and ("killpg", PID, signal.SIGKILL) in killed
    assert not d.called  # it fires when the process has ended
    proto.processExited(Failure(ProcessTerminated(signal=signal.SIGKILL)))
    proto.processEnded(Failure(ProcessTerminated(signal=signal.SIGKILL)))
    assert d.called and d.result == "was killed by signal 9 (SIGKILL)"
    assert listener.log[-1] == ("exited", "was killed by signal 9 (SIGKILL)")


def test_a_worker_that_exits_within_the_grace_period_is_not_killed(
    reactor: FakeReactor, spawned: Spawned
) -> None:
    proto, process, _, _ = spawned
    d = proto.stop(reactor, grace=2.0)
    proto.processEnded(Failure(ProcessDone(0)))
    assert d.result == "exited with status 0"
    assert [c for c in reactor.getDelayedCalls() if c.active()] == []  # the kill timer is gone
    reactor.advance(10)
    assert process.signals == []


def test_once_reaped_its_group_is_never_signalled_again(
    reactor: FakeReactor, spawned: Spawned, killed: list[Any]
) -> None:
    """After processExited the worker's pid (its group's id) may be another process's:
    a late kill (the stop grace timer, a kernel shutdown) must not signal it."""
    proto, _, _, _ = spawned
    proto.stop(reactor, grace=2.0)
    proto.processExited(Failure(ProcessTerminated(exitCode=0)))
    assert killed.count(("killpg", PID, signal.SIGKILL)) == 1
    reactor.advance(5)  # the grace timer fires before the pipes have closed
    proto.kill()
    assert killed.count(("killpg", PID, signal.SIGKILL)) == 1


def test_stopping_a_worker_that_is_not_running(reactor: FakeReactor, spawned: Spawned) -> None:
    proto, process, _, _ = spawned
    proto.processEnded(Failure(ProcessDone(0)))
    d = proto.stop(reactor)
    assert d.called and d.result == "not running"
    proto.send({"req": "execute"})
    assert process.written == []


def test_process_exited_reads_what_is_left_and_closes_the_pipes(
    reactor: FakeReactor, spawned: Spawned, killed: list[Any]
) -> None:
    """The worker died with a last reply in the event pipe and output after its
    marker: processExited delivers both in order and closes the pipes; processEnded
    reports the death once."""
    proto, process, listener, marker = spawned
    reactor.child_writes(1, b"last words" + marker + b"after")
    reactor.child_writes(EVENT_FD, encode_record({"ev": "reply", "content": {}}))
    proto.processExited(Failure(ProcessTerminated(exitCode=3)))
    assert not proto.alive
    assert ("killpg", PID, signal.SIGKILL) in killed  # user code's children end too
    assert set(process.closed) >= {1, 2, EVENT_FD, REQUEST_FD}
    assert listener.log == [
        ("stdout", b"last words"),
        ("event", {"ev": "reply", "content": {}}),
        ("stdout", b"after"),
    ]
    proto.processEnded(Failure(ProcessTerminated(exitCode=3)))
    assert listener.log[-1] == ("exited", "exited with status 3")
    assert proto.ended.called and proto.ended.result == "exited with status 3"


def test_process_ended_flushes_output_still_held(spawned: Spawned) -> None:
    """Output after a marker whose event never came is not lost when the worker ends."""
    proto, _, listener, marker = spawned
    proto.childDataReceived(1, b"x" + marker + b"orphan")
    assert listener.log == [("stdout", b"x")]
    proto.processEnded(Failure(ProcessDone(0)))
    assert listener.log == [("stdout", b"xorphan"), ("exited", "exited with status 0")]


@pytest.mark.parametrize(
    "reason, text",
    [
        (ProcessDone(0), "exited with status 0"),
        (ProcessTerminated(exitCode=2), "exited with status 2"),
        (ProcessTerminated(signal=signal.SIGSEGV), "was killed by signal 11 (SIGSEGV)"),
        (ProcessTerminated(signal=200), "was killed by signal 200 (signal 200)"),
        (RuntimeError("odd"), "ended (odd)"),
    ],
)
def test_describe_exit(reason: Exception, text: str) -> None:
    assert describe_exit(Failure(reason)) == text
