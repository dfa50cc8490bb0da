"""The transcript's byte bound under the worst outputs, and every transcript operation in
time proportional to its own message (pure, no I/O)."""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import nbformat
from hypothesis import given, settings
from hypothesis import strategies as st
from test_transcript import iopub, req, run

from ipytwist.kernel.outputs import ITEM_OVERHEAD, OUTPUT_OVERHEAD, data_bytes
from ipytwist.kernel.streamtext import (
    LINE_OVERHEAD,
    CarriageReturns,
    StreamOutput,
    apply_carriage_returns,
)
from ipytwist.kernel.transcript import DEFAULT_MAX_BYTES, MIN_BYTES, Transcript

MIB = 1024 * 1024
#: What the cases that ran for seconds before must now take, at most (they take
#: milliseconds; the margin is for a loaded machine).
FAST_SECONDS = 1.0


def quadratic_model(text: str) -> str:
    """Carriage returns applied as they were before: one copy of the line per ``\\r``."""
    out = []
    for line in text.replace("\r\n", "\n").split("\n"):
        parts = line.split("\r")
        shown = parts[0]
        for part in parts[1:]:
            shown = part + shown[len(part) :]
        out.append(shown)
    return "\n".join(out)


def display(parent: dict, nbytes: int = 10, display_id: str | None = None, **kw: Any) -> dict:
    transient = {"display_id": display_id} if display_id else {}
    data = {"text/plain": "x" * nbytes}
    return iopub(parent, "display_data", data=data, metadata={}, transient=transient, **kw)


def update(parent: dict, display_id: str, text: str) -> dict:
    data = {"text/plain": text}
    transient = {"display_id": display_id}
    return iopub(parent, "update_display_data", data=data, metadata={}, transient=transient)


def recount(t: Transcript) -> int:
    return sum(c.size() for c in t.cells.values())


# -- item 1: an output over the bound is kept as a placeholder --------------------------


def test_an_image_larger_than_the_bound_is_a_placeholder_that_says_what_it_was() -> None:
    """30 MiB of PNG against the default 16 MiB: the transcript kept all of it before."""
    t = Transcript()
    r = req("display(big)")
    t.request(r, "websocket")
    png = base64.b64encode(b"\x89PNG" + bytes(30 * MIB)).decode()
    big = {"image/png": png, "text/plain": "<Figure>"}
    run(t, r, iopub(r, "display_data", data=big, metadata={"image/png": {"width": 9}}))
    assert t.size <= DEFAULT_MAX_BYTES, t.size
    (out,) = t.to_json()["cells"][0]["outputs"]
    note = out["metadata"]["ipytwist"]["omitted"]
    assert note["mime_types"] == ["image/png", "text/plain"]
    assert len(png) < note["bytes"] < len(png) + 200 and note["whole"]
    assert note["max_output_bytes"] == t.max_output_bytes == DEFAULT_MAX_BYTES // 4
    text = out["data"]["text/plain"]
    assert f"{note['bytes']:,} bytes (image/png, text/plain)" in text
    assert "output log" in text and "running the cell again" in text
    assert set(out["data"]) == {"text/plain"}
    nbformat.validate(nbformat.from_dict(t.to_notebook()))


def test_a_large_result_update_and_error_keep_within_their_share() -> None:
    t = Transcript(max_bytes=MIN_BYTES)
    share = t.max_output_bytes
    r = req("big")
    t.request(r, "websocket")
    huge = "é" * share  # 2 bytes a character
    run(
        t,
        r,
        iopub(r, "execute_result", data={"text/plain": huge}, metadata={}, execution_count=1),
        display(r, 10, "d"),
        update(r, "d", huge),
        iopub(r, "error", ename="E" * 5000, evalue=huge, traceback=[huge] * 50 + ["last"]),
    )
    result, shown, error = t.to_json()["cells"][0]["outputs"]
    assert result["execution_count"] == 1 and "omitted" in result["metadata"]["ipytwist"]
    assert shown["transient"] == {"display_id": "d"}
    assert re.search(r": 32,\d\d\d bytes \(text/plain\)", shown["data"]["text/plain"])
    assert error["ename"].startswith("EEE") and "characters hidden" in error["ename"]
    assert "characters hidden" in error["evalue"]
    assert error["traceback"][-1] == "last" and "lines hidden" in " ".join(error["traceback"])
    for output in t.cells[r["header"]["msg_id"]].outputs:
        assert output.size <= share  # type: ignore[union-attr]  # every kind has a size
    assert t.size == recount(t) <= t.max_bytes


def test_structured_data_counts_every_item_and_stops_counting_past_the_share() -> None:
    """A list of 10 million numbers has no string to count: it was kept whole before."""
    t = Transcript(max_bytes=MIN_BYTES)
    r = req("json")
    t.request(r, "websocket")
    numbers = {"application/json": list(range(10_000_000))}
    started = time.perf_counter()
    run(t, r, iopub(r, "display_data", data=numbers, metadata={"k" * 20_000: 1}))
    assert time.perf_counter() - started < FAST_SECONDS / 2
    (out,) = t.to_json()["cells"][0]["outputs"]
    note = out["metadata"]["ipytwist"]["omitted"]
    assert note["mime_types"] == ["application/json"] and not note["whole"]
    assert "more than" in out["data"]["text/plain"]
    assert t.size == recount(t) <= t.max_bytes
    # An entry, its key, three items and two values that are not strings (16 bytes each).
    assert data_bytes({"ab": [1, "é", None]}, MIB) == (ITEM_OVERHEAD * 6 + 2 + 2, True)


