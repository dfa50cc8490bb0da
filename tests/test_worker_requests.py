"""The worker's execute handler: execution counts stay unique, with a fake shell and
in a real worker."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from support.worker_proc import run_cells

from ipytwist.worker.link import Interrupts
from ipytwist.worker.requests import RequestHandlers

#: An AST transformer that raises KeyboardInterrupt for a cell that is the string
#: 'cut short': an interrupt landing in IPython's machinery after it stored the input.
CUT_SHORT_SETUP = """
import ast
class CutShort(ast.NodeTransformer):
    def visit_Module(self, node):
        if ast.literal_eval(ast.unparse(node) or 'None') == 'cut short':
            raise KeyboardInterrupt
        return node
get_ipython().ast_transformers.append(CutShort())
"""


class FakeShell:
    """IPython's order: store the input under the current count, run, then count it."""

    def __init__(self) -> None:
        self.execution_count = 5
        self.stored: list[int] = []
        self.cut_short = False
        self.last_error: dict[str, Any] | None = None
        self.payloads = self  # WorkerShell.payloads: IPython's payload manager
        self.ast_node_interactivity = "last_expr"
        self.events = SimpleNamespace(callbacks={})

    def run_cell(self, code: str, store_history: bool, silent: bool) -> Any:
        if store_history:
            self.stored.append(self.execution_count)
        if self.cut_short:
            raise KeyboardInterrupt  # in IPython's own code, after storing the input
        if store_history:
            self.execution_count += 1
        return type("Result", (), {"error_before_exec": None, "error_in_exec": None})()

    def showtraceback(self, exc_tuple: Any) -> None:
        self.last_error = {"ename": "KeyboardInterrupt", "evalue": "", "traceback": []}

    def user_expressions(self, expressions: dict[str, Any]) -> dict[str, Any]:
        return {}

    def read_payload(self) -> list[Any]:
        return []

    def clear_payload(self) -> None:
        pass


class FakeLink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def test_a_cell_interrupted_inside_ipython_still_uses_up_its_count() -> None:
    """A KeyboardInterrupt that escapes run_cell after IPython stored the input would
    leave the count where it was: the next cell's history line would collide (IPython
    then prints "ERROR! Session/line number was not unique" into a later cell)."""
    shell, link = FakeShell(), FakeLink()
    handlers = RequestHandlers(shell, link, Interrupts())  # type: ignore[arg-type]
    shell.cut_short = True
    reply = handlers.execute({"code": "x"})
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    assert reply["execution_count"] == 5
    shell.cut_short = False
    reply = handlers.execute({"code": "y"})
    assert reply["status"] == "ok" and reply["execution_count"] == 6
    assert shell.stored == [5, 6]  # unique lines
    assert [e["count"] for e in link.events if e["ev"] == "execute_input"] == [5, 6]


def test_a_silent_cell_cut_short_uses_no_count() -> None:
    shell = FakeShell()
    handlers = RequestHandlers(shell, FakeLink(), Interrupts())  # type: ignore[arg-type]
    shell.cut_short = True
    handlers.execute({"code": "x", "silent": True})
    assert shell.execution_count == 5


def test_an_interrupt_ipython_swallows_still_uses_up_the_count(tmp_path: Any) -> None:
    """In a real worker: IPython's run_cell returns an interrupt that lands between
    storing the input and counting the cell as the cell's error, without counting it.
    The next cell still gets a new number, and the history written out at exit has no
    collision (IPython would print "ERROR! Session/line number was not unique" into
    whichever cell's output was being written then: the soak caught it in a print burst)."""
    run = run_cells(tmp_path, [CUT_SHORT_SETUP, "'cut short'", "'next'"])
    assert run.returncode == 0, run.err
    setup, cut, after = run.replies
    assert setup["status"] == "ok", setup
    assert cut["status"] == "error" and cut["ename"] == "KeyboardInterrupt", cut
    assert after["status"] == "ok", after
    assert [r["execution_count"] for r in run.replies] == [1, 2, 3]
    assert b"not unique" not in run.out, run.out[-500:]
