"""WorkerProcess against a fake reactor (see test_worker_process.py): stopping a worker,
and what happens when it ends."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from support.fake_process import PID, FakeReactor, Spawned
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.python.failure import Failure

from ipytwist.framing import encode_record
from ipytwist.kernel.process import (
    describe_exit,
)
from ipytwist.worker import EVENT_FD, REQUEST_FD


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
