"""What the worker gives the code it runs of its client's terminal: colours IPython's
default scheme, and the terminal's size when the request carries one (a real worker)."""

from __future__ import annotations

from pathlib import Path

from IPython.core.interactiveshell import InteractiveShell
from support.worker_proc import run_cells

SIZE = {"terminal": {"columns": 123, "lines": 45}}


def test_tracebacks_use_ipythons_default_colour_scheme(tmp_path: Path) -> None:
    """Plain IPython's scheme reads on the page's light background and on dark
    terminals alike (a dark-terminal scheme made grey on white)."""
    run = run_cells(tmp_path, ["print('scheme', get_ipython().colors)"])
    default = InteractiveShell.class_traits()["colors"].default_value
    assert f"scheme {default}\n".encode() in run.out


def test_a_requests_terminal_size_reaches_shell_commands_and_columns(tmp_path: Path) -> None:
    """`!` commands run in a pseudo-terminal of the client's size, COLUMNS and LINES
    say it while the request runs, and are put back after it."""
    cells = [
        "!stty size",
        "import os; print('env', os.environ.get('COLUMNS'), os.environ.get('LINES'))",
        "import os; print('after', os.environ.get('COLUMNS'))",
        "!stty size",
    ]
    run = run_cells(tmp_path, cells, [SIZE, SIZE, {}, {}])
    out = run.out.replace(b"\r\n", b"\n")
    assert b"45 123\n" in out and b"env 123 45\n" in out
    assert b"after None\n" in out and b"24 80\n" in out


def test_a_size_that_is_no_terminals_is_ignored(tmp_path: Path) -> None:
    cells = ["import os; print('env', os.environ.get('COLUMNS'))"] * 4
    bad = [{"terminal": {"columns": c, "lines": 40}} for c in (0, 10**9, "120", True)]
    run = run_cells(tmp_path, cells, bad)
    assert run.out.count(b"env None\n") == 4
