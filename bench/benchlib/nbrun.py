"""Notebooks built from named cells and executed with nbclient on a kernelspec.

The suite's nbclient tests (tests/test_nbclient.py, tests/test_library_corpus.py) run
their notebooks through these, and compare the results with :mod:`benchlib.nbcompare`.
"""

from __future__ import annotations

from collections.abc import Sequence

import nbformat
from nbclient import NotebookClient


def notebook_of(cells: Sequence[tuple[str, str]]) -> nbformat.NotebookNode:
    """A new notebook of code cells, each ``(name, source)``: the name is the cell's id."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, id=name) for name, source in cells]
    return nb


def execute(
    cells: Sequence[tuple[str, str]], kernel_name: str, *, store_widget_state: bool = False
) -> nbformat.NotebookNode:
    """The notebook of ``cells`` executed on ``kernel_name`` (errors kept as outputs, a
    minute per cell at most), checked to be a valid notebook."""
    nb = notebook_of(cells)
    client = NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=60,
        startup_timeout=60,
        allow_errors=True,
        store_widget_state=store_widget_state,
    )
    client.execute()
    nbformat.validate(nb)
    return nb
