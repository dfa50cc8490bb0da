"""The flood benchmark's WebSocket readers, each run in a process of its own: fast, slow
(a pause after every message) and stalled (a small receive buffer, never reads)."""

from __future__ import annotations

import json
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

import websocket  # websocket-client: a plain blocking client, cheap per message
from benchlib.messages import execute_content, legacy_text, make_message

PAD = 1000  # the 'x' * PAD after each number
FLOOD_CODE = f"i = 0\nwhile True:\n    print(i, 'x' * {PAD})\n    i += 1"
LINE_TAIL = 1 + PAD  # the space and the x's after the number
# Drop notices: ipytwist's own, and jupyter_server's iopub rate-limit messages (only
# seen with --jupyter-rate-limits).
NOTICE_PREFIXES = ("[ipytwist] ", "IOPub ")
STALLED_DRAIN_SECONDS = 10.0  # the stalled reader reads at most this long at the end
STALLED_SILENCE = 5.0  # ... and stops earlier after this long without data
TCP_STATES = {
    1: "ESTABLISHED",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    11: "CLOSING",
}


@dataclass
class ReaderConfig:
    role: str  # "fast", "slow" or "stalled"
    url: str
    headers: dict[str, str]
    flood_msg_id: str
    pause: float = 0.0
    rcvbuf: int = 0


class LineCounter:
    """Follows the printed numbers through stream texts that may split lines anywhere.

    A text whose complete lines are exactly the next numbers, each followed by
    the expected tail, is checked with a few string operations (the common
    case); anything else is checked line by line.
    """

    def __init__(self) -> None:
        self.partial = ""
        self.lines = 0
        self.first: int | None = None
        self.last: int | None = None
        self.lost = 0  # numbers skipped between consecutive lines
        self.disordered = 0  # lines whose number did not exceed the previous one
        self.malformed = 0  # lines that are not "<number> " + 'x' * PAD
        self.fragments = 0  # line ends right after a gap (their start was dropped)
        self._after_gap = False

    def gap(self) -> None:
        """Output was dropped here: a partial line cannot be continued, and the next
        text may start in the middle of a line."""
        self.partial = ""
        self._after_gap = True

    def feed(self, text: str) -> None:
        if self.partial:
            text = self.partial + text
        cut = text.rfind("\n") + 1
        self.partial = text[cut:]
        if cut == 0:
            return
        body = text[:cut]
        if self._after_gap:
            self._after_gap = False
            nl = body.find("\n")
            head = _number(body, 0)
            whole = head is not None and nl == len(str(head)) + LINE_TAIL
            if not whole or (self.last is not None and head <= self.last):  # type: ignore[operator]
                self.fragments += 1
                body = body[nl + 1 :]
                if not body:
                    return
        size = len(body)
        n = body.count("\n")
        first = _number(body, 0)
        last_start = body.rfind("\n", 0, size - 1) + 1
        last = _number(body, last_start)
        if (
            first is not None
            and last is not None
            and (self.last is None or first == self.last + 1)
            and last - first + 1 == n
            and size == digits_upto(last + 1) - digits_upto(first) + n * (LINE_TAIL + 1)
        ):
            if self.first is None:
                self.first = first
            self.last = last
            self.lines += n
            return
        self._slow(body.split("\n")[:-1])

    def _slow(self, lines: list[str]) -> None:
        prev = self.last
        for line in lines:
            sp = line.find(" ")
            head = line[:sp] if sp > 0 else line
            if not head.isdigit():
                self.malformed += 1
                continue
            if len(line) != len(head) + LINE_TAIL:
                self.malformed += 1
            i = int(head)
            self.lines += 1
            if prev is None:
                self.first = i
            elif i <= prev:
                self.disordered += 1
                continue
            else:
                self.lost += i - prev - 1
            prev = i
        self.last = prev


def _number(text: str, start: int) -> int | None:
    sp = text.find(" ", start, start + 24)
    head = text[start:sp] if sp > start else ""
    return int(head) if head.isdigit() else None


