"""The history manager of a kernel forked by a fork server (issue 20): its database is
opened by its saving thread alone while the kernel starts and idles.

A new session is a row inserted in the history database, and its commit waits for the
disk (two fsyncs; longer while another kernel's end of session holds the database's
lock): 10-40 ms of a fork server's kernel start, most of what is left after the fork.
And each SQLite connection, and each thread, costs a forked kernel some 400 KiB of pages
it no longer shares.  :class:`LateSessionHistory` has IPython's history-saving thread
make the tables and insert the session, on that thread's connection, before the first
batch it saves; the main thread's connection (``db``: history requests, ``%history``,
the end of the session) is opened at its first use.  :meth:`~LateSessionHistory.wait`
waits for the insert before the history is first used (the worker calls it before each
request and at exit).  Everything else is IPython's ``HistoryManager``.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from IPython.core.history import HistoryManager, HistorySavingThread

__all__ = ["LateSessionHistory"]

#: How often :meth:`LateSessionHistory.wait` looks whether the saving thread still runs.
_ALIVE_CHECK = 0.1
#: IPython's tables, as its ``HistoryAccessor.init_db`` makes them (the saving thread
#: may be the first to open a new database).
TABLES = (
    "CREATE TABLE IF NOT EXISTS sessions (session integer primary key autoincrement,"
    " start timestamp, end timestamp, num_cmds integer, remark text)",
    "CREATE TABLE IF NOT EXISTS history (session integer, line integer, source text,"
    " source_raw text, PRIMARY KEY (session, line))",
    "CREATE TABLE IF NOT EXISTS output_history (session integer, line integer,"
    " output text, PRIMARY KEY (session, line))",
)


class LateSessionHistory(HistoryManager):
    """IPython's history manager; its first session is inserted by its saving thread, and
    its own connection is made when first used."""

    #: Set once the first session is inserted (or failed); None: inserted at once.
    _inserted: threading.Event | None = None
    _due = False
    _failed: sqlite3.Error | None = None
    _conn: Any = None
    #: ``db`` is still to be opened (IPython's ``init_db`` at its first use).
    _lazy = False

    @property  # (IPython's is a trait)
    def db(self) -> Any:
        """The main thread's connection, opened (and the tables made) at its first use."""
        while self._lazy:
            self._lazy = False
            super().init_db()  # a corrupt file moved aside calls init_db: once more
        return self._conn

    @db.setter
    def db(self, conn: Any) -> None:
        self._conn = conn

    def init_db(self) -> None:
        """IPython's, later (see :attr:`db`), for a database in a file."""
        if self.enabled and str(self.hist_file) != ":memory:":
            self._lazy = True
        else:
            super().init_db()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]  # IPython's is unannotated
        if self._due and self.save_thread is None:  # no saving thread: insert it now
            self._due, self._inserted = False, None
            try:
                super().new_session()
            except sqlite3.OperationalError as e:
                self._unsaved(e)

    def new_session(self, conn: Any = None) -> None:
        """The first call (from ``__init__``, which starts the saving thread next) leaves
        the insert to that thread; later ones are IPython's."""
        first = self._inserted is None and conn is None
        if not (first and self.enabled and str(self.hist_file) != ":memory:"):
            self.wait()
            super().new_session(conn)
            return
        self._inserted = threading.Event()
        self._due = True
        if self.save_flag is not None:  # (made before __init__ makes the session)
            self.save_flag.set()  # the saving thread's first turn

    def writeout_cache(self, conn: Any = None) -> None:
        """IPython's; on the saving thread (the only caller with a connection of its own),
        the tables and the first session first."""
        if conn is not None and self._due:
            self._due = False
            try:
                with conn:
                    for table in TABLES:
                        conn.execute(table)
                super().new_session(conn)
            except sqlite3.Error as e:
                self._failed = e
                return
            finally:
                assert self._inserted is not None
                self._inserted.set()
        super().writeout_cache(conn)

    def wait(self) -> None:
        """Once the session is in the database (or, failing that, as IPython does when it
        cannot insert one: an error in the log and no history written)."""
        inserted = self._inserted
        if inserted is None or inserted.is_set() and self._failed is None:
            return
        while not inserted.wait(_ALIVE_CHECK):
            thread = self.save_thread
            if thread is None or not thread.is_alive():  # it failed to connect
                self._failed = self._failed or sqlite3.OperationalError("no saving thread")
                inserted.set()
        self._due = False
        failed, self._failed = self._failed, None
        if isinstance(failed, sqlite3.OperationalError):  # locked, unreadable, no thread
            self._unsaved(failed)
        elif failed is not None:  # not a database: IPython's init_db moves it aside
            try:
                super().new_session(self.db)
            except sqlite3.Error as e:
                self._unsaved(e)
                return
            if self.save_thread is not None:  # its connection is to the file moved aside
                self.save_thread.stop()
                self.save_thread = HistorySavingThread(self)  # type: ignore[no-untyped-call]  # IPython's is unannotated
                self.save_thread.start()

    def _unsaved(self, error: sqlite3.Error) -> None:
        self.log.error("Failed to create history session in %s (%s).", self.hist_file, error)
        self.hist_file = ":memory:"
        if self.save_thread is not None:
            self.save_thread.stop()
            self.save_thread = None
        self._lazy = False
        super().init_db()  # an in-memory database, as IPython's own failure leaves
