"""The terminal of the client whose request runs: its size, for what user code runs.

A client that sends its terminal's size with a request (the console does) gets the
programs of that request laid out for it: ``COLUMNS`` and ``LINES`` are set while
the request runs (``shutil.get_terminal_size``, pandas and most programs read them),
and the pseudo-terminal IPython runs ``!`` commands in has that size (``ls``, ``git``
and others ask the terminal itself).  Without one, programs see what they would
under Jupyter: a pseudo-terminal of 80 columns and no ``COLUMNS``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["TerminalSize", "size_of"]

#: Sizes outside these are not a terminal's: the request's size is ignored.
COLUMNS_RANGE = range(10, 10_001)
LINES_RANGE = range(2, 10_001)


def size_of(record: dict[str, Any]) -> tuple[int, int] | None:
    """``(columns, lines)`` a worker request record carries, if it is a sane one."""
    size = record.get("terminal")
    if not isinstance(size, dict):
        return None
    columns, lines = size.get("columns"), size.get("lines")
    if type(columns) is not int or type(lines) is not int:
        return None
    if columns not in COLUMNS_RANGE or lines not in LINES_RANGE:
        return None
    return columns, lines


class TerminalSize:
    """The size of the running request's terminal, if its client gave one."""

    def __init__(self) -> None:
        self.size: tuple[int, int] | None = None

    @contextmanager
    def of(self, record: dict[str, Any]) -> Iterator[None]:
        """While the request of ``record`` runs: its terminal's size, in the environment
        and for the pseudo-terminals of ``!`` commands; the environment is put back
        afterwards (as user code left it, but for these two names)."""
        size = size_of(record)
        if size is None:
            yield
            return
        saved = {name: os.environ.get(name) for name in ("COLUMNS", "LINES")}
        os.environ["COLUMNS"], os.environ["LINES"] = str(size[0]), str(size[1])
        self.size = size
        try:
            yield
        finally:
            self.size = None
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def install(self) -> None:
        """Give the pseudo-terminals IPython runs ``!`` commands in this size (IPython
        spawns them through pexpect with its default 24 x 80)."""
        try:
            from IPython.utils import _process_posix
        except ImportError:  # not a POSIX system: IPython runs commands without a pty
            return
        names = vars(_process_posix)  # the module's globals: its handler looks pexpect up there
        real = names.get("pexpect")
        if real is not None and not isinstance(real, _SizedPexpect):
            names["pexpect"] = _SizedPexpect(real, self)


class _SizedPexpect:
    """pexpect, as IPython's process handler uses it, spawning at the request's size."""

    def __init__(self, real: Any, terminal: TerminalSize) -> None:
        self._real = real
        self._terminal = terminal

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def spawn(self, *args: Any, **kwargs: Any) -> Any:
        """pexpect.spawn, with ``dimensions`` (lines, columns) of the request's terminal."""
        size = self._terminal.size
        if size is not None:
            kwargs.setdefault("dimensions", (size[1], size[0]))
        return self._real.spawn(*args, **kwargs)
