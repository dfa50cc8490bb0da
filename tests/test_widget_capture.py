"""An Output widget's captured outputs in the transcript: what the request its
``msg_id`` names outputs goes to the widget's ``outputs``, not the cell, as the
frontend's Output model does, so a page opened later shows each output once (pure)."""

from __future__ import annotations

import time
from typing import Any

import ipywidgets
from test_transcript import iopub, req, run
from test_widget_state import opened, recount, updated

from ipytwist.kernel.capture import Captured
from ipytwist.kernel.transcript import Transcript


def output_widget(t: Transcript) -> str:
    out = ipywidgets.Output()
    t.apply(opened(out.model_id, out.get_state()))
    return str(out.model_id)


def capturing(code: str, **kw: Any) -> tuple[Transcript, dict[str, Any], str, str]:
    """A transcript with a request of ``code`` and an Output widget: (the transcript,
    the request, its msg_id, the widget's model id)."""
    t = Transcript(**kw)
    r = req(code)
    t.request(r, "websocket")
    return t, r, r["header"]["msg_id"], output_widget(t)


def outputs_of(t: Transcript, model_id: str) -> Any:
    return t.to_json()["widgets"]["state"][model_id]["state"]["outputs"]


def cell_outputs(t: Transcript) -> list[dict[str, Any]]:
    (cell,) = t.to_json()["cells"]
    return list(cell["outputs"])


def test_with_out_its_outputs_go_to_the_widget_and_after_it_to_the_cell() -> None:
    """``with out: print(...); display(...)`` then a print after the block."""
    t, r, rid, model_id = capturing("with out: ...")
    run(
        t,
        r,
        updated(model_id, {"msg_id": rid}),
        iopub(r, "stream", name="stdout", text="captured "),
        iopub(r, "stream", name="stdout", text="twice\n"),
        iopub(r, "display_data", data={"text/plain": "42"}, metadata={}),
        updated(model_id, {"msg_id": ""}),
        iopub(r, "stream", name="stdout", text="to the cell\n"),
    )
    assert outputs_of(t, model_id) == [
        {"output_type": "stream", "name": "stdout", "text": "captured twice\n"},
        {"output_type": "display_data", "data": {"text/plain": "42"}, "metadata": {}},
    ]
    outputs = cell_outputs(t)
    assert [o["output_type"] for o in outputs] == ["stream"]
    assert outputs[0]["text"] == "to the cell\n"


def test_clear_output_inside_the_widget_clears_it_and_wait_clears_before_the_next() -> None:
    t, r, rid, model_id = capturing("out.clear_output()")
    run(
        t,
        r,
        updated(model_id, {"msg_id": rid}),
        iopub(r, "stream", name="stdout", text="old\n"),
        iopub(r, "clear_output", wait=True),
    )
    assert outputs_of(t, model_id)[0]["text"] == "old\n"
    run(t, r, iopub(r, "stream", name="stderr", text="new\n"))
    assert outputs_of(t, model_id) == [{"output_type": "stream", "name": "stderr", "text": "new\n"}]
    run(t, r, iopub(r, "clear_output", wait=False))
    assert outputs_of(t, model_id) == []
    assert cell_outputs(t) == []


def test_a_frontend_that_syncs_outputs_back_replaces_what_was_captured() -> None:
    t, r, rid, model_id = capturing("with out: print(1)")
    shown = [{"output_type": "stream", "name": "stdout", "text": "1\n"}]
    run(
        t,
        r,
        updated(model_id, {"msg_id": rid}),
        iopub(r, "stream", name="stdout", text="1\n"),
        updated(model_id, {"outputs": shown}, method="echo_update"),
    )
    assert outputs_of(t, model_id) == shown
    assert t.widgets.models[model_id].captured is None
    assert t.widgets.size == recount(t.widgets)  # the captured bytes are no longer counted


def test_a_widget_that_captures_a_flood_stays_within_its_bound_in_linear_time() -> None:
    """100,000 prints of 100 bytes into one Output widget: its captured text stays
    within half the widget store's bound, the newest text kept; time per print flat."""
    t, r, _, model_id = capturing(
        "with out: for i in range(100_000): print(...)", max_bytes=1 << 20
    )
    run(t, r, updated(model_id, {"msg_id": r["header"]["msg_id"]}))
    line = "x" * 99 + "\n"
    took, done = [], 0
    for n in (10_000, 90_000):
        start = time.perf_counter()
        for i in range(done, done + n):
            t.apply(iopub(r, "stream", name="stdout", text=f"{i:06d}{line}"))
        took.append((time.perf_counter() - start) / n)
        done += n
        assert t.widgets.size <= t.widgets.max_bytes
    assert took[1] < 3 * took[0], took
    (stream,) = outputs_of(t, model_id)
    assert stream["text"].endswith(f"099999{line}")
    assert 0 < len(stream["text"]) <= t.widgets.max_bytes // 2
    assert cell_outputs(t) == []


def test_captured_outputs_alone_keep_the_newest_within_the_bound() -> None:
    c = Captured(max_bytes=4096)
    for i in range(100):
        c.add("display_data", {"data": {"text/plain": f"{i}" * 50}, "metadata": {}})
    assert c.size <= 4096
    assert c.to_json()[-1]["data"]["text/plain"] == "99" * 50
    assert len(c.to_json()) < 100
