"""benchlib.nbcompare on small hand-made notebooks: what it masks, what it reports."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from benchlib.nbcompare import (
    DIFF_LINES,
    WIDGET_STATE_MIME,
    WIDGET_VIEW_MIME,
    compare_notebooks,
    mask,
    normalise_outputs,
    report,
    text_diff,
)

PNG_A = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"a" * 20).decode()
PNG_B = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"b" * 30).decode()
ID_SLIDER, ID_LAYOUT, ID_STYLE = "a" * 32, "b" * 32, "c" * 32
OTHER_SLIDER, OTHER_LAYOUT, OTHER_STYLE = "1" * 32, "2" * 32, "3" * 32


def notebook(cells: dict[str, list[dict[str, Any]]], state: dict[str, Any] | None = None) -> Any:
    """A notebook as nbclient leaves it: code cells with outputs, maybe widget state."""
    nb: dict[str, Any] = {
        "cells": [
            {"cell_type": "code", "id": name, "source": "", "outputs": outs}
            for name, outs in cells.items()
        ],
        "metadata": {},
    }
    if state is not None:
        nb["metadata"]["widgets"] = {
            WIDGET_STATE_MIME: {"version_major": 2, "version_minor": 0, "state": state}
        }
    return nb


def stream(text: str, name: str = "stdout") -> dict[str, Any]:
    return {"output_type": "stream", "name": name, "text": text}


def display(data: dict[str, Any], kind: str = "display_data") -> dict[str, Any]:
    return {"output_type": kind, "data": data, "metadata": {}}


def slider_state(slider: str, layout: str, style: str, value: int = 5) -> dict[str, Any]:
    """A slider's three models, as ipywidgets stores them."""

    def model(name: str, state: dict[str, Any]) -> dict[str, Any]:
        return {
            "model_module": "@jupyter-widgets/controls",
            "model_module_version": "2.0.0",
            "model_name": name,
            "state": state,
        }

    return {
        slider: model(
            "IntSliderModel",
            {"value": value, "layout": f"IPY_MODEL_{layout}", "style": f"IPY_MODEL_{style}"},
        ),
        layout: model("LayoutModel", {"width": None}),
        style: model("SliderStyleModel", {"handle_color": None}),
    }


def view(model_id: str) -> dict[str, Any]:
    return display(
        {
            WIDGET_VIEW_MIME: {"model_id": model_id, "version_major": 2, "version_minor": 0},
            "text/plain": "IntSlider(value=5)",
        },
        "execute_result",
    )


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("<Counter object at 0x7fd831bf0710>", "<Counter object at 0x<addr>>"),
        ('id="b30fcdc1-0ebb-4944-ad7b-64b776eafbcd"', 'id="<uuid>"'),
        ("IPY_MODEL_a2e47363b2d04a679d0e32f11096926c", "IPY_MODEL_<id>"),
        ("#altair-viz-0623f5d5805042ae8b6a339cc3f43f9b.vega", "#altair-viz-<id>.vega"),
        ("3/3 [00:00<00:00, 99078.05it/s]", "3/3 [<timing>]"),
        ("0/3 [00:00<?, ?it/s]", "0/3 [<timing>]"),
        ("\u20073/3\u2007[00:00&lt;00:00,\u2007817.50it/s]", "\u20073/3\u2007[<timing>]"),
        ("Wall time: 1.23 ms", "Wall time: <duration>"),
        ('<img src="data:image/png;base64,iVBORw0KGgo=">', '<img src="data:image;base64,<data>">'),
    ],
)
def test_mask_hides_what_is_random(text: str, masked: str) -> None:
    assert mask(text) == masked


@pytest.mark.parametrize(
    "text",
    ["3/3", "deadbeef", "a" * 31, "a" * 33, "value=5", "'ZMQInteractiveShell'", "x = 10"],
)
def test_mask_keeps_what_is_not(text: str) -> None:
    assert mask(text) == text


def test_normalise_merges_stream_chunks_and_checks_png() -> None:
    outs = [
        stream("a"),
        stream("b\n"),
        stream("c", "stderr"),
        display({"image/png": PNG_A, "text/plain": ["<Figure ", "0x7f00aabbcc>"]}),
        display({"image/png": "bm90IGEgcG5n"}),
        {"output_type": "error", "ename": "E", "evalue": "at 0x7f00aabbcc", "traceback": []},
    ]
    assert normalise_outputs(outs) == [
        {"output_type": "stream", "name": "stdout", "text": "ab\n"},
        {"output_type": "stream", "name": "stderr", "text": "c"},
        {
            "output_type": "display_data",
            "data": {"image/png": "<valid png>", "text/plain": "<Figure 0x<addr>>"},
        },
        {"output_type": "display_data", "data": {"image/png": "<invalid png>"}},
        {"output_type": "error", "ename": "E", "evalue": "at 0x<addr>"},
    ]


def test_what_is_masked_does_not_count_as_a_mismatch() -> None:
    """Other model ids, addresses, timings, PNG bytes and chunking: the same notebook."""
    ref = notebook(
        {
            "slider": [view(ID_SLIDER)],
            "text": [stream("obj at 0x7f0000aaaa\n"), display({"image/png": PNG_A})],
        },
        slider_state(ID_SLIDER, ID_LAYOUT, ID_STYLE),
    )
    ours = notebook(
        {
            "slider": [view(OTHER_SLIDER)],
            "text": [stream("obj at "), stream("0x7f1111bbbb\n"), display({"image/png": PNG_B})],
        },
        slider_state(OTHER_SLIDER, OTHER_LAYOUT, OTHER_STYLE),
    )
    assert compare_notebooks(ref, ours) == []


