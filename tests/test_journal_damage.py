"""A kernel's journal damaged (in process): torn by a SIGKILL, garbage, a huge length, a
flipped bit, a record of the wrong shape under a good checksum: one log line, what
came before is restored, nothing raises."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from test_journal import cell, iopub, live, logged, req, restored
from twisted.logger import globalLogPublisher

from ipytwist.kernel.journal import Restored
from ipytwist.kernel.journalfile import encode


def journal_lines(restore: Any) -> tuple[Any, list[dict[str, Any]]]:
    """What ``restore()`` returns, and the journal's log lines while it ran."""
    lines: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(lines.append)
    try:
        result = restore()
    finally:
        globalLogPublisher.removeObserver(lines.append)
    return result, [e for e in lines if "journal" in str(e.get("log_format", ""))]


def tail_bytes(path: Path, n: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - n])


@pytest.mark.parametrize("damage", ["torn", "garbage", "huge length", "flipped bit"])
def test_a_damaged_journal_restores_what_is_valid_with_one_line(
    tmp_path: Path, damage: str, caplog: Any
) -> None:
    kernel, transcript, log, journal = live(tmp_path)
    r = cell(kernel, "print(1)", 1, iopub(req("x"), "stream", name="stdout", text="1\n"))
    before = transcript.to_json()
    kept = logged(log)
    kernel.publish(iopub(r, "stream", name="stdout", text="the last\n"))
    journal.close()
    path = tmp_path / "journal"
    size = path.stat().st_size
    last = _last_record_start(path)
    if damage == "torn":
        tail_bytes(path, 3)
    elif damage == "garbage":
        with open(path, "ab") as f:
            f.write(os.urandom(100))
    elif damage == "huge length":
        with open(path, "r+b") as f:
            f.seek(last)
            f.write(b"\x7f\xff\xff\xff")
    else:
        with open(path, "r+b") as f:
            f.seek(size - 5)
            byte = f.read(1)
            f.seek(size - 5)
            f.write(bytes([byte[0] ^ 1]))
    (_, t2, log2), warned = journal_lines(lambda: restored(tmp_path))
    if damage == "garbage":
        assert logged(log2) == logged(log)
    else:
        assert logged(log2) == kept
        assert t2.to_json()["cells"] == before["cells"]
    assert len(warned) == 1


def _last_record_start(path: Path) -> int:
    data = path.read_bytes()
    at = last = 0
    while at < len(data):
        last = at
        at += 9 + int.from_bytes(data[at : at + 4], "big")
    return last


def test_a_journal_that_is_not_one_at_all_restores_nothing(tmp_path: Path) -> None:
    (tmp_path / "journal").write_bytes(b"\x00" * 9 + os.urandom(1000))
    got, t2, log2 = restored(tmp_path)
    assert got == Restored() and t2.cells == {} and log2.last_seq == 0


def test_an_empty_directory_restores_nothing(tmp_path: Path) -> None:
    got, t2, log2 = restored(tmp_path)
    assert got == Restored() and not t2.cells and log2.end == (1, 0)


@pytest.mark.parametrize(
    "hostile",
    [
        [b"T", "[" * 5000 + "]" * 5000],  # nesting past any parser's depth
        [b"T", {"t": {"$c": "Transcript", "a": {}}, "w": {}}],  # a class it does not rebuild
        [b"T", {"t": {"$r": 99}, "w": {}}],  # a reference to nothing
        [b"M", ["one", 0, {"header": {}}, None]],  # a seq that is not a number
        [b"M", [9, 0, {"header": "h", "content": {}}, None]],  # not a message
        [b"P", [[], [[1, 0, [7]]]]],  # a session number never named
        [b"R", {"not": "a pair"}],
    ],
    ids=["deep", "class", "reference", "seq", "message", "session", "request"],
)
def test_a_hostile_record_with_a_good_checksum_stops_the_replay_there(
    tmp_path: Path, hostile: list[Any]
) -> None:

    kernel, transcript, log, journal = live(tmp_path)
    r = cell(kernel, "print(1)", 1)
    kept = logged(log)
    journal.close()
    kind, payload = hostile
    record = encode(kind, payload) if not isinstance(payload, str) else None
    if record is None:  # raw JSON text, under a good checksum
        import struct
        import zlib

        body = payload.encode()
        record = struct.pack(">IIB", len(body), zlib.crc32(body, zlib.crc32(kind)), kind[0])
        record += body
    path = tmp_path / "journal"
    if kind == b"T":  # in its place, second: the snapshot's transcript
        path.write_bytes(path.read_bytes()[: _record_end(path, 0)] + record)
    else:
        with open(path, "ab") as f:
            f.write(record)
    (_, t2, log2), warned = journal_lines(lambda: restored(tmp_path))
    assert len(warned) == 1
    if kind == b"T":
        assert not t2.cells and t2.size == 0
    else:
        assert logged(log2) == kept and r["header"]["msg_id"] in t2.cells


def _record_end(path: Path, at: int) -> int:
    return at + 9 + int.from_bytes(path.read_bytes()[at : at + 4], "big")
