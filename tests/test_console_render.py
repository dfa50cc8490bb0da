"""The console's rendering of kernel messages (pure: message in, terminal text out)."""

from __future__ import annotations

from typing import Any

from ipytwist.console.render import Renderer
from ipytwist.wire import new_message


def msg(msg_type: str, session: str = "me", **content: Any) -> dict[str, Any]:
    parent = new_message("execute_request", {}, session)
    parent["header"]["username"] = "ann"
    return new_message(msg_type, content, "kernel", parent)


def test_results_streams_and_errors_look_like_ipython() -> None:
    r = Renderer("me", color=False)
    assert r.render(msg("stream", name="stdout", text="a\r b")) == "a\r b"
    assert r.render(msg("execute_result", execution_count=3, data={"text/plain": "42"})) == (
        "Out[3]: 42\n"
    )
    multi = r.render(msg("execute_result", execution_count=4, data={"text/plain": "a\nb"}))
    assert multi == "Out[4]: \na\nb\n"
    tb = r.render(msg("error", ename="E", evalue="v", traceback=["\x1b[31mline1", "line2"]))
    assert tb == "\x1b[31mline1\nline2\n"
    assert r.render(msg("error", ename="E", evalue="v", traceback=[])) == "E: v\n"
    assert r.render(msg("status", execution_state="busy")) == ""
    assert r.render(msg("stream", name="stdout", text=5)) == ""  # hostile content: nothing


def test_images_get_a_one_line_note_beside_their_text() -> None:
    r = Renderer("me", color=False)
    png = "A" * 4096  # base64: 3 KiB
    out = r.render(
        msg("display_data", data={"image/png": png, "text/plain": "<Figure size 640x480>"})
    )
    assert out == "<Figure size 640x480>\n[image image/png, 3.0 KiB: not shown in a terminal]\n"


def test_other_clients_cells_get_a_header_with_their_origin_and_count() -> None:
    r = Renderer("me", color=False)
    assert r.render(msg("execute_input", code="1+1", execution_count=1)) == ""
    assert r.execution_count == 1
    theirs = msg("execute_input", session="them-1234567", code="a\nb", execution_count=2)
    out = r.render(theirs)
    assert out == "[another client: ann, session them-123]\nIn [2]: a\n   ...: b\n"
    assert r.execution_count == 2
    idle = msg("status", execution_state="idle")
    idle["parent_header"] = theirs["parent_header"]
    assert r.render(idle) == "\n"  # their cell ended: a blank line, as after ours
    assert r.render(idle) == ""


def test_the_pager_payload_of_a_question_mark() -> None:
    r = Renderer("me", color=False)
    reply = {"payload": [{"source": "page", "data": {"text/plain": "Docstring: x"}}, "junk"]}
    assert r.page(reply) == "Docstring: x\n"
    assert r.page({}) == ""
