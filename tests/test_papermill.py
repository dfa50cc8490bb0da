"""papermill runs a parameterised notebook on the ipytwist kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill


def test_papermill_injects_parameters_and_records_outputs(tmp_path: Path) -> None:
    """papermill (kernel_name="ipytwist") injects parameters after the tagged cell, runs
    every cell, and the output notebook holds the computed stream output."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "ipytwist",
        "language": "python",
        "display_name": "Python 3 (ipytwist)",
    }
    params = nbformat.v4.new_code_cell("n = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("print('squared:', n * n)")]
    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    papermill.execute_notebook(
        str(src), str(out), parameters={"n": 7}, kernel_name="ipytwist", progress_bar=False
    )
    result = nbformat.read(out, as_version=4)
    texts = [
        o.get("text", "")
        for cell in result.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream"
    ]
    assert "squared: 49\n" in texts
