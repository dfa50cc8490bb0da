"""The kernel's widget models in its transcript: comm_open, update, echo_update, buffers
at their paths, comm_close, a restart, the byte bound, and malformed messages (pure, no
I/O).  The messages are built as ipywidgets 8 and the kernel publish them."""

from __future__ import annotations

import base64
import copy
import json
import time
from typing import Any

import ipywidgets
import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ipywidgets.widgets.widget import Widget, _remove_buffers
from test_transcript import iopub, req, run

from ipytwist.kernel.ipynb import WIDGET_STATE_MIME
from ipytwist.kernel.outputs import OUTPUT_OVERHEAD, data_bytes
from ipytwist.kernel.streamtext import text_bytes
from ipytwist.kernel.transcript import MIN_BYTES, Transcript
from ipytwist.kernel.widgets import MODEL_OVERHEAD, WidgetStore
from ipytwist.wire import new_message

KERNEL = {"header": {"msg_id": "cell-1", "msg_type": "execute_request"}}
STATE = {"_model_name": "IntSliderModel", "_model_module": "@jupyter-widgets/controls"}
STATE["_model_module_version"] = "2.0.0"


def comm(msg_type: str, content: dict[str, Any], buffers: list[bytes] | None = None) -> dict:
    """An iopub comm message of the kernel, parented on a cell as ipykernel's are."""
    return new_message(msg_type, content, "kernel", KERNEL, buffers=buffers)


def opened(model_id: str, state: dict[str, Any], target: str = "jupyter.widget") -> dict:
    """``comm_open`` as ``Widget.open`` sends it: the state's bytes as buffers."""
    kept, paths, buffers = _remove_buffers(state)
    data = {"state": json.loads(json.dumps(kept)), "buffer_paths": paths}  # as on the wire
    content = {"comm_id": model_id, "target_name": target, "data": data}
    return comm("comm_open", {**content, "metadata": {"version": "2.1.0"}}, buffers)


def updated(model_id: str, state: dict[str, Any], method: str = "update") -> dict:
    """``comm_msg`` as ``send_state`` (``update``) or ``set_state`` (``echo_update``)."""
    kept, paths, buffers = _remove_buffers(state)
    data = {"method": method, "state": json.loads(json.dumps(kept)), "buffer_paths": paths}
    return comm("comm_msg", {"comm_id": model_id, "data": data}, buffers)


def closed(model_id: str) -> dict:
    return comm("comm_close", {"comm_id": model_id, "data": {}})


def feed(t: Transcript, *msgs: dict) -> None:
    for msg in msgs:
        t.apply(msg)


def recount(store: WidgetStore) -> int:
    """The store's size worked out afresh from what it holds."""
    return sum(
        MODEL_OVERHEAD + text_bytes(i) + data_bytes(m.state, 1 << 62)[0]
        for i, m in store.models.items()
    )


def test_models_opened_by_ipywidgets_are_the_state_it_embeds() -> None:
    """Real widgets' comm_open messages give the document ``get_manager_state`` writes."""
    box = ipywidgets.VBox([ipywidgets.IntSlider(5, description="n"), ipywidgets.Text("hi")])
    widgets = [box, *box.children, *(w.layout for w in [box, *box.children])]
    widgets += [c.style for c in box.children]
    t = Transcript()
    feed(t, *(opened(w.model_id, w.get_state()) for w in widgets))
    expected = json.loads(json.dumps(Widget.get_manager_state(widgets=widgets)))
    assert t.to_json()["widgets"] == expected
    assert len(expected["state"]) == 8
    assert t.size == t.widgets.size == recount(t.widgets) > 8 * MODEL_OVERHEAD


def test_update_and_echo_update_merge_a_partial_state_and_others_are_passed_over() -> None:
    t = Transcript()
    feed(t, opened("s", {**STATE, "value": 5, "max": 100}), opened("c", {"x": 1}, "other"))
    feed(t, updated("s", {"value": 7}), updated("s", {"value": 9}, "echo_update"))
    custom = {"comm_id": "s", "data": {"method": "custom", "content": {"event": "click"}}}
    feed(t, comm("comm_msg", custom), updated("c", {"x": 2}), updated("nobody", {"x": 3}))
    state = t.to_json()["widgets"]["state"]
    assert list(state) == ["s"]  # a comm of another target is no widget model
    assert state["s"]["state"] == {**STATE, "value": 9, "max": 100}
    assert state["s"]["model_name"] == "IntSliderModel"
    assert t.widgets.size == recount(t.widgets)


