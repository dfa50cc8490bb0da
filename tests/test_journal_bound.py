"""The journal's bound: pushed far past it by a flood, widget updates and huge
outputs, its file never holds more than ``limit`` bytes, at any moment, and what it
restores is still the live transcript (rewritten compactly) and the newest log."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_journal import cell, idle, live, logged, restored
from test_transcript import iopub, req
from test_widget_state import STATE, opened, updated

from ipytwist.kernel import journalfile
from ipytwist.kernel.journal import KernelJournal
from ipytwist.kernel.journalfile import read_records
from ipytwist.kernel.transcript import MIN_BYTES

LOG_BYTES = 256 * 1024


@pytest.fixture
def sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The journal file's size on disk after every append and rewrite, and the
    rewrite's new file (before its rename) with the old one beside it."""
    seen: list[tuple[str, int]] = []
    append, real_replace = journalfile.JournalFile.append, os.replace

    def appended(self: journalfile.JournalFile, record: bytes) -> None:
        append(self, record)
        seen.append(("append", os.stat(self.path).st_size))

    def rename(src: str, dst: str) -> None:
        seen.append(("new", os.stat(src).st_size))
        seen.append(("both", os.stat(src).st_size + os.stat(dst).st_size))
        real_replace(src, dst)
        seen.append(("rewritten", os.stat(dst).st_size))

    monkeypatch.setattr(journalfile.JournalFile, "append", appended)
    monkeypatch.setattr(journalfile.os, "replace", rename)
    return seen


def within(journal: KernelJournal, sizes: list[tuple[str, int]], pushed: int) -> None:
    """The file never passed the bound; a rewrite is at most three quarters of it (half,
    and what was appended while a thread wrote it), and the two files beside each
    other at most 1.75 times it."""
    assert pushed > 10 * journal.limit  # far past it
    assert max(size for kind, size in sizes if kind in ("append", "rewritten")) <= journal.limit
    assert max(size for kind, size in sizes if kind == "new") <= journal.limit * 3 // 4
    assert max(size for kind, size in sizes if kind == "both") <= journal.limit * 7 // 4
    assert sum(1 for kind, _ in sizes if kind == "rewritten") >= 10


def records_where_the_journal_says(journal: KernelJournal) -> None:
    """Each message the journal has in its file is where it says (rewrites moved them)."""
    records, problem = read_records(journal.file.path, journal.limit)
    starts = {at: (kind, payload) for kind, payload, at in records}
    assert problem is None and journal._in_file
    for seq, _, at in journal._in_file:
        assert starts[at][0] == b"M" and starts[at][1][0] == seq


@pytest.mark.parametrize("log_bytes", [LOG_BYTES, 4 * LOG_BYTES])
def test_a_flood_stays_within_the_bound_and_restores_the_live_state(
    tmp_path: Path, sizes: list[tuple[str, int]], log_bytes: int
) -> None:
    """With a log that keeps much of the journal's room (4 x), messages are copied by
    one rewrite after another."""
    kernel, transcript, log, journal = live(tmp_path, MIN_BYTES, log_bytes)
    pushed = 0
    for n in range(1, 41):
        r = cell(kernel, f"flood({n})", n)
        for i in range(300 * log_bytes // LOG_BYTES):
            text = f"{n}:{i} " + "x" * 1000 + "\n"
            kernel.publish(iopub(r, "stream", name="stdout", text=text))
            pushed += len(text)
        idle(kernel, r)
    within(journal, sizes, pushed)
    if journal.file.rewriting:  # a thread may still be writing it
        journal._finish()
    records_where_the_journal_says(journal)
    journal.close()
    _, t2, log2 = restored(tmp_path, MIN_BYTES, log_bytes)
    assert t2.to_json() == transcript.to_json()
    assert logged(log2) == logged(log)[-len(logged(log2)) :]
    assert len(logged(log2)) >= len(logged(log)) // 2


def test_widget_updates_stay_within_the_bound(tmp_path: Path, sizes: list[tuple[str, int]]) -> None:
    kernel, transcript, log, journal = live(tmp_path, MIN_BYTES, LOG_BYTES)
    r = cell(kernel, "w = IntSlider()", 1)
    kernel.publish(opened("m1", {**STATE, "value": 0, "raw": b"\x00" * 1000}))
    pushed = 0
    for v in range(30_000):
        kernel.publish(updated("m1", {"value": v, "raw": bytes([v % 256]) * 1000}))
        pushed += 1000
    idle(kernel, r)
    within(journal, sizes, pushed)
    journal.close()
    _, t2, log2 = restored(tmp_path, MIN_BYTES, LOG_BYTES)
    assert t2.to_json() == transcript.to_json()
    assert t2.to_json()["widgets"]["state"]["m1"]["state"]["value"] == 29_999


def test_huge_outputs_are_left_out_with_a_line_and_the_rest_is_kept(
    tmp_path: Path, sizes: list[tuple[str, int]], caplog: Any
) -> None:
    kernel, transcript, log, journal = live(tmp_path, MIN_BYTES, LOG_BYTES)
    pushed = 0
    for n in range(1, 13):
        r = cell(kernel, f"huge({n})", n)
        text = "y" * journal.limit  # larger than the room a record has
        kernel.publish(iopub(r, "stream", name="stdout", text=text))
        big = {"text/html": "<b>" * (journal.limit // 12)}
        kernel.publish(iopub(r, "display_data", data=big, metadata={}))
        kernel.publish(iopub(r, "stream", name="stderr", text=f"after {n}\n"))
        pushed += len(text) + journal.limit // 4
        idle(kernel, r)
    within(journal, sizes, pushed)
    assert journal.skipped >= 12
    journal.close()
    got, t2, log2 = restored(tmp_path, MIN_BYTES, LOG_BYTES)
    assert got.execution_count == 12
    cells = t2.to_json()["cells"]
    assert [c["code"] for c in cells] == [c["code"] for c in transcript.to_json()["cells"]]
    assert cells[-1]["outputs"][-1]["text"] == "after 12\n"
    assert logged(log2) == logged(log)[-len(logged(log2)) :]


def test_a_storm_of_large_requests_keeps_no_code_in_the_kernel_state(tmp_path: Path) -> None:
    """100 requests of 1 MiB accepted and not finished (a ZeroMQ storm): the state each
    snapshot holds keeps their headers, not their code, and silent ones leave their code
    out of the file too (the transcript has no silent cells)."""
    kernel, transcript, log, journal = live(tmp_path)
    code = "#" + "x" * (1 << 20)
    for _ in range(50):
        kernel.request(req(code, silent=True))
    size = os.path.getsize(journal.file.path)
    assert size < 1 << 20, size
    for _ in range(50):
        kernel.request(req(code))
    state = json.dumps(journal.state.to_json())
    assert len(journal.state.pending) == 100 and len(state) < 100_000, len(state)
