"""Two executed notebooks compared: each cell's outputs and the stored widget state.

The same notebook run with nbclient (``store_widget_state=True``) on two kernels must
give, cell by cell, the same output types, MIME keys and text once what is random by
nature is masked (addresses, UUIDs, widget model ids, timings, embedded images), and the
same widget models with the same states.  Pure functions: the corpus test
(tests/test_library_corpus.py) and a benchmark use them alike.

- :func:`mask`: one string with what legitimately differs masked;
- :func:`normalise_outputs`: a cell's outputs as they must match;
- :func:`widget_models`: the stored widget state, model ids masked;
- :func:`compare_notebooks`: every mismatch, each with a readable diff;
- :func:`report`: the mismatches as one text, cell by cell.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: A line of a diff is cut to this many characters (a plotly.js bundle is one line).
DIFF_LINE_CHARS = 160
#: A diff shows at most this many lines.
DIFF_LINES = 40

_MASKS: list[tuple[re.Pattern[str], str]] = [
    # embedded images (ipympl's canvas, inline HTML): their bytes are not compared
    (re.compile(r"data:image/[\w.+-]+;base64,[A-Za-z0-9+/=]+"), "data:image;base64,<data>"),
    # UUIDs (bokeh's documents, plotly's trace uids and divs)
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
        ),
        "<uuid>",
    ),
    # widget model ids, altair's chart ids and other uuid4().hex
    (re.compile(r"(?<![0-9a-fA-F])[0-9a-f]{32}(?![0-9a-fA-F])"), "<id>"),
    # object addresses
    (re.compile(r"\b0x[0-9a-fA-F]{6,}\b"), "0x<addr>"),
    # tqdm's elapsed<remaining, rate (its widget writes < as &lt;)
    (re.compile(r"\[\d+:\d\d(?:<|&lt;)[^\]]*\]"), "[<timing>]"),
    # durations such as "Wall time: 1.23 ms"
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ns|µs|us|ms|s)\b"), "<duration>"),
]


def mask(text: str) -> str:
    """``text`` with addresses, UUIDs, model ids, timings and embedded images masked."""
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def mask_value(value: Any) -> Any:
    """Any JSON value with every string in it masked (keys too)."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, Mapping):
        return {mask(str(k)): mask_value(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [mask_value(v) for v in value]
    return value


def is_png_base64(value: Any) -> bool:
    """Whether ``value`` (a string or nbformat's list of lines) is base64 of a PNG."""
    if isinstance(value, list):
        value = "".join(value)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, TypeError, ValueError):
        return False
    return raw.startswith(PNG_SIGNATURE) and len(raw) > len(PNG_SIGNATURE)


def _text(value: Any) -> Any:
    return (
        "".join(value)
        if isinstance(value, list) and all(isinstance(v, str) for v in value)
        else value
    )


def _mime_value(mime: str, value: Any) -> Any:
    if mime == "image/png":
        return "<valid png>" if is_png_base64(value) else "<invalid png>"
    return mask_value(_text(value))


def normalise_outputs(outputs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What must match of a cell's outputs: their types, each stream's name and masked
    text (adjacent chunks of one stream merged), each bundle's MIME keys and masked
    values (a PNG only checked to be one), an error's name and masked value.  Metadata,
    execution counts and tracebacks are left out."""
    result: list[dict[str, Any]] = []
    for out in outputs:
        kind = out["output_type"]
        if kind == "stream":
            last = result[-1] if result else None
            if last and last["output_type"] == "stream" and last["name"] == out["name"]:
                last["text"] += _text(out["text"])
            else:
                result.append(
                    {"output_type": kind, "name": out["name"], "text": _text(out["text"])}
                )
        elif kind in ("display_data", "execute_result"):
            data = {mime: _mime_value(mime, v) for mime, v in sorted(out["data"].items())}
            result.append({"output_type": kind, "data": data})
        elif kind == "error":
            result.append(
                {"output_type": kind, "ename": out["ename"], "evalue": mask(out["evalue"])}
            )
        else:
            result.append({"output_type": kind})
    for out in result:
        if out["output_type"] == "stream":
            out["text"] = mask(out["text"])
    return result


def stored_widget_state(nb: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook's stored widget models, by model id (empty if none was stored)."""
    widgets = nb.get("metadata", {}).get("widgets", {})
    state: dict[str, Any] = widgets.get(WIDGET_STATE_MIME, {}).get("state", {})
    return state


def widget_models(nb: Mapping[str, Any]) -> dict[str, list[str]]:
    """The stored widget models by model name: each one's masked entry (module, version,
    state, buffers) as canonical JSON, sorted.  A reference to another model
    (``IPY_MODEL_<id>``) is masked to the name of the model it points to."""
    state = stored_widget_state(nb)
    names = {model_id: entry.get("model_name", "?") for model_id, entry in state.items()}

    def by_name(match: re.Match[str]) -> str:
        return "IPY_MODEL_<" + names.get(match.group(1), "unknown model") + ">"

    models: dict[str, list[str]] = {}
    for entry in state.values():
        text = json.dumps(entry, sort_keys=True, ensure_ascii=False)
        text = re.sub(r"IPY_MODEL_([0-9a-f]{32})", by_name, text)
        masked = mask_value(json.loads(text))
        canonical = json.dumps(masked, sort_keys=True, ensure_ascii=False, indent=1)
        models.setdefault(entry.get("model_name", "?"), []).append(canonical)
    return {name: sorted(entries) for name, entries in sorted(models.items())}


def dangling_views(nb: Mapping[str, Any]) -> dict[str, int]:
    """By cell id, how many of its widget views name a model the notebook did not store."""
    state = stored_widget_state(nb)
    dangling: dict[str, int] = {}
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW_MIME)
            if isinstance(view, Mapping) and view.get("model_id") not in state:
                dangling[cell["id"]] = dangling.get(cell["id"], 0) + 1
    return dangling


@dataclass(frozen=True)
class Mismatch:
    """One difference: where (a cell's id, or ``widget state``), and how."""

    where: str
    summary: str
    diff: str = ""


def _cut(line: str) -> str:
    return line if len(line) <= DIFF_LINE_CHARS else line[:DIFF_LINE_CHARS] + "…"


def text_diff(ref: str, ours: str, ref_label: str, our_label: str) -> str:
    """A unified diff of two texts, its lines cut short and at most DIFF_LINES of them."""
    lines = list(
        difflib.unified_diff(
            ref.splitlines(), ours.splitlines(), ref_label, our_label, n=2, lineterm=""
        )
    )
    shown = [_cut(line) for line in lines[:DIFF_LINES]]
    if len(lines) > DIFF_LINES:
        shown.append(f"... {len(lines) - DIFF_LINES} more diff lines")
    return "\n".join(shown)


def _dump(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False)


def _shape(outputs: list[dict[str, Any]]) -> str:
    """Outputs in one line: each one's type and its stream name or MIME keys."""
    parts = []
    for out in outputs:
        detail = out.get("name") or ",".join(out.get("data", {})) or out.get("ename", "")
        parts.append(f"{out['output_type']}({detail})")
    return " ".join(parts) or "no output"


def compare_cells(
    ref: Mapping[str, Any], ours: Mapping[str, Any], labels: tuple[str, str]
) -> list[Mismatch]:
    """A mismatch for each cell (paired by id) whose normalised outputs differ, and for
    each cell only one of the notebooks has."""
    ref_cells = {c["id"]: c for c in ref["cells"] if c["cell_type"] == "code"}
    our_cells = {c["id"]: c for c in ours["cells"] if c["cell_type"] == "code"}
    mismatches = []
    for cell_id, cell in ref_cells.items():
        if cell_id not in our_cells:
            mismatches.append(Mismatch(cell_id, f"the cell is missing on {labels[1]}"))
            continue
        a = normalise_outputs(cell["outputs"])
        b = normalise_outputs(our_cells[cell_id]["outputs"])
        if a != b:
            summary = f"{labels[0]}: {_shape(a)} | {labels[1]}: {_shape(b)}"
            mismatches.append(Mismatch(cell_id, summary, text_diff(_dump(a), _dump(b), *labels)))
    for cell_id in our_cells.keys() - ref_cells.keys():
        mismatches.append(Mismatch(cell_id, f"the cell is missing on {labels[0]}"))
    return mismatches


def compare_widget_state(
    ref: Mapping[str, Any], ours: Mapping[str, Any], labels: tuple[str, str]
) -> list[Mismatch]:
    """Mismatches of the stored widget state: how many models of each name, their
    states (model ids masked), and widget views whose model was not stored."""
    a, b = widget_models(ref), widget_models(ours)
    mismatches = []
    counts_a = Counter({name: len(v) for name, v in a.items()})
    counts_b = Counter({name: len(v) for name, v in b.items()})
    if counts_a != counts_b:
        summary = (
            f"{labels[0]} stores {counts_a.total()} widget models, {labels[1]} {counts_b.total()}"
        )
        diff = text_diff(_dump(dict(counts_a)), _dump(dict(counts_b)), *labels)
        mismatches.append(Mismatch("widget state", summary, diff))
    for name in sorted(a.keys() & b.keys()):
        if len(a[name]) == len(b[name]) and a[name] != b[name]:
            diff = text_diff("\n".join(a[name]), "\n".join(b[name]), *labels)
            mismatches.append(Mismatch("widget state", f"the {name}s' states differ", diff))
    views_a, views_b = dangling_views(ref), dangling_views(ours)
    for cell_id in sorted(views_a.keys() | views_b.keys()):
        if views_a.get(cell_id, 0) != views_b.get(cell_id, 0):
            summary = (
                f"cell {cell_id}: widget views of models not stored: {labels[0]} "
                f"{views_a.get(cell_id, 0)}, {labels[1]} {views_b.get(cell_id, 0)}"
            )
            mismatches.append(Mismatch("widget state", summary))
    return mismatches


def compare_notebooks(
    ref: Mapping[str, Any], ours: Mapping[str, Any], labels: tuple[str, str] = ("ref", "ours")
) -> list[Mismatch]:
    """Every difference between two executed notebooks: cell by cell, then the widget
    state.  ``labels`` name the two sides in the summaries and diffs."""
    return compare_cells(ref, ours, labels) + compare_widget_state(ref, ours, labels)


def report(mismatches: Sequence[Mismatch], cells: int) -> str:
    """The mismatches as text: how many of ``cells`` cells differ, then each one with its
    diff."""
    differing = list(dict.fromkeys(m.where for m in mismatches if m.where != "widget state"))
    lines = [f"{cells - len(differing)} of {cells} cells match; {len(mismatches)} mismatches"]
    if differing:
        lines.append("cells that differ: " + ", ".join(differing))
    for m in mismatches:
        lines.append(f"== {m.where}: {m.summary}")
        if m.diff:
            lines.append(m.diff)
    return "\n".join(lines)