def test_buffers_go_back_at_their_paths_and_come_out_as_base64_with_them() -> None:
    t = Transcript()
    state = {**STATE, "x": {"ar": b"\x00\x01\x02", "shape": [3]}, "y": [b"abc", 1, b"\xff"]}
    msg = opened("p", state)
    sent = copy.deepcopy(msg)
    t.apply(msg)
    assert msg == sent  # the published message is not changed (other readers share it)
    assert t.widgets.models["p"].state["y"] == [b"abc", 1, b"\xff"]
    entry = t.to_json()["widgets"]["state"]["p"]
    assert entry["state"] == {**STATE, "x": {"shape": [3]}, "y": [None, 1, None]}
    assert entry["buffers"] == [
        {"encoding": "base64", "path": p, "data": base64.b64encode(b).decode()}
        for p, b in ((["x", "ar"], b"\x00\x01\x02"), (["y", 0], b"abc"), (["y", 2], b"\xff"))
    ]
    # A partial update's buffer replaces the old one; a plain value replaces a buffer.
    feed(t, updated("p", {"x": {"ar": b"new"}}), updated("p", {"y": [0, 1, 2]}))
    entry = t.to_json()["widgets"]["state"]["p"]
    assert entry["buffers"] == [{"encoding": "base64", "path": ["x", "ar"], "data": "bmV3"}]
    assert entry["state"]["y"] == [0, 1, 2]
    assert t.widgets.size == recount(t.widgets)


def test_close_removes_a_model_and_a_restart_removes_them_all() -> None:
    t = Transcript()
    r = req("w = IntSlider()")
    t.request(r, "page")
    run(t, r, opened("a", STATE), opened("b", STATE), opened("c", STATE), closed("b"))
    assert list(t.widgets.models) == ["a", "c"]
    cells_only = t.size - t.widgets.size
    t.apply(iopub(r, "status", execution_state="restarting"))
    assert t.widgets.models == {} and t.widgets.size == 0
    assert t.size == cells_only and len(t.cells) == 1
    assert t.to_json()["widgets"] == {"state": {}, "version_major": 2, "version_minor": 0}
    feed(t, updated("a", {"value": 1}), closed("c"))  # late messages of the old models
    assert t.widgets.models == {}


def test_clearing_the_transcript_keeps_the_live_widgets() -> None:
    t = Transcript()
    feed(t, opened("a", {**STATE, "value": 1}))
    t.clear()
    assert list(t.widgets.models) == ["a"] and t.size == t.widgets.size > 0


def test_the_document_is_a_snapshot() -> None:
    t = Transcript()
    feed(t, opened("a", {**STATE, "value": 1, "data": b"old"}))
    before = t.to_json()
    feed(t, updated("a", {"value": 2, "data": b"new"}), opened("b", STATE))
    assert before["widgets"]["state"]["a"]["state"]["value"] == 1
    assert list(before["widgets"]["state"]) == ["a"]
    assert before["widgets"]["state"]["a"]["buffers"][0]["data"] == "b2xk"


def updates_timed(models: int, msgs: list[dict]) -> float:
    """100,000 updates of one widget among ``models`` others: the seconds they took."""
    t = Transcript(max_bytes=256 * 1024 * 1024)
    for i in range(models):
        t.apply(comm("comm_open", {"comm_id": f"m{i}", "target_name": "jupyter.widget",
                                   "data": {"state": STATE}}))  # fmt: skip
    feed(t, opened("s", {**STATE, "value": 0, "description": "n"}))
    size = t.size
    started = time.perf_counter()
    feed(t, *msgs)
    taken = time.perf_counter() - started
    assert t.widgets.models["s"].state["value"] == 99_999
    assert t.size == size and len(t.widgets.models) == models + 1 and t.widgets.dropped == 0
    return taken


def test_a_widget_set_100000_times_keeps_one_state_in_time_not_growing_with_models() -> None:
    msgs = [
        updated("s", {"value": i}, "echo_update" if i % 2 else "update") for i in range(100_000)
    ]
    alone = updates_timed(0, msgs)
    among = updates_timed(20_000, msgs)
    assert alone < 10.0, alone  # 0.6 s here
    assert among < 3 * alone + 0.5, (alone, among)  # one pass over the models each: 10^4 x


