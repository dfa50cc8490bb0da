r"""Issue 17, item 6: comm traffic obeys the flow control.

A slider set 100,000 times in a loop (``for i in range(100_000): s.value = i``) while
three WebSocket windows of the kernel are open, on the real service with
``--replay-bytes 16 MiB --transcript-bytes 8 MiB``:

- a fast window (legacy frames) that sends the cell and reads as fast as it can;
- a slow window (v1 frames) that pauses after every few messages;
- a stalled window (legacy, 4 KiB receive buffer) that reads nothing until the fast
  window has the cell's idle, then catches up.

The service's peak memory (VmHWM) grows by no more than test_replay_memory's bound for
these two options; the fast window gets every one of the slider's 99,999 updates and no
notice; every window ends at 99,999 with the cell's idle; every gap in a slower window
is announced by an exact notice (the messages it counts are those the fast window got
between the ones before and after it), and the stalled window has one.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from benchlib.procs import cpu_seconds, rss_mib, status_kib
from benchlib.servers import Service
from benchlib.wsclient import WSClient
from support.service import service_fixture

SETS = 100_000
LAST = SETS - 1
MIB = 1024 * 1024
REPLAY_MIB, TRANSCRIPT_MIB = 16, 8
#: test_replay_memory's bound for the two options: the log and the transcript, with
#: encodings and allocator slack.
GROWTH_BOUND_MIB = (REPLAY_MIB + TRANSCRIPT_MIB) * 1.5 + 16
#: The slow window pauses this long after every PAUSE_EVERY messages.
PAUSE, PAUSE_EVERY = 0.002, 10
STALLED_RCVBUF = 4096
READ_TIMEOUT = 60.0
NOTICE = re.compile(r"^\[ipytwist\] (\d+) output messages? \((\d+) bytes\) dropped")
SLIDER = "import ipywidgets\ns = ipywidgets.IntSlider(max=10**6)\ndisplay(s)"
CELL = f"for i in range({SETS}):\n    s.value = i"

svc = service_fixture(
    "widget-flood",
    "--replay-bytes",
    str(REPLAY_MIB * MIB),
    "--transcript-bytes",
    str(TRANSCRIPT_MIB * MIB),
)


@dataclass
class Window:
    """One window's record: (msg_id, slider value or None) of each message, and the
    notices (their count and where they came in the record)."""

    name: str
    client: WSClient
    pause_every: int = 0
    seen: list[tuple[str, int | None]] = field(default_factory=list)
    notices: list[tuple[int, int]] = field(default_factory=list)  # (index in seen, count)
    idle: bool = False
    replied: bool = False
    error: str = ""


def read(win: Window, sid: str, cell: str, want_reply: bool) -> None:
    """Read ``win`` until the cell's idle (and its reply, if ``want_reply``)."""
    ws = win.client.ws
    ws.settimeout(READ_TIMEOUT)
    try:
        while not (win.idle and (win.replied or not want_reply)):
            opcode, frame = ws.recv_data_frame(False)
            msg = win.client.decode(opcode, frame.data)
            record(win, msg, sid, cell)
            if win.pause_every and len(win.seen) % win.pause_every == 0:
                time.sleep(PAUSE)  # a slow reader (not synchronisation)
    except Exception as e:  # reported by the test
        win.error = f"{type(e).__name__}: {e}"


def record(win: Window, msg: dict[str, Any], sid: str, cell: str) -> None:
    msg_type, content = msg["msg_type"], msg["content"]
    if msg_type == "stream" and (m := NOTICE.match(content.get("text", ""))):
        win.notices.append((len(win.seen), int(m.group(1))))
        return
    if msg.get("channel", "iopub") != "iopub":
        win.replied = win.replied or msg_type == "execute_reply"
        return  # the window's own reply: not in the others' record
    value = None
    if msg_type == "comm_msg" and content["comm_id"] == sid:
        value = content["data"]["state"].get("value")
    win.seen.append((msg["header"]["msg_id"], value))
    if msg["parent_header"].get("msg_id") == cell:
        win.idle = win.idle or (msg_type == "status" and content["execution_state"] == "idle")


