"""The history manager of a kernel forked by a fork server (issue 20), whose new session
is written while the kernel goes on starting.

A new session is a row inserted in the history database, and its commit waits for the
disk (two fsyncs; longer while another kernel's end of session holds the database's
lock): 10-40 ms of a fork server's kernel start, most of what is left after the fork.
:class:`LateSessionHistory` inserts it from a thread of its own, on a connection of its
own (a sqlite connection belongs to the thread that made it); :meth:`~LateSessionHistory.wait`
joins it before the history is first used (the worker calls it before each request and
at exit).  Everything else is IPython's ``HistoryManager``.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from IPython.core.history import HistoryManager

__all__ = ["LateSessionHistory"]


class LateSessionHistory(HistoryManager):
    """IPython's history manager; its first session is inserted by a thread."""

    _inserting: threading.Thread | None = None
    _failed: sqlite3.Error | None = None

    def new_session(self, conn: Any = None) -> None:
        """The first call (from ``__init__``) starts the insert; later ones are IPython's."""
        if self._inserting is not None or conn is not None or not self.enabled:
            self.wait()
            super().new_session(conn)
            return
        self._inserting = threading.Thread(target=self._insert, name="history-session")
        self._inserting.daemon = True
        self._inserting.start()

    def _insert(self) -> None:
        try:
            conn = sqlite3.connect(str(self.hist_file), **self.connection_options)
            try:
                super().new_session(conn)
            finally:
                conn.close()
        except sqlite3.Error as e:
            self._failed = e

    def wait(self) -> None:
        """Once the session is in the database (or, failing that, as IPython does when it
        cannot insert one: an error in the log and no history written)."""
        inserting = self._inserting
        if inserting is None or not inserting.is_alive() and self._failed is None:
            return
        inserting.join()
        failed, self._failed = self._failed, None
        if failed is not None:
            self.log.error("Failed to create history session in %s (%s).", self.hist_file, failed)
            self.hist_file = ":memory:"
            if self.save_thread is not None:
                self.save_thread.stop()
                self.save_thread = None
