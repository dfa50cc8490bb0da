"""Out of memory is a cell's error, not the interpreter's death.

A cell caps its address space (RLIMIT_AS at its current size + a headroom) and fills
it, keeping the memory referenced: the cell is answered with ``MemoryError`` and its
traceback, by the same interpreter, which keeps its variables; the next cell runs
(``del hog``) and then memory is usable again.  The service runs with
``XDG_DATA_HOME`` set to a fresh directory (the machine state under which the
interpreter used to die), and each case runs three times in a row on one kernel.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from benchlib.messages import parent_id, stream_text
from benchlib.running import running_service
from benchlib.scenarios.crashes import (
    MEMORY_CODE,
    MEMORY_LAST_BYTE_CODE,
    MEMORY_PRINT_CODE,
    crash_and_recover,
    worker_pid,
)
from benchlib.servers import WARM_POOL, Service
from benchlib.wsclient import WSClient

#: Crash reply -> a successful round trip of ``1``.
RECOVERY_SECONDS = 2.0
#: Times in a row each case runs on one interpreter.
ROUNDS = 3
#: What the cell after the MemoryError allocates once it let go of ``hog``.
AGAIN_MIB = 50
#: IPython's words when formatting a traceback failed.
FORMATTING_FAILED = "Unexpected exception formatting exception"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service (and its workers) with XDG_DATA_HOME in a fresh directory."""
    saved = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))
    try:
        with running_service(tmp_path_factory, "memory", *WARM_POOL) as s:
            yield s
    finally:
        if saved is None:
            del os.environ["XDG_DATA_HOME"]
        else:
            os.environ["XDG_DATA_HOME"] = saved


@pytest.fixture
def ws(svc: Service) -> Iterator[WSClient]:
    """A WebSocket client on a kernel of its own, which has ``kept = 42``."""
    kid = svc.start_kernel()
    client = WSClient.connect(svc, kid)
    try:
        reply, _ = client.execute("kept = 42")
        assert reply["content"]["status"] == "ok", reply["content"]
        yield client
    finally:
        client.close()
        svc.delete_kernel(kid)


def assert_memory_error_survived(ws: WSClient, code: str, pid: int) -> None:
    """``code`` fails with MemoryError and its traceback (not IPython's fallback), in
    the same interpreter; ``del hog`` runs, then AGAIN_MIB MiB can be allocated."""
    out = crash_and_recover(ws, code)
    assert out.reply["status"] == "error", out.reply
    assert out.reply["ename"] == "MemoryError", out.reply
    assert any("MemoryError" in line for line in out.reply["traceback"]), out.reply
    assert "restarting" not in out.statuses(), out.statuses()
    texts = [m["content"]["text"] for m in out.cell if m["msg_type"] == "stream"]
    assert not any(FORMATTING_FAILED in t for t in texts), texts[-3:]
    assert [m["content"]["ename"] for m in out.errors()] == ["MemoryError"]
    assert out.round_trip["status"] == "ok", out.round_trip
    assert out.recover_s < RECOVERY_SECONDS, out.recover_s
    reply, msgs = ws.execute(
        f"print(len(hog) > 10, kept)\ndel hog\nagain = bytearray({AGAIN_MIB} * 2**20)\ndel again"
    )
    assert reply["content"]["status"] == "ok", reply["content"]
    assert stream_text(msgs) == "True 42\n"
    assert worker_pid(ws) == pid


@pytest.mark.parametrize(
    "code",
    [MEMORY_CODE, MEMORY_LAST_BYTE_CODE],
    ids=["megabytes", "to-the-last-byte"],
)
def test_memory_error_is_the_cells_error_three_times_in_a_row(ws: WSClient, code: str) -> None:
    """A cell that fills its address space (in 1 MiB blocks; or down to 64-byte ones,
    leaving nothing) gets MemoryError; the interpreter and ``kept`` survive, ``del hog``
    frees the memory; three times in a row."""
    pid = worker_pid(ws)
    for _ in range(ROUNDS):
        assert_memory_error_survived(ws, code, pid)


def test_memory_error_in_the_output_path(ws: WSClient) -> None:
    """A cell that prints a line per MiB it holds runs out of memory in user code or
    in ``print`` (its stream buffer, the event it becomes): still the cell's
    MemoryError, the lines printed before it arrive, three times in a row."""
    pid = worker_pid(ws)
    for _ in range(ROUNDS):
        msg_id = ws.execute_request(MEMORY_PRINT_CODE)
        reply, msgs = ws.finish(msg_id)
        assert reply["content"]["ename"] == "MemoryError", reply["content"]
        text = stream_text(
            [m for m in msgs if parent_id(m) == msg_id and m["content"].get("name") == "stdout"]
        )
        lines = text.splitlines()
        assert len(lines) > 10 and lines[:3] == ["held 1", "held 2", "held 3"], lines[:5]
        assert FORMATTING_FAILED not in text
        reply, msgs = ws.execute("del hog\nagain = bytearray(50 * 2**20)\ndel again\nprint(kept)")
        assert reply["content"]["status"] == "ok", reply["content"]
        assert stream_text(msgs) == "42\n"
    assert worker_pid(ws) == pid
