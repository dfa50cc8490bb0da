"""One WebSocket reader of the flood test (tests/test_flood.py), run as its own process
(``python -m support.flood.reader`` in tests/).

Roles:

- ``fast``: reads as fast as it can; on ``go`` (a line on stdin) it sends the flood's
  execute_request itself, with the msg_id given on the command line, so it also gets the
  execute_reply;
- ``slow``: sleeps ``--pause`` seconds after every message; on ``drain`` (stdin) it stops
  pausing;
- ``stalled``: reads nothing until ``read`` (stdin), then reads as fast as it can.

Each prints ``ready`` once connected (and the fast reader ``flowing`` on the first line of
the flood), reads until it has the flood request's ``status: idle`` (the fast reader also
its execute_reply), a close frame, a dropped connection or ``--timeout`` seconds after it
started reading, and then writes a JSON summary to ``--out``.

Every received message is recorded as one row (see ``ROW_FIELDS``).  Stream messages of
the flood's stdout are reduced to the line numbers they carry: the text is reassembled
across messages (a message may end mid-line); the lines *completed* in a message are
attributed to it.  After a drop notice the pending partial line is forgotten and the
text up to the next newline is skipped, as its start was dropped.  A message's ``size``
is the UTF-8 byte length of every string value in its ``content``, recursively.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import socket
import struct
import sys
import time
import uuid
from typing import Any

import websocket
from benchlib.messages import execute_content, legacy_text, make_message

NOTICE = re.compile(r"^\[ipytwist\] (\d+) output messages? \((\d+) bytes\) dropped")
LINE_PAD = 1000
XS = "x" * LINE_PAD
TEXT_KEEP = 2000  # characters kept of stream texts that are not flood lines
ROW_FIELDS = (
    "channel",
    "msg_type",
    "msg_id",
    "parent",
    "size",
    "recv_time",
    # stream messages only (else None):
    "name",
    "first_line",  # first line number completed in this message (None: no line)
    "last_line",
    "n_lines",
    "contiguous",  # the line numbers inside the message go up by exactly 1
    "malformed",  # completed lines that are not "<i> xxx…x"
    "text",  # kept for non-flood stream messages (notices, stderr), else None
    "notice",  # [messages, bytes] of a drop notice, else None
    "state",  # execution_state of status messages, else None
)


def content_size(value: Any) -> int:
    """UTF-8 byte length of all string values, walked through dicts and lists."""
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8"))
    if isinstance(value, dict):
        return sum(content_size(v) for v in value.values())
    if isinstance(value, list):
        return sum(content_size(v) for v in value)
    return 0


class Lines:
    """Reassembles the flood's stdout across messages and checks its lines."""

    def __init__(self) -> None:
        self.carry = ""
        self.skip_fragment = False

    def gap(self) -> None:
        """Messages were dropped: the partial line is lost, the next fragment unverifiable."""
        self.carry = ""
        self.skip_fragment = True

    def feed(self, text: str) -> tuple[int | None, int | None, int, bool, int]:
        if self.skip_fragment:
            nl = text.find("\n")
            if nl < 0:
                return None, None, 0, True, 0
            text = text[nl + 1 :]
            self.skip_fragment = False
        lines = (self.carry + text).split("\n") if self.carry else text.split("\n")
        self.carry = lines.pop()
        first: int | None = None
        last: int | None = None
        contiguous = True
        malformed = 0
        for line in lines:
            sp = line.find(" ")
            digits = line[:sp] if sp > 0 else ""
            if not (digits.isdigit() and len(line) == sp + 1 + LINE_PAD and line.endswith(XS)):
                malformed += 1
                continue
            n = int(digits)
            if first is None:
                first = n
            elif last is not None and n != last + 1:
                contiguous = False
            last = n
        return first, last, len(lines) - malformed, contiguous, malformed


def execute_request(msg_id: str, code: str, session: str) -> str:
    msg = make_message("execute_request", execute_content(code), session, msg_id)
    return legacy_text(msg, "shell")


def say(word: str) -> None:
    sys.stdout.write(word + "\n")
    sys.stdout.flush()


