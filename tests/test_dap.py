"""The DAP framing core (dap.py) in process: messages in any chunking, bad bytes refused
with DapError, the bound on a message's size, and the cell files' names as ipykernel's."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pytest

from ipytwist.dap import (
    HASH_SEED,
    MAX_HEADER_BYTES,
    DapDecoder,
    DapError,
    cell_dir,
    cell_path,
    encode_dap,
    make_cell_dir,
    murmur2,
    shown_variable,
)

MESSAGES = [
    {"type": "request", "seq": 1, "command": "initialize", "arguments": {}},
    {"type": "event", "seq": 2, "event": "output", "body": {"output": "é€😀\r\n\r\n"}},
    {"type": "response", "seq": 3, "request_seq": 1, "success": True, "command": "x"},
]


def test_messages_round_trip_in_any_chunking() -> None:
    data = b"".join(encode_dap(m) for m in MESSAGES)
    for size in (1, 2, 3, 7, 64, len(data)):
        decoder = DapDecoder()
        out = []
        for i in range(0, len(data), size):
            out += decoder.feed(data[i : i + size])
        assert out == MESSAGES, size


def test_header_names_are_case_insensitive_and_other_headers_are_ignored() -> None:
    body = b'{"seq":1}'
    data = b"content-type: application/json\r\nCONTENT-LENGTH: 9\r\n\r\n" + body
    assert DapDecoder().feed(data) == [{"seq": 1}]


@pytest.mark.parametrize(
    "data",
    [
        b"Content-Length: 2\r\n\r\n[]",  # not an object
        b"Content-Length: 3\r\n\r\n{x}",  # not JSON
        b"Content-Length: 2\r\n\r\n\xff\xfe",  # not UTF-8
        b"Content-Length: -1\r\n\r\n",
        b"Content-Length: 1e3\r\n\r\n",
        b"Content-Type: x\r\n\r\n{}",  # no length
        b"garbage\r\n\r\n",  # no colon
        b"x" * (MAX_HEADER_BYTES + 1),  # a header that never ends
        b"Content-Length: 1000000000000\r\n\r\n",  # past the bound, refused before reading
    ],
)
def test_bad_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(DapError):
        DapDecoder(max_bytes=1 << 20).feed(data)


def test_a_message_at_the_bound_is_read_and_one_byte_more_is_refused() -> None:
    body = b'{"a":"' + b"x" * 100 + b'"}'
    bound = len(body)
    assert DapDecoder(max_bytes=bound).feed(b"Content-Length: %d\r\n\r\n" % bound + body)
    with pytest.raises(DapError):
        DapDecoder(max_bytes=bound - 1).feed(b"Content-Length: %d\r\n\r\n" % bound)


@pytest.mark.parametrize(
    "code", ["", "a", "ab", "abc", "abcd", "x = 1\n", "é€😀\n" * 7, "def f():\n  pass\n" * 50]
)
def test_cell_names_are_ipykernels_murmur2(code: str) -> None:
    """JupyterLab computes the same hash to find a cell's file: ipykernel's is the
    reference."""
    from ipykernel.compiler import murmur2_x86

    assert murmur2(code.encode("utf-8")) == murmur2_x86(code, HASH_SEED)
    path = cell_path(code, 1234)
    assert path == f"{cell_dir(1234)}/{murmur2_x86(code, HASH_SEED)}.py"


def test_ipythons_own_variables_are_hidden() -> None:
    assert shown_variable("x") and shown_variable("_x") and shown_variable("data_1")
    for name in ("In", "Out", "_", "__", "_1", "_i", "_i3", "_ih", "get_ipython", "__name__"):
        assert not shown_variable(name), name


def test_the_cell_dir_is_made_private_and_another_ones_is_refused(
    tmp_path: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    path = make_cell_dir(7)
    assert path == cell_dir(7) == str(tmp_path / "ipytwist_7")
    assert os.stat(path).st_mode & 0o777 == 0o700
    assert make_cell_dir(7) == path  # again: it is ours
    os.chmod(path, 0o755)
    with pytest.raises(PermissionError):
        make_cell_dir(7)
    os.symlink(str(tmp_path), str(tmp_path / "ipytwist_8"))
    with pytest.raises(PermissionError):
        make_cell_dir(8)
