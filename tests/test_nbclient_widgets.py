"""Widgets through nbclient with ``store_widget_state=True``: the same notebook on ipytwist
and on ipykernel, in one run, stores the same widget models and the same outputs.

A first corpus of what issue 17 judges: ipywidgets (a slider, boxes, ``interact``, the
``Output`` widget), tqdm.auto and notebook detection.  Model ids are random, so models
are compared by name and state with ids replaced by their order of appearance.
"""

from __future__ import annotations

import json
import re
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

KERNELS = ("ipytwist", "ipykernel-ref")

CELLS: list[tuple[str, str]] = [
    ("slider", "import ipywidgets as W\ns = W.IntSlider(5, description='n')\ns"),
    ("set", "s.value = 8\ns.value"),
    ("boxes", "W.VBox([W.HBox([W.Button(description='b'), W.Text('t')]), W.Checkbox(True)])"),
    ("interact", "@W.interact(x=3)\ndef f(x):\n    print('x is', x)"),
    ("output", "out = W.Output()\nwith out:\n    print('captured')\nout"),
    ("tqdm", "from tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc='bar'): pass"),
    (
        "detection",
        "ip = get_ipython()\n"
        "print(type(ip).__name__, 'IPKernelApp' in ip.config, hasattr(ip, 'kernel'))",
    ),
]


@pytest.fixture(scope="module")
def executed() -> dict[str, nbformat.NotebookNode]:
    out = {}
    for kernel in KERNELS:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(src, id=name) for name, src in CELLS]
        client = NotebookClient(
            nb, kernel_name=kernel, timeout=60, startup_timeout=60, store_widget_state=True
        )
        out[kernel] = client.execute()
    return out


def _ids(text: str, seen: dict[str, str]) -> str:
    return re.sub(
        r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])",
        lambda m: seen.setdefault(m[0], f"id{len(seen)}"),
        text,
    )


def _masked(value: Any, seen: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _ids(re.sub(r"\d+\.\d+it/s|\d\d:\d\d|\?it/s", "T", value), seen)
    if isinstance(value, dict):
        return {k: _masked(v, seen) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_masked(v, seen) for v in value]
    return value


def normal(nb: nbformat.NotebookNode) -> tuple[list[Any], list[Any]]:
    """(each cell's outputs, the stored models), ids in order of appearance."""
    seen: dict[str, str] = {}
    outputs = []
    for cell in nb.cells:
        kept = []
        for o in cell.outputs:
            o = {k: v for k, v in o.items() if k not in ("execution_count", "metadata")}
            kept.append(_masked(o, seen))
        outputs.append(kept)
    state = (
        nb.metadata.get("widgets", {})
        .get("application/vnd.jupyter.widget-state+json", {})
        .get("state", {})
    )
    # Models in any order: each with every id masked alike, sorted by what it holds.
    models = [_masked(m, {}) for m in state.values()]
    models = [json.loads(re.sub(r"id\d+", "id", json.dumps(m))) for m in models]
    return outputs, sorted(models, key=lambda m: json.dumps(m, sort_keys=True))


def test_the_stored_widget_state_matches_ipykernel(executed: dict[str, Any]) -> None:
    ours, ref = (normal(executed[k])[1] for k in KERNELS)
    assert len(ref) > 10
    assert sorted(m["model_name"] for m in ours) == sorted(m["model_name"] for m in ref)
    assert ours == ref


@pytest.mark.parametrize("index", range(len(CELLS)), ids=[name for name, _ in CELLS])
def test_each_cells_outputs_match_ipykernel(executed: dict[str, Any], index: int) -> None:
    ours, ref = (normal(executed[k])[0][index] for k in KERNELS)
    assert ours == ref