def test_past_the_bound_the_oldest_models_go_and_the_transcript_says_so() -> None:
    t = Transcript(max_bytes=MIN_BYTES)
    bound = t.widgets.max_bytes
    assert bound == MIN_BYTES // 4
    for i in range(200):
        t.apply(opened(f"m{i}", {**STATE, "text": "x" * 200}))
        assert t.widgets.size <= bound and t.widgets.size == recount(t.widgets)
    kept = list(t.widgets.models)
    assert kept == [f"m{i}" for i in range(200 - len(kept), 200)]  # the newest
    body = t.to_json()
    assert body["dropped_widgets"] == 200 - len(kept) > 150
    assert body["limits"]["max_widget_bytes"] == bound
    # A model that grows past the bound on its own goes at once; the others stay.
    t.apply(updated(kept[-1], {"text": "y" * bound}))
    assert kept[-1] not in t.widgets.models and list(t.widgets.models) == kept[:-1]
    t.apply(opened("huge", {**STATE, "data": bytes(bound)}))
    assert "huge" not in t.widgets.models and t.widgets.size <= bound


def test_cells_and_widgets_together_stay_within_max_bytes() -> None:
    """The worst cell (code and one output of a quarter each) beside full widgets."""
    t = Transcript(max_bytes=MIN_BYTES)
    for i in range(50):
        t.apply(opened(f"m{i}", {**STATE, "text": "é" * 1000}))
        r = req("c" * t.max_output_bytes)
        t.request(r, "page")
        big = {"text/plain": "x" * (t.max_output_bytes - OUTPUT_OVERHEAD - 100)}
        run(t, r, iopub(r, "display_data", data=big, metadata={}), count=i)
        assert t.size <= t.max_bytes, (i, t.size)
    assert t.widgets.size > t.widgets.max_bytes - 3000 and len(t.cells) == 1
    (cell,) = t.to_json()["cells"]
    assert len(cell["code"]) == t.max_output_bytes
    assert cell["outputs"][0]["data"]["text/plain"] == big["text/plain"]  # kept whole


MALFORMED = [
    ("comm_open", {"target_name": "jupyter.widget", "data": {"state": STATE}}, []),
    ("comm_open", {"comm_id": 7, "target_name": "jupyter.widget", "data": {"state": STATE}}, []),
    ("comm_open", {"comm_id": "x" * 1025, "target_name": "jupyter.widget", "data": {}}, []),
    ("comm_open", {"comm_id": "a", "target_name": "jupyter.widget", "data": "s3cret"}, []),
    ("comm_open", {"comm_id": "a", "target_name": "jupyter.widget", "data": {"state": {}}}, []),
    ("comm_msg", {"comm_id": "m", "data": {"method": "update", "state": ["s3cret"]}}, []),
    ("comm_msg", {"comm_id": "m", "data": {"method": "update", "state": {}}}, [b"s3cret"]),
    ("comm_msg", {"comm_id": "m", "data": {"method": "update", "state": {}, "buffer_paths": [[]]}},
     [b"s3cret"]),
    ("comm_msg", {"comm_id": "m", "data": {"method": "update", "state": {"a": 1},
                                           "buffer_paths": [["a", "b"]]}}, [b"s3cret"]),
    ("comm_msg", {"comm_id": "m", "data": {"method": "update", "state": {"a": [1]},
                                           "buffer_paths": [["a", 5]]}}, [b"s3cret"]),
    ("comm_msg", {"comm_id": "m", "data": {"method": "update", "state": {"a": [1]},
                                           "buffer_paths": [["a", True]]}}, [b"s3cret"]),
    ("comm_msg", {"comm_id": "m", "data": {"method": "update", "state": {},
                                           "buffer_paths": "s3cret"}}, []),
    ("comm_msg", {"comm_id": "m", "data": {"method": "update", "state": {},
                                           "buffer_paths": [["a"]]}}, [10**12]),
    ("comm_close", {"data": {}}, []),
]  # fmt: skip


@pytest.mark.parametrize(("msg_type", "content", "buffers"), MALFORMED)
def test_a_malformed_widget_message_is_ignored_with_one_line(
    msg_type: str, content: dict, buffers: list
) -> None:
    lines: list[str] = []
    t = Transcript()
    t.widgets.warn = lines.append
    feed(t, opened("m", {**STATE, "value": 1}))
    before, size = t.to_json()["widgets"], t.size
    t.apply(comm(msg_type, content, buffers))
    assert t.to_json()["widgets"] == before and t.size == size
    assert len(lines) == 1 and lines[0].startswith(msg_type + ": "), lines
    assert "s3cret" not in lines[0] and len(lines[0]) < 120