def test_an_extra_output_is_reported_with_its_cell_and_a_diff() -> None:
    same = [display({"text/plain": "'x'"}, "execute_result")]
    ref = notebook({"same": same, "interact": [view(ID_SLIDER)]})
    ours = notebook({"same": same, "interact": [display({"text/plain": "6"}), view(OTHER_SLIDER)]})
    (mismatch,) = compare_notebooks(ref, ours, ("ipykernel", "ipytwist"))
    assert mismatch.where == "interact"
    assert mismatch.summary == (
        "ipykernel: execute_result(application/vnd.jupyter.widget-view+json,text/plain)"
        " | ipytwist: display_data(text/plain) execute_result("
        "application/vnd.jupyter.widget-view+json,text/plain)"
    )
    assert '+   "text/plain": "6"' in mismatch.diff
    assert mismatch.diff.startswith("--- ipykernel\n+++ ipytwist")
    text = report([mismatch], 2)
    assert text.startswith(
        "1 of 2 cells match; 1 mismatches\ncells that differ: interact\n== interact: ipykernel:"
    )
    assert mismatch.diff in text


@pytest.mark.parametrize(
    ("ref", "ours"),
    [
        ([display({"text/plain": "1"})], [display({"text/plain": "1", "text/html": "1"})]),
        ([display({"text/plain": "1"})], [display({"text/plain": "1"}, "execute_result")]),
        ([stream("x")], [stream("x", "stderr")]),
        ([stream("x")], [stream("y")]),
        ([display({"image/png": PNG_A})], [display({"image/png": "bm90IGEgcG5n"})]),
        ([], [{"output_type": "error", "ename": "NameError", "evalue": "x", "traceback": []}]),
    ],
    ids=["mime-key", "output-type", "stream-name", "text", "png", "error"],
)
def test_each_kind_of_difference_is_a_mismatch(ref: list[Any], ours: list[Any]) -> None:
    (mismatch,) = compare_notebooks(notebook({"c": ref}), notebook({"c": ours}))
    assert mismatch.where == "c" and mismatch.diff


def test_a_missing_cell_is_reported() -> None:
    mismatches = compare_notebooks(notebook({"a": [], "b": []}), notebook({"a": [], "c": []}))
    assert [(m.where, m.summary) for m in mismatches] == [
        ("b", "the cell is missing on ours"),
        ("c", "the cell is missing on ref"),
    ]


def test_missing_widget_state_is_reported_with_counts_and_dangling_views() -> None:
    ref = notebook({"slider": [view(ID_SLIDER)]}, slider_state(ID_SLIDER, ID_LAYOUT, ID_STYLE))
    ours = notebook({"slider": [view(OTHER_SLIDER)]})
    counts, views = compare_notebooks(ref, ours, ("ipykernel", "ipytwist"))
    assert (counts.where, counts.summary) == (
        "widget state",
        "ipykernel stores 3 widget models, ipytwist 0",
    )
    assert '- "IntSliderModel": 1,' in counts.diff
    assert views.summary == (
        "cell slider: widget views of models not stored: ipykernel 0, ipytwist 1"
    )
    assert report([counts, views], 1).startswith("1 of 1 cells match; 2 mismatches\n== widget")


def test_a_state_that_differs_is_reported() -> None:
    ref = notebook({}, slider_state(ID_SLIDER, ID_LAYOUT, ID_STYLE, value=5))
    ours = notebook({}, slider_state(OTHER_SLIDER, OTHER_LAYOUT, OTHER_STYLE, value=7))
    (mismatch,) = compare_notebooks(ref, ours)
    assert mismatch.summary == "the IntSliderModels' states differ"
    assert '-  "value": 5' in mismatch.diff and '+  "value": 7' in mismatch.diff


def test_a_reference_to_another_kind_of_model_is_a_difference() -> None:
    """Model ids are masked to the name of the model they point to, not away."""
    ref = notebook({}, slider_state(ID_SLIDER, ID_LAYOUT, ID_STYLE))
    swapped = slider_state(OTHER_SLIDER, OTHER_LAYOUT, OTHER_STYLE)
    # the slider's layout now names the style model, and its style the layout model
    swapped[OTHER_LAYOUT], swapped[OTHER_STYLE] = swapped[OTHER_STYLE], swapped[OTHER_LAYOUT]
    (mismatch,) = compare_notebooks(ref, notebook({}, swapped))
    assert "IPY_MODEL_<LayoutModel>" in mismatch.diff
    assert "IPY_MODEL_<SliderStyleModel>" in mismatch.diff


def test_a_diff_stays_short() -> None:
    ref = "\n".join(f"line {i}" for i in range(500)) + "\n" + "x" * 10_000
    ours = "\n".join(f"other {i}" for i in range(500)) + "\n" + "y" * 10_000
    diff = text_diff(ref, ours, "a", "b").splitlines()
    assert len(diff) == DIFF_LINES + 1
    assert diff[-1].endswith("more diff lines")
    assert max(len(line) for line in diff) <= 161