def digits_upto(n: int) -> int:
    """Total decimal digits of the numbers 0 .. n-1."""
    total, lo, hi, d = 0, 0, 10, 1
    while lo < n:
        total += (min(n, hi) - lo) * d
        lo, hi, d = hi, hi * 10, d + 1
    return total


def abrupt(e: BaseException) -> str:
    """How a connection ended without a close frame."""
    if isinstance(e, websocket.WebSocketConnectionClosedException):
        return "TCP closed, no close frame"
    if isinstance(e, ConnectionResetError):
        return "TCP reset, no close frame"
    return f"{type(e).__name__}: {e}"[:200]


def _close_info(frame: Any, t: float) -> dict[str, Any]:
    data = bytes(frame.data or b"")
    code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
    reason = data[2:].decode(errors="replace")
    return {"at": t, "how": "close frame", "code": code, "reason": reason}


#: What one read gives: a frame (opcode, frame), no frame within the timeout, or the
#: connection's end (what the close frame said, or how it was dropped).
Received = tuple[int, Any] | None | dict[str, Any]


def _receive(ws: websocket.WebSocket) -> Received:
    """The next frame, None on a timeout, or a dict saying how the connection closed."""
    try:
        opcode, frame = ws.recv_data_frame(True)
    except websocket.WebSocketTimeoutException:
        return None
    except (websocket.WebSocketConnectionClosedException, OSError) as e:
        return {"at": time.monotonic(), "how": abrupt(e)}
    if opcode == websocket.ABNF.OPCODE_CLOSE:
        return _close_info(frame, time.monotonic())
    return opcode, frame


def _connect(cfg: ReaderConfig) -> websocket.WebSocket:
    sockopt = [(socket.SOL_SOCKET, socket.SO_RCVBUF, cfg.rcvbuf)] if cfg.rcvbuf else []
    return websocket.create_connection(
        cfg.url,
        timeout=30,
        header=[f"{k}: {v}" for k, v in cfg.headers.items()],
        sockopt=sockopt,
        skip_utf8_validation=True,
        enable_multithread=False,
    )


def reader_main(cfg: ReaderConfig, out: Any, go: Any, stop: Any) -> None:
    """Entry point of a reader process; reports through ``out`` as (kind, role, value)."""
    try:
        ws = _connect(cfg)
    except Exception as e:
        out.put(("error", cfg.role, f"connect: {type(e).__name__}: {e}"))
        return
    try:
        if cfg.role == "stalled":
            result = _stalled(cfg, ws, out, stop)
        else:
            result = _read(cfg, ws, out, go, stop)
        out.put(("result", cfg.role, result))
    except Exception as e:
        out.put(("error", cfg.role, f"{type(e).__name__}: {e}"))
    finally:
        try:
            ws.shutdown()
        except Exception:
            pass


def kernel_info(ws: websocket.WebSocket, session: str) -> bool:
    """Ask kernel_info until answered, as JupyterLab does; True once the kernel replied."""
    for _ in range(30):
        msg_id = uuid.uuid4().hex
        ws.send(legacy_text(make_message("kernel_info_request", {}, session, msg_id), "shell"))
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            ws.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                raw = ws.recv()
            except websocket.WebSocketTimeoutException:
                break
            if raw and json.loads(raw)["parent_header"].get("msg_id") == msg_id:
                return True
    return False


