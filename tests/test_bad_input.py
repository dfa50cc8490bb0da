"""Malformed, forged and oversized messages sent straight to the kernel's ZMQ ports.

Each bad message is dropped without a reply and without harm: a valid request sent
right after it on the same socket is the first thing answered, and the kernel keeps
running code.  What gets logged is one short line without the payload.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq
from benchlib.procs import status_kib
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from support.jupyter_kernel import running_kernel
from support.zmq_client import DELIM, ZmqClient

MAX_BYTES = 1_000_000
TIMEOUT_MS = 10_000
#: Appears in every bad payload; must never show up in the kernel's log.
MARKER = "PAYLOAD-MARKER-7f3a"


class Kernel(ZmqClient):
    """A kernel started through jupyter_client, its ZeroMQ ports driven by hand."""

    def __init__(self, km: KernelManager, kc: BlockingKernelClient, stderr_path: str) -> None:
        super().__init__(km.get_connection_info())
        self.km = km
        self.kc = kc
        self.stderr_path = stderr_path

    def stderr(self) -> str:
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return f.read()


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    stderr_path = str(tmp_path_factory.mktemp("bad-input") / "kernel.stderr")
    env = {**os.environ, "IPYTWIST_MAX_MESSAGE_BYTES": str(MAX_BYTES)}
    with open(stderr_path, "w") as stderr, running_kernel(env=env, stderr=stderr) as (km, kc):
        k = Kernel(km, kc, stderr_path)
        try:
            yield k
        finally:
            k.close()


def recv(sock: zmq.Socket) -> dict[str, Any]:
    assert sock.poll(TIMEOUT_MS), "no reply from the kernel"
    frames = sock.recv_multipart()
    i = frames.index(DELIM)
    header, parent, _, content = (json.loads(f) for f in frames[i + 2 : i + 6])
    return {"header": header, "parent_header": parent, "content": content}


def assert_next_reply_is_to(sock: zmq.Socket, msg_parts: list[bytes]) -> dict[str, Any]:
    msg_id = json.loads(msg_parts[0])["msg_id"]
    reply = recv(sock)
    assert reply["parent_header"].get("msg_id") == msg_id, reply
    return reply


def assert_still_serving(kernel: Kernel, sock: zmq.Socket) -> None:
    """A valid kernel_info on the same socket is the next thing answered."""
    good = kernel.parts("kernel_info_request")
    sock.send_multipart(kernel.signed(good))
    reply = assert_next_reply_is_to(sock, good)
    assert reply["header"]["msg_type"] == "kernel_info_reply"
    assert kernel.km.is_alive()


BAD: dict[str, Callable[[Kernel], list[bytes]]] = {
    "bad-signature": lambda k: [DELIM, b"0" * 64, *k.parts("kernel_info_request")],
    "missing-signature": lambda k: [DELIM, b"", *k.parts("kernel_info_request")],
    "wrong-key": lambda k: (lambda p: [DELIM, k.sign(p, key=b"not-the-key"), *p])(
        k.parts("kernel_info_request")
    ),
    "signature-of-other-frames": lambda k: [
        DELIM,
        k.sign(k.parts("kernel_info_request")),
        *k.parts("kernel_info_request"),
    ],
    "too-few-frames": lambda k: k.signed(k.parts("kernel_info_request"))[:4],
    "delimiter-only": lambda k: [DELIM],
    "single-empty-frame": lambda k: [b""],
    "no-delimiter": lambda k: k.signed(k.parts("kernel_info_request"))[1:],
    "non-json": lambda k: k.signed([MARKER.encode(), b"{}", b"{}", b"{}"]),
    "invalid-utf8": lambda k: k.signed([b"\xff\xfe" + MARKER.encode(), b"{}", b"{}", b"{}"]),
    "header-is-a-list": lambda k: k.signed([b"[1, 2]", b"{}", b"{}", b"{}"]),
    "content-is-a-string": lambda k: k.signed(
        [*k.parts("execute_request")[:3], json.dumps(MARKER).encode()]
    ),
    "parent-is-null": lambda k: k.signed(
        [k.parts("kernel_info_request")[0], b"null"] + [b"{}"] * 2
    ),
    "no-msg-type": lambda k: k.signed([json.dumps({"msg_id": "x"}).encode()] + [b"{}"] * 3),
    "msg-type-not-a-string": lambda k: k.signed(
        [json.dumps({"msg_id": "x", "msg_type": 7}).encode()] + [b"{}"] * 3
    ),
    "msg-id-not-a-string": lambda k: k.signed(k.parts("kernel_info_request", msg_id=[1])),
    "oversized": lambda k: k.signed(
        k.parts("execute_request", {"code": "# " + MARKER * (MAX_BYTES // len(MARKER) + 10)})
    ),
}


@pytest.mark.parametrize("channel", ["shell", "control"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_message_is_dropped(kernel: Kernel, channel: str, case: str) -> None:
    """The bad message gets no reply; the kernel answers the next valid request."""
    sock = kernel.socket(channel)
    try:
        sock.send_multipart(BAD[case](kernel))
        assert_still_serving(kernel, sock)
    finally:
        sock.close()


def test_replayed_message_is_answered_once(kernel: Kernel) -> None:
    """The same signed frames sent twice: the first is answered, the replay is not."""
    sock = kernel.socket("shell")
    try:
        first = kernel.parts("kernel_info_request")
        sock.send_multipart(kernel.signed(first))
        sock.send_multipart(kernel.signed(first))
        assert_next_reply_is_to(sock, first)
        assert_still_serving(kernel, sock)
    finally:
        sock.close()


@pytest.mark.parametrize("channel", ["shell", "control"])
def test_unknown_request_type_gets_an_error_reply(kernel: Kernel, channel: str) -> None:
    """An unknown *_request is answered with an error reply of the matching type."""
    sock = kernel.socket(channel)
    try:
        req = kernel.parts("frobnicate_request")
        sock.send_multipart(kernel.signed(req))
        reply = assert_next_reply_is_to(sock, req)
        assert reply["header"]["msg_type"] == "frobnicate_reply"
        assert reply["content"]["status"] == "error"
        assert "frobnicate_request" in reply["content"]["evalue"]
        assert_still_serving(kernel, sock)
    finally:
        sock.close()


def test_unknown_non_request_type_is_ignored(kernel: Kernel) -> None:
    """A message type that is not a request gets no reply at all."""
    sock = kernel.socket("shell")
    try:
        sock.send_multipart(kernel.signed(kernel.parts("frobnicate")))
        assert_still_serving(kernel, sock)
    finally:
        sock.close()


def test_wrongly_typed_fields_are_answered(kernel: Kernel) -> None:
    """Well-formed requests with odd field types get replies instead of killing anything."""
    sock = kernel.socket("shell")
    try:
        for msg_type, content in [
            ("execute_request", {"code": 5, "silent": "no", "user_expressions": [1]}),
            ("complete_request", {"code": None, "cursor_pos": "x"}),
            ("inspect_request", {"code": ["a"], "cursor_pos": -5}),
            ("history_request", {"hist_access_type": "nonsense"}),
            ("is_complete_request", {"code": {"a": 1}}),
        ]:
            req = kernel.parts(msg_type, content)
            sock.send_multipart(kernel.signed(req))
            reply = assert_next_reply_is_to(sock, req)
            # is_complete answers with its own statuses (complete, incomplete, ...)
            assert reply["content"]["status"] in ("ok", "error", "complete", "invalid")
        assert_still_serving(kernel, sock)
    finally:
        sock.close()


def test_oversized_message_is_logged_in_one_short_line(kernel: Kernel) -> None:
    """The drop of an oversized message is logged as one line that omits the payload."""
    before = kernel.stderr()
    sock = kernel.socket("shell")
    try:
        sock.send_multipart(BAD["oversized"](kernel))
        assert_still_serving(kernel, sock)
    finally:
        sock.close()
    new = kernel.stderr()[len(before) :]
    lines = [line for line in new.splitlines() if str(MAX_BYTES) in line]
    assert len(lines) == 1, new[:2000]
    assert "dropped" in lines[0]
    assert len(lines[0]) < 300
    assert MARKER not in new


def test_kernel_still_runs_code_and_never_logged_a_payload(kernel: Kernel) -> None:
    """After all the bad input, code still runs and the log holds no payload."""
    kc = kernel.kc
    reply = kc.execute_interactive("x = 6 * 7", timeout=30)
    assert reply["content"]["status"] == "ok"
    assert MARKER not in kernel.stderr()
    assert all(len(line) < 300 for line in kernel.stderr().splitlines())


def _peak_rss_mib(pid: int) -> float:
    peak = status_kib(pid, "VmHWM")
    assert peak is not None, "no VmHWM"
    return peak / 1024


def test_a_huge_unsigned_frame_is_refused_before_it_costs_memory(kernel: Kernel) -> None:
    """A 200 MB frame is refused by libzmq itself, which disconnects the sender, before it
    is buffered: the kernel's peak memory does not grow with it, and it keeps serving."""
    from zmq.utils.monitor import recv_monitor_message

    pid = kernel.km.provisioner.process.pid  # type: ignore[union-attr]
    before_peak, before_log = _peak_rss_mib(pid), kernel.stderr()
    sock = kernel.socket("shell")
    monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        sock.send_multipart([DELIM, b"0" * 64, b"x" * (200 * 1024 * 1024)], copy=False)
        # Either the kernel refuses it (we are disconnected) or it takes it in whole and
        # the wire codec drops it (a log line): wait, bounded, for whichever comes.
        deadline = time.monotonic() + 30
        refused = False
        while time.monotonic() < deadline:
            if monitor.poll(100):
                refused = recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
                break
            if "exceeds" in kernel.stderr()[len(before_log) :]:
                break
        else:
            raise AssertionError("neither refused nor dropped within 30 s")
        fresh = kernel.socket("shell")
        try:
            assert_still_serving(kernel, fresh)
        finally:
            fresh.close()
    finally:
        sock.disable_monitor()
        monitor.close()
        sock.close()
    assert refused, "the frame was received whole"
    assert _peak_rss_mib(pid) - before_peak < 50


