"""The library corpus gives the same outputs and widget state on ipytwist as on ipykernel.

The corpus (tests/support/library_corpus.py) is run once on each kernel with nbclient
and ``store_widget_state=True``, in one run; :mod:`benchlib.nbcompare` then compares
each cell's output types, MIME keys and masked text, and the stored widget state
(model names, counts, states with model ids masked).  On a mismatch the assertion
prints every differing cell with its diff.

A second test holds the reference to what the cells are meant to produce, so that the
comparison cannot pass because both kernels failed the same way.
"""

from __future__ import annotations

from typing import Any

import nbformat
import pytest
from benchlib.nbcompare import (
    WIDGET_VIEW_MIME,
    compare_notebooks,
    dangling_views,
    normalise_outputs,
    report,
    stored_widget_state,
)
from benchlib.nbrun import execute_on
from support.library_corpus import CELLS

#: label -> kernelspec (tests/conftest.py installs both; ipykernel-ref is ipykernel's
#: own launcher on this interpreter)
KERNELS = {"ipykernel": "ipykernel-ref", "ipytwist": "ipytwist"}


@pytest.fixture(scope="module")
def executed() -> dict[str, nbformat.NotebookNode]:
    """The corpus, executed once on each kernel (both at once) with its widget state
    stored."""
    return execute_on(CELLS, KERNELS, store_widget_state=True)


def test_same_outputs_and_widget_state_as_ipykernel(
    executed: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Every cell's outputs and the stored widget state equal ipykernel's, masked.  On a
    mismatch, both executed notebooks are kept for a look and the report names them."""
    mismatches = compare_notebooks(
        executed["ipykernel"], executed["ipytwist"], ("ipykernel", "ipytwist")
    )
    if mismatches:  # the report alone: the Mismatch objects' repr would bury it
        kept = tmp_path_factory.mktemp("library-corpus")
        for label, nb in executed.items():
            nbformat.write(nb, kept / f"{label}.ipynb")
        text = report(mismatches, len(CELLS))
        pytest.fail(f"\n{text}\nthe executed notebooks: {kept}/{{ipykernel,ipytwist}}.ipynb", False)


def _outputs(nb: nbformat.NotebookNode, name: str) -> list[dict[str, Any]]:
    (cell,) = [c for c in nb.cells if c.id == name]
    return normalise_outputs(cell.outputs)


def _views(outputs: list[dict[str, Any]]) -> int:
    return sum(WIDGET_VIEW_MIME in out.get("data", {}) for out in outputs)


WIDGET_CELLS = (
    "widgets-slider",
    "widgets-interact",
    "widgets-output",
    "widgets-boxes",
    "anywidget",
    "tqdm-auto",
    "ipympl",
    "plotly-figurewidget",
)


def test_the_reference_runs_the_corpus(executed: dict[str, Any]) -> None:
    """On ipykernel, each cell does what it is there for: no errors, the notebook is
    detected, each widget cell shows one widget whose model is stored, the Output widget
    holds its print, the libraries give their own MIME types."""
    nb = executed["ipykernel"]
    outs = {name: _outputs(nb, name) for name, _ in CELLS}
    assert not [n for n, o in outs.items() if any(x["output_type"] == "error" for x in o)]
    for name in ("detect-ipkernelapp", "detect-kernel"):
        assert outs[name] == [{"output_type": "execute_result", "data": {"text/plain": "True"}}]
    assert outs["detect-shell-class"][0]["data"]["text/plain"] == "'ZMQInteractiveShell'"
    assert {n: _views(outs[n]) for n in WIDGET_CELLS} == dict.fromkeys(WIDGET_CELLS, 1)
    assert dangling_views(nb) == {}
    state = stored_widget_state(nb)
    names = sorted({entry["model_name"] for entry in state.values()})
    for expected in ("IntSliderModel", "OutputModel", "FloatProgressModel", "MPLCanvasModel"):
        assert expected in names
    assert sorted(e["state"].get("_anywidget_id", "") for e in state.values())[-2:] == [
        "__main__.Counter",
        "plotly.graph_objs._figurewidget.FigureWidget",
    ]
    captured = [e["state"]["outputs"] for e in state.values() if e["model_name"] == "OutputModel"]
    assert {
        "name": "stdout",
        "output_type": "stream",
        "text": "captured by the Output widget\n",
    } in [o for outputs in captured for o in outputs]
    assert any(e["state"].get("value") == 7 for e in state.values())  # the slider, set
    assert "application/vnd.plotly.v1+json" in outs["plotly-figure"][0]["data"]
    assert "application/vnd.bokehjs_exec.v0+json" in outs["bokeh"][-1]["data"]
    assert "altair-viz" in outs["altair"][0]["data"]["text/html"]
    assert "dataframe" in outs["pandas"][0]["data"]["text/html"]
    assert outs["sympy"][0]["data"]["text/latex"].startswith("$\\displaystyle \\int")
    assert outs["update-display"] == [
        {"output_type": "display_data", "data": {"text/plain": "'third'"}}
    ]
