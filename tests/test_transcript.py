"""Transcript: the cells of a kernel as a notebook shows them (pure, no I/O)."""

from __future__ import annotations

from typing import Any

import nbformat
from hypothesis import given
from hypothesis import strategies as st

from ipytwist.kernel.streamtext import StreamOutput, apply_carriage_returns
from ipytwist.kernel.transcript import Transcript
from ipytwist.wire import new_message


def req(code: str, session: str = "s1", **content: Any) -> dict:
    msg = new_message("execute_request", {"code": code, **content}, session)
    msg["header"]["username"] = "ann"
    return msg


def iopub(parent: dict, msg_type: str, **content: Any) -> dict:
    return new_message(msg_type, content, "kernel", parent)


def run(t: Transcript, r: dict, *outputs: dict, count: int = 1) -> None:
    t.apply(iopub(r, "status", execution_state="busy"))
    t.apply(iopub(r, "execute_input", code=r["content"]["code"], execution_count=count))
    for o in outputs:
        t.apply(o)
    t.apply(iopub(r, "status", execution_state="idle"))


def test_cells_from_any_client_in_order_with_state_and_origin() -> None:
    t = Transcript()
    a, b = req("print(1)"), req("1/0", session="s2")
    t.request(a, "zmq")
    t.request(b, "websocket")
    assert [c.state for c in t.cells.values()] == ["queued", "queued"]
    run(t, a, iopub(a, "stream", name="stdout", text="1\n"))
    run(
        t,
        b,
        iopub(b, "error", ename="ZeroDivisionError", evalue="division by zero", traceback=["tb"]),
        count=2,
    )
    cells = t.to_json()["cells"]
    assert [(c["code"], c["state"], c["execution_count"]) for c in cells] == [
        ("print(1)", "done", 1),
        ("1/0", "error", 2),
    ]
    assert cells[0]["origin"] == "zmq" and cells[0]["client"] == "ann@s1"
    assert cells[0]["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "1\n", "hidden_lines": 0}
    ]
    assert t.last_msg_id  # where a page follows on from


def test_silent_requests_and_other_messages_make_no_cells() -> None:
    t = Transcript()
    t.request(req("x", silent=True), "websocket")
    t.request(new_message("complete_request", {"code": "x"}, "s"), "websocket")
    t.apply(iopub(req("y"), "stream", name="stdout", text="orphan"))
    assert t.to_json()["cells"] == []


def test_interrupt_is_its_own_state() -> None:
    t = Transcript()
    r = req("sleep")
    t.request(r, "websocket")
    run(t, r, iopub(r, "error", ename="KeyboardInterrupt", evalue="", traceback=[]))
    assert t.to_json()["cells"][0]["state"] == "interrupted"


def test_carriage_returns_overwrite_the_line_across_messages() -> None:
    """A progress bar drawn with \\r across many messages ends up as its last state."""
    assert apply_carriage_returns("10%\r50%\r100%\n") == "100%\n"
    assert apply_carriage_returns("abc\rX\n") == "Xbc\n"
    assert apply_carriage_returns("a\r\nb") == "a\nb"
    t = Transcript()
    r = req("bar")
    t.request(r, "websocket")
    parts = [iopub(r, "stream", name="stderr", text=f"\r{i:3d}%") for i in range(0, 101, 10)]
    run(t, r, *parts, iopub(r, "stream", name="stderr", text="\ndone\n"))
    assert t.to_json()["cells"][0]["outputs"][0]["text"] == "100%\ndone\n"


def test_clear_output_now_and_on_next_output() -> None:
    t = Transcript()
    r = req("clear")
    t.request(r, "websocket")
    run(
        t,
        r,
        iopub(r, "stream", name="stdout", text="old\n"),
        iopub(r, "clear_output", wait=False),
        iopub(r, "stream", name="stdout", text="mid\n"),
        iopub(r, "clear_output", wait=True),
    )
    assert t.to_json()["cells"][0]["outputs"][0]["text"] == "mid\n"  # wait: not yet
    t.apply(iopub(r, "stream", name="stdout", text="new\n"))
    assert [o["text"] for o in t.to_json()["cells"][0]["outputs"]] == ["new\n"]


def test_update_display_data_replaces_the_output_in_place() -> None:
    t = Transcript()
    r = req("display")
    t.request(r, "websocket")
    shown = {"data": {"text/plain": "v1"}, "metadata": {}, "transient": {"display_id": "d"}}
    run(t, r, iopub(r, "display_data", **shown))
    later = req("update")
    t.request(later, "websocket")
    update = {"data": {"text/plain": "v2"}, "metadata": {}, "transient": {"display_id": "d"}}
    run(t, later, iopub(later, "update_display_data", **update), count=2)
    first, second = t.to_json()["cells"]
    assert first["outputs"][0]["data"] == {"text/plain": "v2"}
    assert second["outputs"] == []


