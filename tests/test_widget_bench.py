"""The widget benchmark's counting core (``bench/benchlib/widgetcount.py``) and its
verdict on a trial (``bench/widget_run.judge``): pure, no server."""

from __future__ import annotations

from typing import Any

import support  # noqa: F401 - puts bench/ on sys.path
from benchlib.frames import pack_v1, unpack_v1
from benchlib.messages import make_message
from benchlib.widgetcount import Summary, Tally, summarize
from widget_run import Trial, judge

REQUEST = "req-1"
SLIDER = "comm-slider"


def iopub(msg_type: str, content: dict[str, Any], parent: str = REQUEST) -> Summary:
    """An iopub message parented to ``parent``, through a v1 frame and back."""
    msg = make_message(msg_type, content, "kernel-session")
    msg["parent_header"] = {"msg_id": parent}
    return summarize(unpack_v1(pack_v1(msg, "iopub")))


def update(value: int, comm_id: str = SLIDER, parent: str = REQUEST) -> Summary:
    data = {"method": "update", "state": {"value": value}, "buffer_paths": []}
    return iopub("comm_msg", {"comm_id": comm_id, "data": data}, parent)


def idle(parent: str = REQUEST) -> Summary:
    return iopub("status", {"execution_state": "idle"}, parent)


def test_summaries_of_the_messages_that_matter() -> None:
    assert update(7) == Summary("iopub", "comm_msg", REQUEST, SLIDER, 7)
    opened = iopub(
        "comm_open",
        {"comm_id": "c2", "target_name": "jupyter.widget", "data": {"state": {"_model_name": "M"}}},
    )
    assert (opened.comm_id, opened.model) == ("c2", "M")
    custom = iopub("comm_msg", {"comm_id": SLIDER, "data": {"method": "custom", "content": {}}})
    assert custom.value is None
    assert idle().idle and not iopub("status", {"execution_state": "busy"}).idle
    notice = "[ipytwist] 896 output messages (1000 bytes) dropped: this client fell behind"
    assert iopub("stream", {"name": "stderr", "text": notice}).gap
    assert not iopub("stream", {"name": "stderr", "text": "a warning"}).gap
    assert not iopub("stream", {"name": "stdout", "text": notice}).gap


def test_done_only_at_the_last_value_and_the_idle() -> None:
    t = Tally(REQUEST, SLIDER, target=2)
    assert not t.feed(update(1), 1.0)
    assert not t.feed(update(2, comm_id="another"), 1.5)  # another widget's value
    assert not t.feed(update(3, parent="other-request"), 1.6)
    assert not t.feed(idle(), 2.0)  # idle before the last value: not done yet
    assert t.feed(update(2), 3.0)
    assert (t.done_at, t.idle_at, t.last_at, t.last) == (3.0, 2.0, 3.0, 2)
    assert not t.feed(update(2), 4.0)  # done once
    assert (t.frames, t.iopub, t.updates, t.backwards, t.seen_at) == (6, 5, 3, 1, 4.0)


def test_values_out_of_order_and_gaps_are_counted() -> None:
    t = Tally(REQUEST, SLIDER, target=5)
    for v in (1, 3, 2, 5):
        t.feed(update(v), 0.0)
    t.feed(iopub("stream", {"name": "stderr", "text": "[ipytwist] 3 output messages dropped"}), 0)
    assert (t.updates, t.backwards, t.gaps, t.last) == (4, 1, 1, 5)
    assert t.feed(idle(), 1.0)


def test_without_a_target_the_idle_ends_it_and_names_the_widgets() -> None:
    t = Tally(REQUEST)
    for cid, model in (("l", "LayoutModel"), ("s", "IntSliderModel")):
        state = {"_model_name": model}
        t.feed(iopub("comm_open", {"comm_id": cid, "data": {"state": state}}), 0.0)
    assert t.feed(idle(), 0.5)
    assert t.widget("IntSliderModel") == "s" and t.widget("FloatSliderModel") is None


def tallies(lasts: list[int | None], idle_at: float | None = 2.0) -> list[Tally]:
    out = []
    for last in lasts:
        t = Tally(REQUEST, SLIDER, target=9)
        if last is not None:
            t.feed(update(last), 1.0)
        if idle_at is not None:
            t.feed(idle(), idle_at)
        out.append(t)
    return out


def test_a_trial_is_timed_to_its_slowest_client() -> None:
    trial = Trial("s", 0, 10, 2, "v1")
    judge(trial, tallies([9, 9]), t0=0.5, ended="done", why="done")
    assert trial.failures == [] and trial.time_s == 1.5
    assert trial.updates_per_s == 1 / 1.5


def test_a_client_short_of_the_last_value_fails_the_trial_loudly() -> None:
    trial = Trial("s", 0, 10, 3, "v1")
    judge(trial, tallies([9, 8, None]), t0=0.0, ended="stalled", why="stalled (20 s)")
    assert trial.time_s is None and trial.updates_per_s is None
    assert trial.received_per_s == 1.0  # counted, lost updates or not (the third: none)
    assert trial.failures == [
        "client 1: last value 8 (want 9), 1 updates, idle seen",
        "client 2: last value None (want 9), 0 updates, idle seen",
        "not every client done: stalled (20 s)",
    ]
    no_idle = Trial("s", 0, 10, 1, "v1")
    judge(no_idle, tallies([9], idle_at=None), t0=0.0, ended="timeout", why="timeout")
    assert no_idle.failures[0] == "client 0: last value 9 (want 9), 1 updates, idle not seen"
