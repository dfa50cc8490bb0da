"""A kernel's journal (in process): what a kernel did, written as it comes, read back
into a fresh output log and transcript equal to the live ones; its bound under
floods; torn, corrupt and hostile files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_transcript import iopub, req
from test_widget_state import STATE, opened, updated

from ipytwist.kernel.journal import MIN_JOURNAL_BYTES, KernelJournal, Restored, journal_of
from ipytwist.kernel.outputlog import OutputLog
from ipytwist.kernel.transcript import MIN_BYTES, Transcript
from ipytwist.wire import new_message

TRANSCRIPT_BYTES = 256 * 1024
LOG_BYTES = 512 * 1024


class Stdin:
    def __init__(self, transcript: Transcript) -> None:
        self.echo = transcript.stdin


class FakeKernel:
    """What the journal follows of a Kernel: its session, its request hook, its stdin
    echo; wired as the host wires a transcript to them."""

    def __init__(self, log: OutputLog, transcript: Transcript) -> None:
        self.session = "kernel-session"
        self._on_request = transcript.request
        self.stdin = Stdin(transcript)
        self.log = log

    def request(self, msg: dict[str, Any]) -> None:
        assert self._on_request is not None
        self._on_request(msg, "websocket")

    def publish(self, msg: dict[str, Any]) -> None:
        self.log.publish(msg)


def live(
    tmp_path: Path, transcript_bytes: int = TRANSCRIPT_BYTES, log_bytes: int = LOG_BYTES
) -> tuple[FakeKernel, Transcript, OutputLog, KernelJournal]:
    log = OutputLog(10_000, log_bytes)
    transcript = Transcript(max_bytes=transcript_bytes)
    log.subscribe(transcript)
    kernel = FakeKernel(log, transcript)
    journal = KernelJournal.open(str(tmp_path), transcript_bytes, 10_000, log_bytes)
    journal.follow(kernel, log, transcript)
    return kernel, transcript, log, journal


def restored(
    tmp_path: Path, transcript_bytes: int = TRANSCRIPT_BYTES, log_bytes: int = LOG_BYTES
) -> tuple[Restored, Transcript, OutputLog]:
    log = OutputLog(10_000, log_bytes)
    transcript = Transcript(max_bytes=transcript_bytes)
    journal = KernelJournal.open(str(tmp_path), transcript_bytes, 10_000, log_bytes)
    try:
        return journal.restore(log, transcript), transcript, log
    finally:
        journal.close()


def logged(log: OutputLog) -> list[tuple[int, int, str, Any]]:
    return [
        (e.seq, e.offset, e.msg["header"]["msg_id"], e.msg.get("buffers")) for e in log.retained()
    ]


def cell(kernel: FakeKernel, code: str, count: int, *outputs: dict[str, Any]) -> dict[str, Any]:
    r = req(code)
    kernel.request(r)
    kernel.publish(iopub(r, "status", execution_state="busy"))
    kernel.publish(iopub(r, "execute_input", code=code, execution_count=count))
    for o in outputs:
        kernel.publish(o)
    return r


def idle(kernel: FakeKernel, r: dict[str, Any]) -> None:
    kernel.publish(iopub(r, "status", execution_state="idle"))


def run_session(kernel: FakeKernel) -> dict[str, Any]:
    """Prints with carriage returns, a display and its update, input() with an
    answer, a widget with binary state and its updates; the last cell still runs."""
    a = req("for i in range(3): print(i, end='\\r')")
    outs = [iopub(a, "stream", name="stdout", text=f"{i}\r") for i in range(3)]
    r = cell(kernel, a["content"]["code"], 1, *outs)
    disp = {"data": {"text/plain": "v1"}, "metadata": {}, "transient": {"display_id": "d"}}
    kernel.publish(iopub(r, "display_data", **disp))
    kernel.publish(iopub(r, "update_display_data", **{**disp, "data": {"text/plain": "v2"}}))
    idle(kernel, r)
    r = cell(kernel, "name = input('name? ')", 2)
    kernel.stdin.echo(r["header"]["msg_id"], "name? ")
    kernel.stdin.echo(r["header"]["msg_id"], "Ada\n")
    kernel.publish(iopub(r, "stream", name="stdout", text="hello Ada\n"))
    idle(kernel, r)
    r = cell(kernel, "w = IntSlider()", 3)
    kernel.publish(opened("m1", {**STATE, "value": 1, "data": b"\x00\x01binary"}))
    for v in range(20):
        kernel.publish(updated("m1", {"value": v}))
    kernel.publish(iopub(r, "execute_result", data={"text/plain": "IntSlider"}, execution_count=3))
    idle(kernel, r)
    running = cell(kernel, "while True: print('x')", 4)
    kernel.publish(iopub(running, "stream", name="stdout", text="x\n" * 5))
    return running


def test_a_session_read_back_is_the_live_transcript_and_log(tmp_path: Path) -> None:
    kernel, transcript, log, journal = live(tmp_path)
    running = run_session(kernel)
    journal.link_safe("keeper-1", 42)
    journal.note_position("tab-1", (5, 7))
    journal.note_position("tab-2", log.end)
    assert journal_of(kernel) is journal
    journal.close()

    got, t2, log2 = restored(tmp_path)
    assert t2.to_json() == transcript.to_json()
    assert t2.size == transcript.size
    assert logged(log2) == logged(log)
    assert log2.end == log.end
    assert log2.position_after(running["header"]["msg_id"]) is None  # a request: not iopub
    assert got.session == "kernel-session"
    assert got.execution_count == 4
    assert got.running is not None
    assert got.running["header"]["msg_id"] == running["header"]["msg_id"]
    assert got.running["content"]["code"] == "while True: print('x')"
    assert got.link == ("keeper-1", 42)
    assert got.sessions == {"tab-1": (5, 7), "tab-2": log.end}
    assert t2.to_json()["widgets"]["state"]["m1"]["state"]["value"] == 19
    stdin = [o for c in t2.to_json()["cells"] for o in c["outputs"] if o.get("name") == "stdin"]
    assert stdin[0]["text"] == "name? Ada\n"


def test_after_a_rewrite_the_restored_state_is_the_same(tmp_path: Path) -> None:
    """follow() begins with a snapshot; a second follow over a restored log and
    transcript rewrites the file, and reading that back gives the same again."""
    kernel, transcript, log, journal = live(tmp_path)
    run_session(kernel)
    journal.close()
    _, t2, log2 = restored(tmp_path)
    log2.subscribe(t2)  # as the host wires it
    k2 = FakeKernel(log2, t2)
    j2 = KernelJournal.open(str(tmp_path), TRANSCRIPT_BYTES, 10_000, LOG_BYTES)
    j2.restore(OutputLog(), Transcript())
    j2.follow(k2, log2, t2)
    k2.publish(iopub(req("x"), "stream", name="stdout", text="after\n"))
    j2.close()
    # The live pair (log2, t2) was filled by restore, then went on.
    got, t3, log3 = restored(tmp_path)
    assert got.running is not None and got.running["content"]["code"] == "while True: print('x')"
    assert got.execution_count == 4 and got.session == "kernel-session"
    assert t3.to_json() == t2.to_json()
    assert logged(log3) == logged(log2)


def test_no_execute_request_while_idle_is_running(tmp_path: Path) -> None:
    kernel, _, _, journal = live(tmp_path)
    r = cell(kernel, "1", 1)
    idle(kernel, r)
    journal.close()
    got, _, _ = restored(tmp_path)
    assert got.running is None and got.execution_count == 1


def test_a_message_id_persists_with_its_buffers(tmp_path: Path) -> None:
    kernel, _, log, journal = live(tmp_path)
    msg = new_message("comm_msg", {"comm_id": "c", "data": {}}, "k", buffers=[b"\xff\x00"])
    kernel.publish(msg)
    journal.close()
    _, _, log2 = restored(tmp_path)
    (env,) = log2.retained()
    assert env.msg == log.publish.__self__._get(1).msg  # type: ignore[attr-defined]
    assert env.msg["buffers"] == [b"\xff\x00"]


def test_min_bound() -> None:
    assert MIN_JOURNAL_BYTES >= 2 * MIN_BYTES


def test_a_smaller_transcript_bound_holds_for_the_transcript_restored(tmp_path: Path) -> None:
    kernel, transcript, _, journal = live(tmp_path, transcript_bytes=1 << 20)
    for n in range(1, 30):
        r = cell(kernel, f"c{n}", n)
        kernel.publish(iopub(r, "stream", name="stdout", text="y\n" * 4000))
        idle(kernel, r)
    journal.close()
    assert transcript.size > 4 * MIN_BYTES
    _, t2, _ = restored(tmp_path, transcript_bytes=MIN_BYTES)
    assert t2.max_bytes == MIN_BYTES and t2.size <= MIN_BYTES
    assert t2.cells and next(reversed(t2.cells)) == next(reversed(transcript.cells))


class Tab:
    """A WebSocket session's connection that keeps up: it takes each message as it is
    woken, and notes its position (as the outbox does after each pump)."""

    def __init__(self, sid: str, log: OutputLog, journal: KernelJournal) -> None:
        self.sid, self.journal = sid, journal
        self.cursor = log.open_cursor(self)
        self.cursor.take()

    def wake(self) -> None:
        while self.cursor.take() is not None:
            pass
        self.journal.note_position(self.sid, self.cursor.position)


def test_positions_of_many_sessions_survive_rewrites_and_take_little_room(tmp_path: Path) -> None:
    """A message that wakes 100 sessions adds one small record of their positions."""
    kernel, _, log, journal = live(tmp_path)
    tabs = [Tab(f"{n:032x}", log, journal) for n in range(100)]
    rewrites = 0
    for n in range(300):
        before = journal.file.size
        big = n % 20 == 19  # past the bound now and then: the file is rewritten
        kernel.publish(iopub(req("x"), "stream", name="stdout", text="z" * (300_000 if big else 9)))
        if journal.file.size < before:
            rewrites += 1
        elif n > 0 and not big:
            assert journal.file.size - before < 900  # the message's record, and 100 numbers
    assert rewrites >= 3
    tabs[0].cursor.close()
    journal.note_position(tabs[0].sid, (3, 4))
    journal.close()
    got, _, log2 = restored(tmp_path)
    assert got.sessions == {t.sid: t.cursor.position for t in tabs[1:]} | {tabs[0].sid: (3, 4)}
    assert got.sessions[tabs[1].sid] == log2.end == log.end


def test_a_full_disk_never_stops_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernel, transcript, log, journal = live(tmp_path)
    lines: list[dict[str, Any]] = []
    from twisted.logger import globalLogPublisher

    globalLogPublisher.addObserver(lines.append)
    try:
        r = cell(kernel, "odd", 1)

        def full(fd: int, data: Any) -> int:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("ipytwist.kernel.journalfile.os.write", full)
        monkeypatch.setattr("ipytwist.kernel.journalfile.os.writev", full)
        for n in range(3):
            kernel.publish(iopub(r, "stream", name="stdout", text=f"{n}\n"))
        kernel.stdin.echo(r["header"]["msg_id"], "answer\n")
        kernel.request(req("more"))
    finally:
        globalLogPublisher.removeObserver(lines.append)
    assert journal.failed
    assert transcript.cells[r["header"]["msg_id"]].outputs[-1].to_json()["text"] == "answer\n"
    assert log.last_seq == len(list(log.retained()))
    warned = [e for e in lines if "journal" in str(e.get("log_format", ""))]
    assert len(warned) == 1  # the disk that refused


def test_lone_surrogates_and_non_finite_numbers_come_back_as_they_were(tmp_path: Path) -> None:
    kernel, _, log, journal = live(tmp_path)
    r = cell(kernel, "ls", 1)
    kernel.publish(iopub(r, "stream", name="stdout", text="caf\udce9\n"))
    kernel.publish(iopub(r, "execute_result", data={"text/plain": "nan"}, metadata={"x": 1.5}))
    journal.close()
    _, t2, log2 = restored(tmp_path)
    assert [e.msg["content"] for e in log2.retained()] == [e.msg["content"] for e in log.retained()]
    assert t2.cells[r["header"]["msg_id"]].outputs[0].to_json()["text"] == "caf\udce9\n"