def test_a_long_output_keeps_head_and_tail_with_an_exact_count() -> None:
    t = Transcript(max_lines=10)
    r = req("for i in range(1000): print(i)")
    t.request(r, "websocket")
    text = "".join(f"{i}\n" for i in range(1000))
    run(
        t,
        r,
        *[
            iopub(r, "stream", name="stdout", text=text[i : i + 37])
            for i in range(0, len(text), 37)
        ],
    )
    out = t.to_json()["cells"][0]["outputs"][0]
    assert out["hidden_lines"] == 990
    assert out["text"] == "0\n1\n2\n3\n4\n... [990 lines hidden] ...\n995\n996\n997\n998\n999\n"


def test_memory_is_bounded_by_cells_and_bytes() -> None:
    """Old cells go first when the byte budget is used up; a single huge line is cut."""
    t = Transcript(max_bytes=50_000, max_line_chars=1000)
    for i in range(100):
        r = req(f"cell {i}")
        t.request(r, "websocket")
        run(t, r, iopub(r, "stream", name="stdout", text="z" * 5000 + "\n"))
        assert t.size <= 50_000
    assert t.dropped_cells > 0
    assert list(t.cells.values())[-1].code == "cell 99"
    assert "4000 characters hidden" in t.to_json()["cells"][-1]["outputs"][0]["text"]
    assert t.size == sum(c.size() for c in t.cells.values())


def test_the_transcript_is_a_valid_notebook() -> None:
    t = Transcript()
    a = req("print('hi')\n1")
    t.request(a, "zmq")
    run(
        t,
        a,
        iopub(a, "stream", name="stdout", text="hi\n"),
        iopub(a, "execute_result", data={"text/plain": "1"}, metadata={}, execution_count=1),
    )
    b = req("1/0")
    t.request(b, "websocket")
    run(t, b, iopub(b, "error", ename="ZeroDivisionError", evalue="x", traceback=["t"]), count=2)
    nb = nbformat.from_dict(t.to_notebook())
    nbformat.validate(nb)
    assert [c.source for c in nb.cells] == ["print('hi')\n1", "1/0"]
    assert nb.cells[0].outputs[1].data == {"text/plain": "1"}


@given(
    max_lines=st.integers(2, 12),
    max_line_chars=st.integers(3, 20),
    chunks=st.lists(st.text(alphabet="ab\n\r", max_size=60), max_size=12),
)
def test_stream_output_in_bulk_matches_a_line_by_line_model(
    max_lines: int, max_line_chars: int, chunks: list[str]
) -> None:
    """Lines are taken in bulk (a flood brings thousands per message); what is kept,
    hidden and counted is what a terminal of ``max_lines`` head + tail lines shows."""
    out = StreamOutput("stdout", max_lines, max_line_chars)
    for chunk in chunks:
        out.write(chunk)
    lines = apply_carriage_returns("".join(chunks)).split("\n")
    partial = lines.pop()

    def cut(line: str) -> str:
        if len(line) <= max_line_chars:
            return line
        return f"{line[:max_line_chars]} ... [{len(line) - max_line_chars} characters hidden]"

    lines = [cut(line) for line in lines]
    head_n = max_lines // 2
    tail_n = max_lines - head_n
    head, rest = lines[:head_n], lines[head_n:]
    tail = rest[-tail_n:] if len(rest) > tail_n else rest
    hidden = len(rest) - len(tail)
    assert out.hidden == hidden
    assert out.head == head and list(out.tail) == tail
    assert out.partial == cut(partial)


def test_a_long_line_streamed_in_pieces_is_cut_once_with_an_exact_count() -> None:
    out = StreamOutput("stdout", 10, 5)
    for _ in range(4):
        out.write("abcdef")
    assert out.text() == "abcde ... [19 characters hidden]"
    out.write("gh\nnext\r")
    out.write("N")
    assert out.text() == "abcde ... [21 characters hidden]\nNext"
    out.write("\rabcdefghij\rxy\n")
    assert out.text().endswith("\nxycde ... [5 characters hidden]\n")


def test_the_json_carries_the_limits_the_page_applies() -> None:
    """The page takes the transcript's limits from its JSON instead of keeping copies."""
    t = Transcript(max_cells=7, max_lines=8, max_outputs=9, max_bytes=10_000, max_line_chars=11)
    assert t.to_json()["limits"] == {
        "max_cells": 7,
        "max_outputs": 9,
        "max_lines": 8,
        "max_line_chars": 11,
        "max_bytes": 10_000,
        "max_output_bytes": 2_500,
        "max_widget_bytes": 2_500,
    }
    defaults = Transcript().to_json()["limits"]
    assert (defaults["max_cells"], defaults["max_outputs"]) == (500, 200)
    assert defaults["max_line_chars"] == 10_000