def test_the_notebook_carries_the_widget_state_as_store_widget_state_does() -> None:
    t = Transcript()
    r = req("IntSlider(5)")
    t.request(r, "page")
    view = {"application/vnd.jupyter.widget-view+json": {"model_id": "s", "version_major": 2}}
    run(t, r, opened("s", {**STATE, "value": 5, "png": b"\x89PNG"}),
        iopub(r, "execute_result", data=view, metadata={}, execution_count=1))  # fmt: skip
    t.apply(updated("s", {"value": 6}, "echo_update"))
    nb = t.to_notebook()
    nbformat.validate(nbformat.from_dict(nb))
    assert nb["metadata"]["widgets"] == {WIDGET_STATE_MIME: t.to_json()["widgets"]}
    stored = nb["metadata"]["widgets"][WIDGET_STATE_MIME]["state"]["s"]
    assert stored["state"]["value"] == 6 and stored["buffers"][0]["path"] == ["png"]
    t.apply(closed("s"))
    assert "widgets" not in t.to_notebook()["metadata"]  # none live: none stored


OPS = st.lists(
    st.tuples(
        st.sampled_from(["open", "update", "echo", "close", "restart"]),
        st.sampled_from(["a", "b", "c", "d"]),
        st.sampled_from(["value", "text", "data"]),
        st.one_of(st.integers(), st.text(max_size=300), st.binary(max_size=300)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(OPS, st.sampled_from([12_000, 1 << 30]))
def test_any_sequence_keeps_the_latest_state_within_the_bound(ops: list, max_bytes: int) -> None:
    """Against a plain model: merged states, closes and restarts; under a small bound,
    every model kept holds its latest state and the count is exact."""
    t = Transcript(max_bytes=max_bytes)
    live: dict[str, dict[str, Any]] = {}
    for op, model_id, key, value in ops:
        if op == "open":
            live[model_id] = {**STATE, key: value}
            t.apply(opened(model_id, live[model_id]))
        elif op in ("update", "echo"):
            if model_id in live:
                live[model_id][key] = value
            t.apply(updated(model_id, {key: value}, "update" if op == "update" else "echo_update"))
        elif op == "close":
            live.pop(model_id, None)
            t.apply(closed(model_id))
        else:
            live.clear()
            t.apply(iopub(KERNEL, "status", execution_state="restarting"))
        store = t.widgets
        assert store.size == recount(store) <= store.max_bytes
        assert t.size == store.size
        for kept_id, model in store.models.items():
            assert model.state == live[kept_id]
    if max_bytes > 12_000:
        assert {i: m.state for i, m in t.widgets.models.items()} == live


def test_the_document_is_the_one_nbclient_stores_from_the_same_messages() -> None:
    """nbclient's ``store_widget_state`` fed the same iopub messages writes the same
    document (a slider, an image with a buffer, a box; opens, updates, echoes)."""
    from nbclient import NotebookClient

    slider, image = ipywidgets.IntSlider(5), ipywidgets.Image(value=b"\x89PNG\r\n", width=30)
    box = ipywidgets.HBox([slider, image])
    widgets = [box, slider, image, slider.style, *(w.layout for w in (box, slider, image))]
    msgs = [opened(w.model_id, w.get_state()) for w in widgets]
    msgs += [updated(slider.model_id, {"value": v}) for v in range(6, 9)]
    msgs += [updated(image.model_id, {"value": b"GIF89a", "width": "40"}, "echo_update")]
    msgs += [updated(slider.model_id, {"description": "n"}, "echo_update")]
    t = Transcript()
    client = NotebookClient(nbformat.v4.new_notebook())
    for msg in msgs:
        t.apply(msg)
        client.handle_comm_msg([], msg, 0)
    client.set_widgets_metadata()
    stored = client.nb.metadata.widgets[WIDGET_STATE_MIME]
    assert t.to_json()["widgets"] == stored
    assert stored["state"][image.model_id]["buffers"][0]["data"] == "R0lGODlh"
    assert t.to_notebook()["metadata"]["widgets"][WIDGET_STATE_MIME] == stored