def test_ids_longer_than_ids_are_not_kept() -> None:
    t = Transcript()
    long_id = req("x")
    long_id["header"]["msg_id"] = "m" * 2000
    t.request(long_id, "websocket")
    assert t.cells == {}
    r = req("y")
    t.request(r, "websocket")
    run(t, r, display(r, 5, "d" * 2000), display(r, 5, "d" * 10))
    first, second = t.to_json()["cells"][0]["outputs"]
    assert "transient" not in first and second["transient"] == {"display_id": "d" * 10}
    assert t.size == recount(t)


def test_code_is_cut_in_utf8_bytes() -> None:
    t = Transcript(max_bytes=MIN_BYTES)
    t.request(req("€" * MIN_BYTES), "websocket")
    (cell,) = t.cells.values()
    assert len(cell.code.encode()) <= t.max_output_bytes < len(cell.code) * 3 + 3
    assert t.size == recount(t)


def test_a_stream_of_long_lines_keeps_its_head_and_tail_within_its_share() -> None:
    """2,000 kept lines of 10,000 characters were 20 MB against a 16 MiB bound."""
    t = Transcript()
    r = req("for i in range(5000): print(str(i) * 10_000)")
    t.request(r, "websocket")
    run(
        t, r, *[iopub(r, "stream", name="stdout", text=f"{i}" * 10_000 + "\n") for i in range(5000)]
    )
    (out,) = t.to_json()["cells"][0]["outputs"]
    lines = out["text"].split("\n")
    assert lines[0].startswith("0000") and lines[-2].startswith("4999")
    kept = len(lines) - 2  # the marker line, and "" after the last newline
    assert out["hidden_lines"] == 5000 - kept
    assert t.size == recount(t) <= t.max_output_bytes + 1024


# -- a property: the bound holds at every moment, and the count is exact ------------------

texts = st.text(alphabet="ab\né\r\x00", max_size=3000)
#: Up to twice the largest bound drawn: every output may be over it alone.
sizes = st.integers(0, 8 * MIN_BYTES)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("cell"), st.text(alphabet="cé", max_size=40_000)),
        st.tuples(st.just("stream"), st.sampled_from(["stdout", "stderr"]), texts),
        st.tuples(st.just("lines"), st.integers(1, 30), st.integers(0, 20_000)),
        st.tuples(st.just("display"), sizes, st.sampled_from(["", "a", "b"])),
        st.tuples(st.just("update"), st.sampled_from(["a", "b", "c"]), sizes),
        st.tuples(st.just("clear"), st.booleans()),
        st.tuples(st.just("error"), sizes),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(ops=ops, max_bytes=st.integers(MIN_BYTES, 4 * MIN_BYTES))
def test_the_byte_bound_holds_after_every_message(ops: list[tuple], max_bytes: int) -> None:
    t = Transcript(max_bytes=max_bytes, max_outputs=7, max_cells=5, max_lines=20)
    r = req("start")
    t.request(r, "websocket")
    for op in ops:
        kind = op[0]
        if kind == "cell":
            r = req(op[1])
            t.request(r, "websocket")
            t.apply(iopub(r, "execute_input", code="", execution_count=1))
        elif kind == "stream":
            t.apply(iopub(r, "stream", name=op[1], text=op[2]))
        elif kind == "lines":
            t.apply(iopub(r, "stream", name="stdout", text=("é" * op[2] + "\n") * op[1]))
        elif kind == "display":
            t.apply(display(r, op[1], op[2] or None))
        elif kind == "update":
            t.apply(update(r, op[1], "u" * op[2]))
        elif kind == "clear":
            t.apply(iopub(r, "clear_output", wait=op[1]))
        else:
            t.apply(iopub(r, "error", ename="E", evalue="v" * op[1], traceback=["t"] * 9))
        assert t.size == recount(t)
        assert t.size <= max_bytes


@given(
    chunks=st.lists(st.text(alphabet="ab\né\r", max_size=200), max_size=30),
    budget=st.integers(300, 3000),
)
def test_a_stream_counts_its_bytes_exactly_and_keeps_its_budget(
    chunks: list[str], budget: int
) -> None:
    out = StreamOutput("stdout", 12, 20, budget)
    for chunk in chunks:
        out.write(chunk)
        partial = re.sub(r" \.\.\. \[\d+ characters hidden\]$", "", out.partial)
        lines = [*out.head, *out.tail]
        counted = sum(len(x.encode()) + LINE_OVERHEAD for x in lines) + len(partial.encode())
        assert out.size == counted <= budget


# -- item 2: update_display_data, clear_output: the cost of their own message -----------


