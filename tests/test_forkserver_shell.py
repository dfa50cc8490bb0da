"""The IPython shell a fork server makes once and its kernels reuse (issue 20): each
forked kernel's shell is its own, as if made after the fork.  Two kernels of one
server have their own history session in the database and see neither the other's
history nor its names; ``In``, ``Out``, ``_dh`` and the execution count start afresh;
magics, ``input()``, tracebacks and a restart work.  Real service (its fork server on,
the default), REST and WebSocket."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from benchlib.wsclient import WSClient
from support.durable import ForkService, fork_service

#: What a kernel says of its shell, as one JSON line (run as the kernel's first cell).
SHELL = """\
import json, os
ip = get_ipython()
print(json.dumps({
    "maker": ip.maker_pid,
    "pid": os.getpid(),
    "session": ip.history_manager.session_number,
    "count": ip.execution_count,
    "in": list(In),
    "out": dict(Out),
    "dh": [str(d) for d in _dh],
    "cwd": os.getcwd(),
    "names": sorted(k for k in ip.user_ns if k not in ip.user_ns_hidden and k[:1] != "_"),
    "threads": sorted(t.name for t in __import__("threading").enumerate()),
}))
"""


@pytest.fixture(scope="module")
def svc() -> Iterator[ForkService]:
    with fork_service(ForkService) as service:
        yield service


@pytest.fixture
def kernel(svc: ForkService) -> Iterator[tuple[str, WSClient]]:
    """A new kernel and a client on it."""
    kernel_id = svc.start_kernel()
    client = WSClient.connect(svc, kernel_id, "A")
    try:
        client.kernel_info()
        yield kernel_id, client
    finally:
        client.close()


def _run(ws: WSClient, code: str) -> tuple[dict[str, Any], str]:
    """The execute reply's content and the cell's stdout."""
    reply, got = ws.execute(code, timeout=60)
    out = "".join(
        m["content"]["text"]
        for m in got
        if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
    )
    content: dict[str, Any] = reply["content"]
    return content, out


def _shell(ws: WSClient) -> dict[str, Any]:
    content, out = _run(ws, SHELL)
    assert content["status"] == "ok", content
    found: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return found


def _history_db(svc: ForkService) -> dict[int, list[str]]:
    """The sources in the history database, by session."""
    path = os.path.join(svc.base_dir, "ipython", "profile_default", "history.sqlite")
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT session, source_raw FROM history").fetchall()
    finally:
        db.close()
    found: dict[int, list[str]] = {}
    for session, source in rows:
        found.setdefault(session, []).append(source)
    return found


def test_each_kernel_reuses_the_servers_shell_as_a_fresh_one(svc: ForkService) -> None:
    """Made once in the server (its pid, not the kernel's), yet each kernel's first cell
    sees a shell as new: count 1, ``In`` of that cell only, ``Out`` empty, ``_dh`` its
    own directory (the server sits in /), no user names, its own history thread."""
    seen = []
    for _ in range(2):
        ws = WSClient.connect(svc, svc.start_kernel(), "A")
        try:
            ws.kernel_info()
            seen.append(_shell(ws))
            if not seen[1:]:
                content, _ = _run(ws, "left_by_the_first = 1")
                assert content["status"] == "ok", content
        finally:
            ws.close()
    for got in seen:
        assert got["maker"] != got["pid"]  # the fork server made it
        assert got["count"] == 1
        assert got["in"] == ["", SHELL.strip()]
        assert got["out"] == {}
        assert got["dh"] == [got["cwd"]] and os.path.samefile(got["cwd"], svc.base_dir)
        assert got["names"] == ["ip", "json", "os"]  # the cell's own, nothing else
        assert "IPythonHistorySavingThread" in got["threads"]
    first, second = seen
    assert first["maker"] == second["maker"]
    assert first["session"] != second["session"] and min(first["session"], second["session"])


def test_two_kernels_keep_their_history_apart(svc: ForkService) -> None:
    """Each kernel's cells are in its own session of the database; ``%history`` and the
    history manager of one show none of the other's."""
    sessions = []
    for secret in ("alpha_only = 1", "beta_only = 2"):
        ws = WSClient.connect(svc, svc.start_kernel(), "A")
        try:
            ws.kernel_info()
            content, _ = _run(ws, secret)
            assert content["status"] == "ok", content
            content, out = _run(ws, "%history")
            assert content["status"] == "ok", content
            assert out.split("\n")[0] == secret and "_only" not in out.replace(secret, "")
            code = "hm = get_ipython().history_manager; hm.writeout_cache(); "
            code += "print(hm.session_number, [s for _, _, s in hm.get_range()])"
            content, out = _run(ws, code)
            assert content["status"] == "ok", content
            session, _, cells = out.strip().partition(" ")
            assert cells.startswith(f"['{secret}', '%history'")  # get_range: "get_ipython..."
            sessions.append(int(session))
        finally:
            ws.close()
    assert sessions[0] != sessions[1]
    db = _history_db(svc)
    assert db[sessions[0]][0] == "alpha_only = 1" and db[sessions[1]][0] == "beta_only = 2"
    assert not any("beta_only" in s for s in db[sessions[0]])
    assert not any("alpha_only" in s for s in db[sessions[1]])


def test_magics_input_and_tracebacks_work(kernel: tuple[str, WSClient]) -> None:
    _, ws = kernel
    content, out = _run(ws, "%timeit -n1 -r1 1")
    assert content["status"] == "ok" and "per loop" in out, (content, out)
    content, out = _run(ws, "%%bash\necho hi from bash")
    assert content["status"] == "ok" and out == "hi from bash\n", (content, out)
    content, out = _run(ws, "%%script sh\necho $((6 * 7))")
    assert content["status"] == "ok" and out == "42\n", (content, out)
    asked = ws.execute_request("print('hello', input('name? '))", allow_stdin=True)
    request = ws.until(lambda m: m["msg_type"] == "input_request")[-1]
    assert request["content"]["prompt"] == "name? "
    ws.send("stdin", "input_reply", {"value": "Ada"})
    reply, got = ws.finish(asked, timeout=60)
    assert reply["content"]["status"] == "ok", reply
    assert "hello Ada\n" in "".join(m["content"]["text"] for m in got if m["msg_type"] == "stream")
    content, _ = _run(ws, "def f():\n    return 1 / 0\nf()")
    assert content["status"] == "error" and content["ename"] == "ZeroDivisionError"
    shown = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(content["traceback"]))
    assert "return 1 / 0" in shown and "Cell In[" in shown, shown
    content, out = _run(ws, "print(get_ipython().execution_count)")
    assert content["execution_count"] == 6 and out == "6\n", (content, out)


def test_a_restarted_kernel_starts_afresh(svc: ForkService, kernel: tuple[str, WSClient]) -> None:
    """A restart goes through the fork server too: a new session, nothing of before."""
    kernel_id, ws = kernel
    before = _shell(ws)
    content, _ = _run(ws, "kept_by_nobody = 1")
    assert content["status"] == "ok", content
    svc.request("POST", f"/api/kernels/{kernel_id}/restart")
    ws.kernel_info()
    after = _shell(ws)
    assert after["pid"] != before["pid"] and after["maker"] == before["maker"]
    assert after["session"] != before["session"]
    assert after["count"] == 1 and after["in"] == ["", SHELL.strip()] and after["out"] == {}
    assert after["names"] == ["ip", "json", "os"]