def _read(cfg: ReaderConfig, ws: websocket.WebSocket, out: Any, go: Any, stop: Any) -> dict:
    session = cfg.url.rsplit("session_id=", 1)[1]
    if cfg.role == "fast" and not kernel_info(ws, session):
        raise RuntimeError("kernel A never answered kernel_info")
    out.put(("ready", cfg.role, time.monotonic()))
    counter = LineCounter()
    series: list[tuple[float, int, float]] = []  # (monotonic, lines so far, CPU seconds)
    notices: list[tuple[float, str]] = []
    closed: dict[str, Any] | None = None
    idle_at: float | None = None
    msgs = nbytes = 0
    flood_id = cfg.flood_msg_id
    loads = json.loads
    pause = cfg.pause
    if cfg.role == "fast":
        go.wait(600)
        if stop.is_set():  # the run failed before the flood
            return {"error": "stopped before the flood"}
        flood = make_message("execute_request", execute_content(FLOOD_CODE), session, flood_id)
        ws.send(legacy_text(flood, "shell"))
        out.put(("started", cfg.role, time.monotonic()))
    ws.settimeout(0.2)
    next_sample = 0.0
    while True:
        now = time.monotonic()
        if now >= next_sample:
            series.append((now, counter.lines, time.process_time()))
            next_sample = now + 0.2
            if stop.is_set():
                break
        got = _receive(ws)
        if got is None:
            continue
        if isinstance(got, dict):
            closed = got
            break
        opcode, frame = got
        if opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            continue
        data = frame.data
        msgs += 1
        nbytes += len(data)
        msg = loads(data)
        if msg.get("channel") == "iopub":
            msg_type = msg["header"]["msg_type"]
            if msg_type == "stream":
                content = msg["content"]
                text = content["text"]
                if content["name"] == "stderr" and text.startswith(NOTICE_PREFIXES):
                    notices.append((time.monotonic(), text[:300]))
                    counter.gap()
                elif content["name"] == "stdout" and msg["parent_header"].get("msg_id") == flood_id:
                    counter.feed(text)
            elif (
                msg_type == "status"
                and idle_at is None
                and msg["content"]["execution_state"] == "idle"
                and msg["parent_header"].get("msg_id") == flood_id
            ):
                idle_at = time.monotonic()
                out.put(("idle", cfg.role, idle_at))
        if pause:
            time.sleep(pause)
    series.append((time.monotonic(), counter.lines, time.process_time()))
    return {
        "lines": counter.lines,
        "first": counter.first,
        "last": counter.last,
        "lost": counter.lost,
        "disordered": counter.disordered,
        "malformed": counter.malformed,
        "fragments": counter.fragments,
        "messages": msgs,
        "bytes": nbytes,
        "notices": len(notices),
        "notice_samples": notices[:5],
        "idle_at": idle_at,
        "closed": closed,
        "series": series,
    }


def _tcp_state(sock: socket.socket) -> str:
    try:
        state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    except OSError as e:
        return f"error {e.errno}"
    return TCP_STATES.get(state, str(state))


def _stalled(cfg: ReaderConfig, ws: websocket.WebSocket, out: Any, stop: Any) -> dict:
    """Never read until told to stop (watching the TCP state); then drain for a while
    to find out whether the server closed the connection and with what."""
    out.put(("ready", cfg.role, time.monotonic()))
    sock = ws.sock
    assert sock is not None
    rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    tcp_change: tuple[float, str] | None = None
    while not stop.wait(0.2):
        state = _tcp_state(sock)
        if state != "ESTABLISHED" and tcp_change is None:
            tcp_change = (time.monotonic(), state)
    closed: dict[str, Any] | None = None
    msgs = nbytes = 0
    silent = False
    t0 = time.monotonic()
    ws.settimeout(STALLED_SILENCE)
    while time.monotonic() - t0 < STALLED_DRAIN_SECONDS:
        got = _receive(ws)
        if got is None:
            silent = True  # nothing more came: the server keeps it open (or is too busy)
            break
        if isinstance(got, dict):
            closed = got
            break
        msgs += 1
        nbytes += len(got[1].data)
    drain = time.monotonic() - t0
    return {
        "rcvbuf": rcvbuf,
        "tcp_change": tcp_change,
        "drained_messages": msgs,
        "drained_bytes": nbytes,
        "drain_seconds": drain,
        "drain_finished": closed is not None or silent,
        "closed": closed,
    }
