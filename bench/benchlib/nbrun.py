"""Notebooks built from named cells and executed with nbclient on a kernelspec.

The suite's nbclient tests (tests/test_nbclient.py, tests/test_library_corpus.py) run
their notebooks through these, and compare the results with :mod:`benchlib.nbcompare`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import nbformat
from nbclient import NotebookClient


def notebook_of(cells: Sequence[tuple[str, str]]) -> nbformat.NotebookNode:
    """A new notebook of code cells, each ``(name, source)``: the name is the cell's id."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, id=name) for name, source in cells]
    return nb


def _client(
    cells: Sequence[tuple[str, str]], kernel_name: str, store_widget_state: bool
) -> NotebookClient:
    """A client of a new notebook of ``cells`` on ``kernel_name`` (errors kept as outputs,
    a minute per cell at most)."""
    return NotebookClient(
        notebook_of(cells),
        kernel_name=kernel_name,
        timeout=60,
        startup_timeout=60,
        allow_errors=True,
        store_widget_state=store_widget_state,
    )


def execute_on(
    cells: Sequence[tuple[str, str]],
    kernels: Mapping[str, str],
    *,
    store_widget_state: bool = False,
) -> dict[str, nbformat.NotebookNode]:
    """The notebook of ``cells`` executed as :func:`execute` does on each kernelspec of
    ``kernels`` (label: kernelspec), all at once (each kernel runs in a process of its
    own, one notebook each; the kernels' outputs do not depend on what the others do):
    label -> its executed notebook."""
    clients = {label: _client(cells, k, store_widget_state) for label, k in kernels.items()}

    async def run_all() -> None:
        await asyncio.gather(*(c.async_execute() for c in clients.values()))

    asyncio.run(run_all())
    for c in clients.values():
        nbformat.validate(c.nb)
    return {label: c.nb for label, c in clients.items()}