def test_a_multipart_message_over_the_limit_is_dropped(kernel: Kernel) -> None:
    """Frames each under the limit but adding up past it are counted (not kept) and the
    message is dropped with a line saying so."""
    before = kernel.stderr()
    sock = kernel.socket("shell")
    try:
        frame = b"y" * (MAX_BYTES // 2)
        sock.send_multipart([DELIM, b"0" * 64, *[frame] * 8])
        assert_still_serving(kernel, sock)
    finally:
        sock.close()
    new = kernel.stderr()[len(before) :]
    assert "exceeds" in new and str(MAX_BYTES) in new


def test_a_flood_of_unsigned_messages_is_a_few_log_lines(kernel: Kernel) -> None:
    """20,000 messages with bad signatures are all dropped; the log gets a handful of
    lines, not 20,000, and the kernel answers the next valid request."""
    before = kernel.stderr()
    sock = kernel.socket("control")
    try:
        for _ in range(20_000):
            sock.send_multipart([DELIM, b"0" * 64, *kernel.parts("kernel_info_request")])
        assert_still_serving(kernel, sock)
    finally:
        sock.close()
    new = kernel.stderr()[len(before) :].splitlines()
    assert 1 <= len([line for line in new if "dropped" in line]) <= 20, new[:30]


def test_execute_with_wrongly_typed_fields_runs_nothing(kernel: Kernel) -> None:
    """code that is not a string, or user_expressions that is not a dict, is refused with
    an error reply before anything runs (it used to run str(code), or run the cell and
    fail afterwards)."""
    sock = kernel.socket("shell")
    try:
        for content in (
            {"code": 5},
            {"code": ["ran_list = 1"]},
            {"code": "ran_cell = 1", "user_expressions": [1]},
        ):
            req = kernel.parts("execute_request", content)
            sock.send_multipart(kernel.signed(req))
            reply = assert_next_reply_is_to(sock, req)["content"]
            assert reply["status"] == "error" and reply["ename"] == "TypeError", reply
            assert isinstance(reply["execution_count"], int)
        check = kernel.parts("execute_request", {"code": "print('ran_cell' in globals())"})
        sock.send_multipart(kernel.signed(check))
        assert assert_next_reply_is_to(sock, check)["content"]["status"] == "ok"
    finally:
        sock.close()
    kc = kernel.kc
    reply = kc.execute_interactive("assert 'ran_cell' not in globals()", timeout=30)
    assert reply["content"]["status"] == "ok"
