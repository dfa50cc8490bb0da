"""The history manager of a fork server's kernel (``worker/history.py``): its first
session is inserted by a thread, on a connection of its own; ``wait()`` makes it the
manager's, and a database that refuses the insert leaves the kernel without saved
history, as IPython does, instead of failing the start.  A real history database."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipytwist.worker.history import LateSessionHistory


@pytest.fixture
def made(tmp_path: Path) -> Iterator[list[LateSessionHistory]]:
    """The managers a test made, their saving threads stopped after it."""
    found: list[LateSessionHistory] = []
    yield found
    for history in found:
        if history.save_thread is not None:
            history.save_thread.stop()
        history.db.close()


def _history(path: Path, made: list[LateSessionHistory], **traits: object) -> LateSessionHistory:
    history = LateSessionHistory(hist_file=str(path), **traits)
    made.append(history)
    return history


def test_each_manager_gets_its_own_session_and_writes_to_it(
    tmp_path: Path, made: list[LateSessionHistory]
) -> None:
    path = tmp_path / "history.sqlite"
    first, second = _history(path, made), _history(path, made)
    for history in (first, second):
        history.wait()
    # (the two threads insert in either order)
    assert sorted((first.session_number, second.session_number)) == [1, 2]
    first.store_inputs(1, "in_the_first = 1")
    second.store_inputs(1, "in_the_second = 2")
    for history in (first, second):
        history.writeout_cache()
    assert [s for _, _, s in first.get_range(raw=True)] == ["in_the_first = 1"]
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT session, source_raw FROM history").fetchall()
        assert sorted(rows) == sorted(
            [
                (first.session_number, "in_the_first = 1"),
                (second.session_number, "in_the_second = 2"),
            ]
        )
    finally:
        db.close()
    second.reset()  # a new session later (%reset): IPython's own, at once
    assert second.session_number == 3


def test_a_database_that_refuses_the_session_leaves_history_unsaved(
    tmp_path: Path, made: list[LateSessionHistory], caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "history.sqlite"
    _history(path, made).wait()  # the tables exist
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        history = _history(path, made, connection_options={"timeout": 0.05})
        history.wait()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert history.hist_file == ":memory:" and history.save_thread is None
    assert history.session_number == 0
    assert "Failed to create history session" in caplog.text


def _opened(path: Path) -> int:
    """How many descriptors of this process have ``path`` open."""
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == str(path.resolve()))


def test_only_the_saving_thread_opens_the_database_until_it_is_queried(
    tmp_path: Path, made: list[LateSessionHistory]
) -> None:
    """A connection and a thread more per kernel cost it some 400 KiB each (issue 20):
    the saving thread makes the tables and the session; the main thread's connection
    waits for the first query."""
    path = tmp_path / "history.sqlite"
    before = set(threading.enumerate())
    history = _history(path, made)
    history.wait()
    assert set(threading.enumerate()) - before == {history.save_thread}
    assert history.session_number == 1
    assert _opened(path) == 1
    history.store_inputs(1, "x = 1")
    assert [s for _, _, s in history.get_range(raw=True)] == ["x = 1"]
    history.writeout_cache()
    assert _opened(path) == 2


def test_a_file_that_is_not_a_database_is_moved_aside_as_ipython_does(
    tmp_path: Path, made: list[LateSessionHistory]
) -> None:
    path = tmp_path / "history.sqlite"
    path.write_bytes(b"not a database " * 100)
    history = LateSessionHistory(hist_file=path)  # a Path, as IPython's shell gives it
    made.append(history)
    first_thread = history.save_thread
    history.wait()
    assert history.save_thread is not first_thread and history.save_thread.is_alive()
    assert history.session_number == 1 and str(history.hist_file) == str(path)
    assert (tmp_path / "history-corrupt.sqlite").read_bytes().startswith(b"not a database")
    history.store_inputs(1, "x = 1")
    history.writeout_cache()
    assert [s for _, _, s in history.get_range(raw=True)] == ["x = 1"]
