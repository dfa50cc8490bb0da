"""WorkerProcess and LocalProvisioner against a fake reactor (as txtorcon tests its
controller): ``spawnProcess`` records the call and hands the protocol a fake
process transport.  The output pipes are real ``os.pipe`` ends where the protocol
reads them itself; signals to process groups are recorded, never sent.  Spawning,
output, events and requests here; stopping and ending in test_worker_process_end.py."""

from __future__ import annotations

import os
import re
import signal
from typing import Any

import pytest
from support.fake_process import PID, FakePipeWriter, FakeReactor, Listener, Spawned

from ipytwist.framing import encode_record
from ipytwist.kernel.process import (
    PIPE_READ_PAUSE,
    TOKEN_ENV,
    LocalProvisioner,
    WorkerProcess,
)
from ipytwist.worker import EVENT_FD, REQUEST_FD, SYNC_ENV

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
    """After a read, the pipe is left alone for PIPE_READ_PAUSE so that a loop of
    prints arrives in few reads; then what piled up is read at once."""
    proto, process, listener, _ = spawned
    proto.childDataReceived(1, b"1\n")
    assert not process.pipes[1].reading
    reactor.child_writes(1, b"2\n")
    reactor.child_writes(1, b"3\n")
    assert listener.log == [("stdout", b"1\n")]
    reactor.advance(PIPE_READ_PAUSE)
    assert listener.log == [("stdout", b"1\n2\n3\n")]
    assert not process.pipes[1].reading  # still streaming: keep collecting
    reactor.advance(PIPE_READ_PAUSE)  # nothing more: back to reading as data comes
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
    writer = FakePipeWriter(w)
    process.pipes[REQUEST_FD] = writer
    proto.send({"req": "complete"})
    assert process.written == []
    assert os.read(r, 1024) == encode_record({"req": "complete"})


# -- stopping and ending ---------------------------------------------------------------------