def gap_problems(win: Window, index: dict[str, int]) -> list[str]:
    """Each notice counts exactly the messages the fast window got between the ones
    before and after it; every other gap in the window is a problem."""
    problems = []
    positions = [index.get(msg_id, -2) for msg_id, _ in win.seen]
    if -2 in positions:
        problems.append(f"{win.name}: a message the fast window never got")
    told = dict(win.notices)
    for i in range(len(positions)):
        before = positions[i - 1] if i else -1
        missing = positions[i] - before - 1
        if missing != told.get(i, 0):
            problems.append(f"{win.name}: {missing} missing at {i}, told {told.get(i, 0)}")
    return problems[:5]


def test_a_slider_set_100000_times_with_three_windows_open(svc: Service) -> None:
    kid = svc.start_kernel()
    fast = Window("fast", WSClient.connect(svc, kid))
    slow = Window("slow", WSClient.connect(svc, kid, v1=True), pause_every=PAUSE_EVERY)
    rcvbuf = ((socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF),)
    stalled = Window("stalled", WSClient.connect(svc, kid, sockopt=rcvbuf))
    windows = [fast, slow, stalled]
    try:
        fast.client.kernel_info()
        setup = fast.client.execute_request(SLIDER)
        _, got = fast.client.finish(setup)
        (sid,) = [
            m["content"]["comm_id"]
            for m in got
            if m["msg_type"] == "comm_open"
            and m["content"]["data"]["state"]["_model_name"] == "IntSliderModel"
        ]
        for win in (slow, stalled):  # each has the slider too, then nothing pending
            win.client.until_idle(setup)
        base, cpu = rss_mib(svc.pid), cpu_seconds(svc.pid) or 0.0
        started = time.monotonic()
        cell = fast.client.execute_request(CELL)
        threads = [
            threading.Thread(target=read, args=(fast, sid, cell, True)),
            threading.Thread(target=read, args=(slow, sid, cell, False)),
        ]
        for t in threads:
            t.start()
        threads[0].join(READ_TIMEOUT * 2)
        flood_seconds = time.monotonic() - started
        read(stalled, sid, cell, False)
        threads[1].join(READ_TIMEOUT * 2)
        peak = (status_kib(svc.pid, "VmHWM") or 0) / 1024
        cpu = (cpu_seconds(svc.pid) or 0.0) - cpu
        report(windows, base, peak, flood_seconds, cpu)
        check(windows, base, peak)
        reply, _ = fast.client.execute("print(s.value)")
        assert reply["content"]["status"] == "ok"
    finally:
        for win in windows:
            win.client.close()
        svc.delete_kernel(kid)


def report(windows: list[Window], base: float, peak: float, seconds: float, cpu: float) -> None:
    print(
        f"\nflood of {SETS} sets: {seconds:.1f} s (service CPU {cpu:.1f} s); "
        f"service RSS {base:.0f} MiB, peak {peak:.0f} MiB"
    )
    for win in windows:
        values = [v for _, v in win.seen if v is not None]
        dropped = sum(n for _, n in win.notices)
        print(
            f"  {win.name}: {len(win.seen)} messages, {len(values)} updates, "
            f"{len(win.notices)} notices ({dropped} dropped), last {values[-1:]}"
        )


def check(windows: list[Window], base: float, peak: float) -> None:
    fast, slow, stalled = windows
    problems = [f"{w.name}: {w.error}" for w in windows if w.error]
    problems += [f"{w.name}: no idle" for w in windows if not w.idle]
    if peak - base > GROWTH_BOUND_MIB:
        problems.append(f"peak {peak:.0f} MiB is more than {GROWTH_BOUND_MIB} over {base:.0f}")
    values = [v for _, v in fast.seen if v is not None]
    if values != list(range(1, SETS)) or fast.notices:
        problems.append(f"fast: {len(values)} updates, {len(fast.notices)} notices")
    index = {msg_id: i for i, (msg_id, _) in enumerate(fast.seen)}
    for win in (slow, stalled):
        last = [v for _, v in win.seen if v is not None][-1:]
        if last != [LAST]:
            problems.append(f"{win.name}: ends at {last}")
        problems += gap_problems(win, index)
    if not stalled.notices:
        problems.append("stalled: no notice")
    assert not problems, problems