def fill(t: Transcript, cells: int = 200, displays: int = 200) -> dict:
    for c in range(cells):
        r = req(f"cell {c}")
        t.request(r, "websocket")
        t.apply(iopub(r, "execute_input", code="", execution_count=c))
        for _ in range(displays):
            t.apply(display(r))
    return r


def test_updates_for_unknown_display_ids_do_not_scan_the_transcript() -> None:
    """200 cells of 200 displays, then 500 updates for ids nobody shows: 3.9 s before."""
    t = Transcript()
    r = fill(t)
    started = time.perf_counter()
    for u in range(500):
        t.apply(update(r, f"unknown-{u}", "x"))
    assert time.perf_counter() - started < FAST_SECONDS / 10


def test_an_update_replaces_every_output_of_its_display_in_time_of_its_own() -> None:
    """10,000 outputs of one display id, then 1,000 updates: each is one assignment."""
    t = Transcript(max_outputs=20_000)
    r = req("many")
    t.request(r, "websocket")
    for _ in range(10_000):
        t.apply(display(r, 5, "d"))
    t.apply(display(r, 5, "other"))
    started = time.perf_counter()
    for u in range(1000):
        t.apply(update(r, "d", f"v{u}"))
    assert time.perf_counter() - started < FAST_SECONDS / 10
    outputs = t.to_json()["cells"][0]["outputs"]
    assert {o["data"]["text/plain"] for o in outputs[:-1]} == {"v999"}
    assert outputs[-1]["data"]["text/plain"] == "x" * 5
    (cell,) = t.cells.values()
    shown = data_bytes(({"text/plain": "v999"}, {}), MIB)[0] + OUTPUT_OVERHEAD + len("d")
    other = data_bytes(({"text/plain": "xxxxx"}, {}), MIB)[0] + OUTPUT_OVERHEAD + len("other")
    assert t.size == recount(t) == cell.own_size() + 10_000 * shown + other


def test_a_display_shown_again_keeps_its_own_data_until_the_next_update() -> None:
    t = Transcript()
    a, b = req("a"), req("b")
    t.request(a, "websocket")
    run(t, a, display(a, 1, "d"), update(a, "d", "updated"))
    t.request(b, "websocket")
    run(t, b, display(b, 2, "d"))
    shown = [c["outputs"][0]["data"]["text/plain"] for c in t.to_json()["cells"]]
    assert shown == ["updated", "xx"]
    t.apply(update(b, "d", "both"))
    assert [c["outputs"][0]["data"]["text/plain"] for c in t.to_json()["cells"]] == ["both"] * 2
    t.apply(iopub(a, "clear_output", wait=False))
    t.apply(update(b, "d", "last"))
    assert [len(c["outputs"]) for c in t.to_json()["cells"]] == [0, 1]
    assert t.size == recount(t)
    t.clear()
    t.apply(update(b, "d", "nobody"))
    assert t.size == 0 and t.to_json()["cells"] == []


def test_a_request_id_used_again_makes_a_new_cell_and_forgets_the_old() -> None:
    t = Transcript()
    first = req("first")
    t.request(first, "websocket")
    run(t, first, display(first, 100, "d"))
    again = req("again")
    again["header"]["msg_id"] = first["header"]["msg_id"]
    t.request(again, "zmq")
    assert [c.code for c in t.cells.values()] == ["again"]
    t.apply(update(again, "d", "nobody shows it now"))
    (cell,) = t.cells.values()
    assert t.size == recount(t) == cell.own_size()


# -- item 3: carriage returns, linear in the text ----------------------------------------


def test_carriage_returns_after_a_long_line_are_linear() -> None:
    """A 1 MB line, then 100,000 ``'\\ry'``: 5.1 s before (a copy of the line each)."""
    text = "x" * MIB + "\ry" * 100_000
    started = time.perf_counter()
    shown = apply_carriage_returns(text)
    pieces = CarriageReturns()
    fed = [p for i in range(0, len(text), 4096) for p in pieces.feed(text[i : i + 4096])]
    fed += pieces.finish()
    out = StreamOutput("stdout", 2000, 10_000)
    for i in range(0, len(text), 65536):
        out.write(text[i : i + 65536])
    assert time.perf_counter() - started < FAST_SECONDS
    assert shown == "".join(fed) == "y" + "x" * (MIB - 1)
    assert out.partial == "y" + "x" * 9_999 + f" ... [{MIB - 10_000} characters hidden]"


@given(text=st.text(alphabet="ab\r\n", max_size=80), cuts=st.lists(st.integers(0, 80)))
def test_carriage_returns_fed_in_pieces_show_what_a_terminal_shows(
    text: str, cuts: list[int]
) -> None:
    assert apply_carriage_returns(text) == quadratic_model(text)
    pieces = CarriageReturns()
    shown: list[str] = []
    last = 0
    for cut in sorted(cuts):
        shown += pieces.feed(text[last:cut])
        last = max(last, cut)
    shown += pieces.feed(text[last:])
    assert "".join(shown + pieces.finish()) == quadratic_model(text)
