"""One service per state directory, and one that can be written (ipytwist/statedir.py):
the lock, and the service tree of ``makeService`` that starts nothing without it,
started and stopped on a ``MemoryReactorClock``."""

from __future__ import annotations

import errno
import os
from typing import Any

import pytest
from glue_fakes import no_zmq_sockets
from test_make_service import options
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, globalLogPublisher

import ipytwist.tap as tap
from ipytwist.statedir import LOCK_NAME, StateDirError, StateDirLock
from ipytwist.tap import makeService


def test_a_second_lock_on_the_directory_is_refused_until_the_first_lets_go(
    tmp_path: Any,
) -> None:
    path = str(tmp_path / "state")
    first, second = StateDirLock(path), StateDirLock(path)
    first.acquire()
    with pytest.raises(
        StateDirError, match=rf"in use by another ipytwist service \(pid {os.getpid()}\)"
    ):
        second.acquire()
    assert not second.held
    first.release()
    second.acquire()
    assert second.held and os.listdir(path) == [LOCK_NAME]  # the probe is gone
    second.release()


@pytest.mark.parametrize("call", ["pwrite", "write"])
def test_a_directory_that_cannot_be_written_is_refused(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    """The pid into the lock file, or the probe page, cannot be written (the disk is
    full): one line that says so, and the directory is not held."""

    def full(*args: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, call, full)
    lock = StateDirLock(str(tmp_path / "state"))
    with pytest.raises(StateDirError) as e:
        lock.acquire()
    assert str(e.value).endswith("cannot be written: No space left on device")
    assert "\n" not in str(e.value) and not lock.held


def test_a_state_dir_under_a_file_is_refused(tmp_path: Any) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StateDirError, match="cannot be written: Not a directory"):
        StateDirLock(str(tmp_path / "file" / "state")).acquire()


class Critical:
    """The critical lines logged while it is on."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("log_level") == LogLevel.critical:
            from twisted.logger import formatEvent

            self.lines.append(formatEvent(event))


@pytest.fixture
def critical() -> Any:
    observer = Critical()
    globalLogPublisher.addObserver(observer)
    yield observer
    globalLogPublisher.removeObserver(observer)


def start(top: Any) -> None:
    top.privilegedStartService()
    top.startService()


def test_a_service_on_a_held_state_dir_starts_nothing_and_exits_1(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, critical: Critical
) -> None:
    """A second service tree on the state directory of a running one: one critical line,
    it listens nowhere, leaves the first one's server.json as it is (also when it
    stops), and exits 1."""
    no_zmq_sockets(monkeypatch)
    state_dir = str(tmp_path / "state")
    first_reactor, second_reactor = MemoryReactorClock(), MemoryReactorClock()
    first = makeService(options(state_dir), first_reactor)
    start(first)
    info_path = os.path.join(state_dir, "server.json")
    with open(info_path) as f:
        info = f.read()
    second = makeService(options(state_dir), second_reactor)
    start(second)
    assert len(critical.lines) == 1 and "in use by another ipytwist service" in critical.lines[0]
    assert second_reactor.tcpServers == []
    (exit_status,) = [s for s in second if isinstance(s, tap._ExitStatus)]
    assert exit_status.code == 1 and exit_status.running
    second.stopService()
    with open(info_path) as f:
        assert f.read() == info
    first.stopService()
    assert not os.path.exists(info_path)
    third = makeService(options(state_dir), MemoryReactorClock())
    start(third)  # the first one let go when it stopped
    assert os.path.exists(info_path)
    third.stopService()


def test_server_json_that_cannot_be_written_stops_the_service(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, critical: Critical
) -> None:
    """The disk fills between the start and the listening: one critical line, exit 1."""
    no_zmq_sockets(monkeypatch)

    def full(path: str, data: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(tap, "write_private_json", full)
    top = makeService(options(str(tmp_path / "state")), MemoryReactorClock())
    start(top)
    (exit_status,) = [s for s in top if isinstance(s, tap._ExitStatus)]
    assert exit_status.code == 1
    assert len(critical.lines) == 1 and "server.json" in critical.lines[0]
    assert "No space left on device" in critical.lines[0]
    top.stopService()