def stdin_word(block: bool) -> str:
    """The next command on stdin ("" if none is waiting and ``block`` is false)."""
    if not block and not select.select([sys.stdin], [], [], 0)[0]:
        return ""
    return sys.stdin.readline().strip() or "eof"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--role", choices=("fast", "slow", "stalled"), required=True)
    ap.add_argument("--flood-id", required=True)
    ap.add_argument("--code", default="")
    ap.add_argument("--out", required=True)
    ap.add_argument("--pause", type=float, default=0.05)
    ap.add_argument("--rcvbuf", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()

    session = f"flood-{args.role}-{uuid.uuid4().hex[:8]}"
    options: dict[str, Any] = {
        "header": [f"Authorization: token {args.token}"],
        "suppress_origin": True,
        "skip_utf8_validation": True,
        "timeout": 10,
    }
    if args.rcvbuf:
        options["sockopt"] = ((socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf),)
    ws = websocket.create_connection(f"{args.url}?session_id={session}", **options)
    summary: dict[str, Any] = {
        "role": args.role,
        "session": session,
        "fields": ROW_FIELDS,
        "rows": [],
        "connected_at": time.time(),
        "sent_at": None,
        "read_started_at": None,
        "idle_at": None,
        "reply": None,
        "closed": None,
        "error": None,
        "timed_out": False,
        "carry": 0,
        "finished_at": None,
    }
    say("ready")

    pause = args.pause if args.role == "slow" else 0.0
    if args.role == "fast":
        if stdin_word(block=True) != "go":
            return
        ws.send(execute_request(args.flood_id, args.code, session))
        summary["sent_at"] = time.time()
    elif args.role == "stalled":
        if stdin_word(block=True) != "read":
            return
    summary["read_started_at"] = time.time()

    try:
        read(ws, args, summary, pause)
    finally:
        summary["finished_at"] = time.time()
        with open(args.out + ".tmp", "w") as f:
            json.dump(summary, f)
        os.replace(args.out + ".tmp", args.out)
        try:
            ws.close(timeout=2)
        except Exception:
            ws.shutdown()


def read(
    ws: websocket.WebSocket, args: argparse.Namespace, summary: dict[str, Any], pause: float
) -> None:
    flood = args.flood_id
    rows: list[list[Any]] = summary["rows"]
    lines = Lines()
    flowing = False
    deadline = time.monotonic() + args.timeout
    ws.settimeout(1.0)
    while True:
        if summary["idle_at"] is not None and (args.role != "fast" or summary["reply"]):
            break
        if time.monotonic() > deadline:
            summary["timed_out"] = True
            break
        try:
            opcode, frame = ws.recv_data_frame(False)
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketConnectionClosedException, OSError) as e:
            summary["closed"] = {"code": None, "reason": f"dropped: {e!r}", "at": time.time()}
            break
        now = time.time()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            data = frame.data or b""
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
            reason = data[2:].decode("utf-8", "replace")
            summary["closed"] = {"code": code, "reason": reason, "at": now}
            break
        msg = json.loads(frame.data)
        header = msg["header"]
        msg_type = header["msg_type"]
        parent = (msg.get("parent_header") or {}).get("msg_id")
        content = msg.get("content") or {}
        row: list[Any] = [msg.get("channel"), msg_type, header.get("msg_id"), parent]
        row += [content_size(content), now]
        stream: list[Any] = [None] * 8
        state = None
        if msg_type == "stream":
            text = content.get("text", "")
            name = content.get("name")
            match = NOTICE.match(text) if name == "stderr" else None
            if match:
                lines.gap()
                notice = [int(match.group(1)), int(match.group(2))]
                stream = [name, None, None, 0, True, 0, text[:TEXT_KEEP], notice]
            elif name == "stdout" and parent == flood:
                first, last, n, contiguous, malformed = lines.feed(text)
                stream = [name, first, last, n, contiguous, malformed, None, None]
                if not flowing and args.role == "fast":
                    flowing = True
                    say("flowing")
            else:
                stream = [name, None, None, 0, True, 0, text[:TEXT_KEEP], None]
        elif msg_type == "status":
            state = content.get("execution_state")
            if state == "idle" and parent == flood:
                summary["idle_at"] = now
        elif msg_type == "execute_reply" and parent == flood:
            summary["reply"] = {
                "status": content.get("status"),
                "ename": content.get("ename"),
                "at": now,
            }
        rows.append(row + stream + [state])
        if pause:
            if stdin_word(block=False) == "drain":
                pause = 0.0
            else:
                time.sleep(pause)  # the slow reader's pace: part of the scenario
    summary["carry"] = len(lines.carry)


if __name__ == "__main__":
    main()
