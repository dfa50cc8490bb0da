"""A notebook executed by nbclient gives the same outputs on ipytwist as on ipykernel.

One notebook is run once per kernel (module-scoped fixture); each cell's
outputs are then compared after normalising what legitimately differs
(execution counts, metadata, how a stream is split into chunks, the bytes of
a rendered PNG, the colouring of tracebacks).
"""

from __future__ import annotations

from typing import Any

import nbformat
import pytest
from benchlib.nbcompare import is_png_base64
from benchlib.nbrun import execute_on

KERNELS = ("ipytwist", "ipykernel-ref")

#: (cell name, source).  Names are the cell ids and the test parameters.
CELLS: list[tuple[str, str]] = [
    ("print", "print('hello from stdout')\nprint('second line')"),
    ("stderr", "import sys\nprint('to stderr', file=sys.stderr)"),
    (
        "display-update",
        "from IPython.display import display, update_display, clear_output\n"
        "handle = display({'text/plain': 'v1'}, raw=True, display_id='counter')\n"
        "display({'text/plain': 'other', 'text/html': '<i>other</i>'}, raw=True)\n"
        "handle.update({'text/plain': 'v2'}, raw=True)",
    ),
    (
        "update-from-later-cell",
        "update_display({'text/plain': 'v3', 'text/markdown': '**v3**'}, raw=True,"
        " display_id='counter')\n"
        "print('updated')",
    ),
    ("clear", "print('gone')\nclear_output()\nprint('kept')"),
    (
        "clear-wait",
        "print('old')\nclear_output(wait=True)\ndisplay({'text/plain': 'new'}, raw=True)",
    ),
    (
        "matplotlib",
        "%matplotlib inline\n"
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [1, 4, 9])\n"
        "plt.show()",
    ),
    ("shell-escape", "!echo hello"),
    ("os-system", "import os\nos.system('echo hi')"),
    ("error", "print('before the error')\n1 / 0"),
    ("after-error", "'still running'"),
    ("capture", "%%capture captured\nprint('hidden')\ndisplay('hidden display')"),
    ("captured-value", "captured.stdout, len(captured.outputs)"),
]

#: Cells whose output comes from a subprocess writing straight to fd 1.  ipykernel
#: forwards such output from a reader thread, so it publishes it late: after the
#: cell's result, or after the cell has finished (then nbclient drops it).  For
#: these the reference decides the other outputs; its stream output, if it made
#: it into the cell at all, must equal ours.
FD_OUTPUT_CELLS = {"os-system"}


@pytest.fixture(scope="module")
def executed() -> dict[str, nbformat.NotebookNode]:
    """The notebook, executed once under each kernel (both at once)."""
    return execute_on(CELLS, {kernel: kernel for kernel in KERNELS})


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else value


def normalise(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What must match between kernels: types, stream names and text (adjacent chunks
    of one stream merged), mime data (PNG checked for validity, not compared), errors'
    ename/evalue.  Metadata, execution counts and traceback text are dropped."""
    result: list[dict[str, Any]] = []
    for out in outputs:
        kind = out["output_type"]
        if kind == "stream":
            text = _text(out["text"])
            if (
                result
                and result[-1]["output_type"] == "stream"
                and (result[-1]["name"] == out["name"])
            ):
                result[-1]["text"] += text
            else:
                result.append({"output_type": kind, "name": out["name"], "text": text})
        elif kind in ("display_data", "execute_result"):
            data = {}
            for mime, value in out["data"].items():
                if mime == "image/png":
                    assert is_png_base64(value), "image/png is not valid base64 PNG data"
                    data[mime] = "<valid png>"
                else:
                    data[mime] = _text(value) if isinstance(value, (str, list)) else value
            result.append({"output_type": kind, "data": data})
        elif kind == "error":
            assert out["traceback"] and all(isinstance(t, str) for t in out["traceback"])
            result.append({"output_type": kind, "ename": out["ename"], "evalue": out["evalue"]})
        else:
            result.append({"output_type": kind})
    return result


def _cell(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    (cell,) = [c for c in nb.cells if c.id == name]
    return cell


@pytest.mark.parametrize("name", [name for name, _ in CELLS])
def test_cell_outputs_match_ipykernel(executed: dict[str, Any], name: str) -> None:
    """Each cell's outputs under ipytwist equal those under ipykernel, after normalising."""
    ours = normalise(_cell(executed["ipytwist"], name).outputs)
    ref = normalise(_cell(executed["ipykernel-ref"], name).outputs)
    if name in FD_OUTPUT_CELLS:
        ref_streams = [o for o in ref if o["output_type"] == "stream"]
        our_streams = [o for o in ours if o["output_type"] == "stream"]
        assert ref_streams in ([], our_streams)
        ours = [o for o in ours if o["output_type"] != "stream"]
        ref = [o for o in ref if o["output_type"] != "stream"]
    assert ours == ref


def test_outputs_are_what_the_cells_produce(executed: dict[str, Any]) -> None:
    """Independently of the reference: display ids update earlier outputs in place,
    output printed after clear_output survives it, the plot is a PNG, shell commands'
    output is a stdout stream placed before the cell's result, errors are recorded
    and %%capture hides everything."""
    nb = executed["ipytwist"]

    def outs(name: str) -> list[dict[str, Any]]:
        return normalise(_cell(nb, name).outputs)

    assert outs("print") == [
        {"output_type": "stream", "name": "stdout", "text": "hello from stdout\nsecond line\n"}
    ]
    assert outs("stderr") == [{"output_type": "stream", "name": "stderr", "text": "to stderr\n"}]
    assert outs("display-update") == [
        {"output_type": "display_data", "data": {"text/plain": "v3", "text/markdown": "**v3**"}},
        {
            "output_type": "display_data",
            "data": {"text/plain": "other", "text/html": "<i>other</i>"},
        },
    ]
    assert outs("update-from-later-cell") == [
        {"output_type": "stream", "name": "stdout", "text": "updated\n"}
    ]
    assert outs("clear") == [{"output_type": "stream", "name": "stdout", "text": "kept\n"}]
    assert outs("clear-wait") == [{"output_type": "display_data", "data": {"text/plain": "new"}}]
    (plot,) = outs("matplotlib")
    assert plot["output_type"] == "display_data"
    assert plot["data"]["image/png"] == "<valid png>"
    # IPython runs `!cmd` on a pseudo-terminal, which ends lines with \r\n.
    assert outs("shell-escape") == [
        {"output_type": "stream", "name": "stdout", "text": "hello\r\n"}
    ]
    assert outs("os-system") == [
        {"output_type": "stream", "name": "stdout", "text": "hi\n"},
        {"output_type": "execute_result", "data": {"text/plain": "0"}},
    ]
    assert outs("error") == [
        {"output_type": "stream", "name": "stdout", "text": "before the error\n"},
        {"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero"},
    ]
    assert outs("after-error") == [
        {"output_type": "execute_result", "data": {"text/plain": "'still running'"}}
    ]
    assert outs("capture") == []
    assert outs("captured-value") == [
        {"output_type": "execute_result", "data": {"text/plain": "('hidden\\n', 1)"}}
    ]
