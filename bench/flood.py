"""Output flood benchmark: ipytwist and jupyter_server + ipykernel, in one run.

For each server, in turn (a fresh server each time):

* kernel A runs ``i = 0; while True: print(i, 'x' * 1000); i += 1`` for ``--seconds``;
* three WebSocket clients on kernel A, each in its own process with its own
  ``session_id``, connected before the flood: a fast reader (reads as fast as it
  can, and is the one that sends the flood request), a slow reader (pauses 50 ms
  after every message) and a stalled reader (small ``SO_RCVBUF``, never reads);
* kernel B, on the same server, is asked ``1`` every 0.2 s by a prober in the
  main process: ``execute_request`` -> its ``status: idle``, first ~25 times
  before the flood (baseline), then throughout it;
* after the flood period, kernel A is interrupted through REST
  (``POST /api/kernels/{id}/interrupt``) and the time until the fast reader sees
  the flood request's ``idle`` is measured (capped).

Reported per server: peak RSS of the server process and of the server with all
its descendants (kernels), sampled every 0.2 s; each reader's lines/s, lost
lines (gaps in the printed numbers), drop notices and whether the server closed
it (code, reason); kernel B's round trip (idle median, flood median and p90);
interrupt -> idle.  ``--max-rss-mib`` ends a server's flood early if the server
and its kernels pass that much memory.

Prints a markdown table and writes JSON to ``bench/results/``.
``python bench/flood.py --help`` for options.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import queue
import shlex
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import websocket  # websocket-client: a plain blocking client, cheap per message

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ws_fanout import (  # noqa: E402
    RESULTS_DIR,
    Ipytwist,
    JupyterServer,
    Server,
    execute_content,
    message,
    raise_fd_limit,
)

SERVERS = ("ipytwist", "jupyter_server")
PAD = 1000  # the 'x' * PAD after each number
FLOOD_CODE = f"i = 0\nwhile True:\n    print(i, 'x' * {PAD})\n    i += 1"
LINE_TAIL = 1 + PAD  # the space and the x's after the number
MIB = 1024 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
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


# -- servers ----------------------------------------------------------------------------


#: What ws_fanout's launcher passes to turn jupyter_server's iopub rate limits off.
JUPYTER_NO_RATE_LIMITS = (
    "--ZMQChannelsWebsocketConnection.iopub_msg_rate_limit=0",
    "--ZMQChannelsWebsocketConnection.iopub_data_rate_limit=0",
)


class Tweaked(Server):
    """Drops some of the launcher's arguments and appends others (``--*-args``)."""

    drop_args: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()

    def _spawn(self, argv: list[str], env: dict[str, str]) -> None:
        argv = [a for a in argv if a not in self.drop_args] + list(self.extra_args)
        super()._spawn(argv, env)


class FloodIpytwist(Tweaked, Ipytwist):
    pass


class FloodJupyterServer(Tweaked, JupyterServer):
    pass


def make_server(name: str, tmp: str, args: argparse.Namespace) -> Server:
    s: Tweaked
    if name == "ipytwist":
        s = FloodIpytwist(name, tmp)
        s.extra_args = tuple(shlex.split(args.ipytwist_args))
    else:
        s = FloodJupyterServer(name, tmp)
        s.extra_args = tuple(shlex.split(args.jupyter_args))
        if args.jupyter_rate_limits:  # keep jupyter_server's default iopub rate limits
            s.drop_args = JUPYTER_NO_RATE_LIMITS
    return s


# -- memory -----------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (fields 14 and 15 of /proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat, to tell a pid from a later reuse of it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except (OSError, ValueError):
                continue
            found.extend(kids)
            todo.extend(kids)
    return found


class RssSampler(threading.Thread):
    """Samples VmRSS of a process and of it plus its descendants every ``interval`` s.

    ``over`` is set once the total passes ``limit`` bytes; once it passes
    ``hard_limit`` the server and its descendants are killed at once (``over_hard``).
    Remembers every descendant seen, so they can be killed at the end.
    """

    def __init__(self, pid: int, limit: int, hard_limit: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.limit = limit
        self.hard_limit = hard_limit
        self.interval = interval
        #: (monotonic time, server RSS, server + descendants RSS, server CPU seconds)
        self.samples: list[tuple[float, int, int, float]] = []
        self.peak_server = 0
        self.peak_total = 0
        self.seen: dict[int, str | None] = {}
        self.over = threading.Event()
        self.over_hard = threading.Event()
        self.over_at: float | None = None
        self._halt = threading.Event()

    def sample(self) -> None:
        own = rss_bytes(self.pid)
        total = own
        for kid in descendants(self.pid):
            if kid not in self.seen:
                self.seen[kid] = start_time(kid)
            total += rss_bytes(kid)
        now = time.monotonic()
        self.samples.append((now, own, total, cpu_seconds(self.pid)))
        self.peak_server = max(self.peak_server, own)
        self.peak_total = max(self.peak_total, total)
        if total > self.limit and not self.over.is_set():
            self.over_at = now
            self.over.set()
        if total > self.hard_limit and not self.over_hard.is_set():
            self.over_hard.set()
            try:
                os.killpg(self.pid, signal.SIGKILL)  # the server leads its own session
            except OSError:
                pass
            kill_leftovers(self.seen)

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def peaks_between(self, t0: float, t1: float) -> tuple[int, int]:
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        return max((s[1] for s in inside), default=0), max((s[2] for s in inside), default=0)

    def cpu_share(self, t0: float, t1: float) -> float | None:
        """The server's CPU time between two samples near t0 and t1, per second."""
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        return (inside[-1][3] - inside[0][3]) / (inside[-1][0] - inside[0][0])


def kill_leftovers(pids: dict[int, str | None]) -> list[int]:
    """SIGKILL processes recorded as the server's descendants that are still there."""
    killed = []
    for pid, started in pids.items():
        if started is not None and start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return killed


# -- readers (each in its own process) ----------------------------------------------------


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


def _kernel_info(ws: websocket.WebSocket, session: str) -> bool:
    """Ask kernel_info until answered, as JupyterLab does; True once the kernel replied."""
    for _ in range(30):
        msg_id = uuid.uuid4().hex
        ws.send(message(msg_id, session, "shell", "kernel_info_request", {}))
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
    if cfg.role == "fast" and not _kernel_info(ws, session):
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
        ws.send(message(flood_id, session, "shell", "execute_request", execute_content(FLOOD_CODE)))
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
        try:
            opcode, frame = ws.recv_data_frame(True)
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketConnectionClosedException, OSError) as e:
            closed = {"at": time.monotonic(), "how": abrupt(e)}
            break
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            closed = _close_info(frame, time.monotonic())
            break
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
        try:
            opcode, frame = ws.recv_data_frame(True)
        except websocket.WebSocketTimeoutException:
            silent = True  # nothing more came: the server keeps it open (or is too busy)
            break
        except (websocket.WebSocketConnectionClosedException, OSError) as e:
            closed = {"at": time.monotonic(), "how": abrupt(e)}
            break
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            closed = _close_info(frame, time.monotonic())
            break
        msgs += 1
        nbytes += len(frame.data)
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


# -- prober (main process) ------------------------------------------------------------------


class Prober:
    """Round trips of ``1`` on kernel B over its own WebSocket."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float) -> None:
        self.session = uuid.uuid4().hex
        self.ws = websocket.create_connection(
            f"{url}?session_id={self.session}",
            timeout=30,
            header=[f"{k}: {v}" for k, v in headers.items()],
            skip_utf8_validation=True,
            enable_multithread=False,
        )
        self.timeout = timeout

    def ready(self) -> bool:
        return _kernel_info(self.ws, self.session)

    def round_trip(self) -> float | None:
        """Seconds from sending ``1`` to its idle; None after ``timeout``."""
        msg_id = uuid.uuid4().hex
        t0 = time.monotonic()
        request = message(msg_id, self.session, "shell", "execute_request", execute_content("1"))
        self.ws.send(request)
        deadline = t0 + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.ws.settimeout(left)
            try:
                raw = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                return None
            if not raw:
                continue
            msg = json.loads(raw)
            if (
                msg.get("channel") == "iopub"
                and msg["header"]["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
                and msg["parent_header"].get("msg_id") == msg_id
            ):
                return time.monotonic() - t0

    def close(self) -> None:
        try:
            self.ws.shutdown()
        except Exception:
            pass


# -- one server -----------------------------------------------------------------------------


@dataclass
class Outcome:
    server: str
    flood_seconds: float | None = None  # flood request sent -> interrupt sent
    stopped_early: str = ""
    peak_rss_server: int = 0
    peak_rss_total: int = 0
    peak_rss_server_flood: int = 0  # within the flood period only
    peak_rss_total_flood: int = 0
    idle_rtts: list[float | None] = field(default_factory=list)
    flood_rtts: list[float | None] = field(default_factory=list)
    interrupt_http: str = ""
    interrupt_to_idle: float | None = None
    interrupt_to_rest_idle: float | None = None  # GET /api/kernels/{id} execution_state
    readers: dict[str, dict] = field(default_factory=dict)
    reader_errors: dict[str, str] = field(default_factory=dict)
    rss_samples: list[tuple[float, int, int, float]] = field(default_factory=list)
    server_cpu: float | None = None  # server process CPU seconds per second of flood
    t0: float | None = None  # monotonic time of the flood request
    t_interrupt: float | None = None
    error: str = ""

    # derived -------------------------------------------------------------------------

    def lines_per_s(self, role: str) -> float | None:
        r = self.readers.get(role)
        if not r or self.t0 is None or self.t_interrupt is None:
            return None
        upto = [n for t, n, _ in r["series"] if t <= self.t_interrupt]
        span = self.t_interrupt - self.t0
        return (upto[-1] if upto else 0) / span if span > 0 else None

    def reader_cpu(self, role: str) -> float | None:
        """A reader's CPU seconds per second during the flood."""
        r = self.readers.get(role)
        if not r or self.t0 is None or self.t_interrupt is None:
            return None
        inside = [(t, c) for t, _, c in r["series"] if self.t0 <= t <= self.t_interrupt]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    def closed_text(self, role: str) -> str:
        r = self.readers.get(role)
        if r is None:
            return "n/a (" + self.reader_errors.get(role, "no result")[:60] + ")"
        c = r.get("closed")
        if c is None:
            if role == "stalled":
                drained = f"{r['drained_bytes'] / MIB:,.1f} MiB"
                if not r.get("drain_finished"):
                    took = r["drain_seconds"]
                    return f"no close seen (read {drained} in {took:.0f}s, more coming)"
                return f"no close seen (read {drained}, then {STALLED_SILENCE:g}s without data)"
            return "no"
        at = f" at {c['at'] - self.t0:.1f}s" if self.t0 is not None else ""
        if role == "stalled":  # it only read at the end: when did TCP see the close?
            change = r.get("tcp_change")
            at = f", TCP {change[1]} at {change[0] - self.t0:.1f}s" if change and self.t0 else ""
            at = at or " (seen when read at the end)"
        if c.get("how") == "close frame":
            return f"{c['code']} {c['reason'][:50]!r}{at}".replace("|", "/")
        return f"{c['how'][:60]}{at}".replace("|", "/")


def run_server(name: str, args: argparse.Namespace, tmp: str) -> Outcome:
    out = Outcome(name)
    server = make_server(name, tmp, args)
    sampler: RssSampler | None = None
    prober: Prober | None = None
    procs: list[Any] = []
    ctx = mp.get_context("spawn")
    inbox: Any = ctx.Queue()
    go, stop = ctx.Event(), ctx.Event()
    got: dict[tuple[str, str], Any] = {}

    def drain(timeout: float = 0.0) -> None:
        """Move reader reports into ``got``; wait up to ``timeout`` for the first."""
        try:
            kind, role, value = inbox.get(timeout=timeout) if timeout else inbox.get_nowait()
            got[(kind, role)] = value
            while True:
                kind, role, value = inbox.get_nowait()
                got[(kind, role)] = value
        except queue.Empty:
            pass

    def wait_for(keys: list[tuple[str, str]], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not all(k in got for k in keys):
            errors = {r: v for (k, r), v in got.items() if k == "error"}
            if errors:
                out.reader_errors.update(errors)
                if any(("result", r) in keys or ("ready", r) in keys for r in errors):
                    return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            drain(min(left, 0.2))
        return True

    try:
        server.start()
        assert server.proc is not None
        limit = args.max_rss_mib * MIB
        # Started before the kernels, so that every kernel process is seen (and killed).
        sampler = RssSampler(server.proc.pid, limit, int(limit * 1.5))
        sampler.start()
        kernel_a = server.start_kernel()
        kernel_b = server.start_kernel()
        ws_base = server.base.replace("http://", "ws://")
        url_a = f"{ws_base}/api/kernels/{kernel_a}/channels"
        flood_id = uuid.uuid4().hex
        configs = [
            ReaderConfig("fast", "", server.headers, flood_id),
            ReaderConfig("slow", "", server.headers, flood_id, pause=args.slow_pause),
            ReaderConfig("stalled", "", server.headers, flood_id, rcvbuf=args.stalled_rcvbuf),
        ]
        for cfg in configs:
            cfg.url = f"{url_a}?session_id={uuid.uuid4().hex}"
            p = ctx.Process(
                target=reader_main, args=(cfg, inbox, go, stop), name=f"flood-{cfg.role}"
            )
            p.start()
            procs.append(p)
        if not wait_for([("ready", c.role) for c in configs], 90):
            raise RuntimeError(f"readers not ready: {out.reader_errors or 'timeout'}")

        prober = Prober(f"{ws_base}/api/kernels/{kernel_b}/channels", server.headers, 10.0)
        if not prober.ready():
            raise RuntimeError("kernel B never answered kernel_info")
        for _ in range(5):  # warm-up, untimed
            prober.round_trip()
        probe_until(prober, args.interval, out.idle_rtts, count=args.baseline)

        go.set()
        if not wait_for([("started", "fast")], 30):
            raise RuntimeError("the fast reader did not send the flood request")
        out.t0 = got[("started", "fast")]
        deadline = out.t0 + args.seconds

        def flood_over() -> bool:
            drain()
            if sampler is not None and sampler.over.is_set():
                out.stopped_early = (
                    f"server + kernels passed --max-rss-mib {args.max_rss_mib} "
                    f"after {sampler.over_at - out.t0:.1f}s"  # type: ignore[operator]
                )
                return True
            if server.proc is not None and server.proc.poll() is not None:
                out.stopped_early = f"server exited ({server.proc.returncode})"
                return True
            return time.monotonic() >= deadline

        # Probes run in a thread so that the interrupt goes out on time even when a
        # round trip takes seconds; the one in flight at the end still counts.
        halt = threading.Event()
        probes = threading.Thread(
            target=probe_until,
            args=(prober, args.interval, out.flood_rtts),
            kwargs={"until": halt.is_set},
            daemon=True,
        )
        probes.start()
        while not flood_over():
            time.sleep(0.05)
        out.t_interrupt = time.monotonic()
        halt.set()
        out.flood_seconds = out.t_interrupt - out.t0
        try:
            server.request("POST", f"/api/kernels/{kernel_a}/interrupt", timeout=args.idle_cap)
            out.interrupt_http = f"ok in {time.monotonic() - out.t_interrupt:.3f}s"
        except Exception as e:
            out.interrupt_http = f"{type(e).__name__}: {e}"[:160]
        wait_idle(out, server, kernel_a, sampler, got, drain, args.idle_cap)
        probes.join(timeout=prober.timeout + 5)

        stop.set()
        wait_for([("result", c.role) for c in configs], 30 + STALLED_DRAIN_SECONDS)
        for c in configs:
            if ("result", c.role) in got:
                out.readers[c.role] = got[("result", c.role)]
            elif c.role not in out.reader_errors:
                out.reader_errors[c.role] = got.get(("error", c.role), "no result")
    except Exception as e:
        out.error = f"{type(e).__name__}: {e}"[:500]
        print(f"  {name}: failed: {out.error}", flush=True)
    finally:
        # Every step on its own, so that one failing cannot leave processes behind.
        stop.set()
        go.set()
        if prober is not None:
            prober.close()
        for p in procs:
            quietly(end_process, p)
        if sampler is not None:
            quietly(sampler.stop)
            quietly(sampler.sample)  # a last look for descendants
        quietly(server.stop)
        if sampler is not None:
            if sampler.over_hard.is_set():
                killed_note = "server killed: server + kernels passed 1.5x --max-rss-mib"
                out.stopped_early = "; ".join(x for x in (out.stopped_early, killed_note) if x)
            killed = kill_leftovers(sampler.seen)
            if killed:
                print(f"  {name}: killed leftover processes {killed}", flush=True)
            out.peak_rss_server = sampler.peak_server
            out.peak_rss_total = sampler.peak_total
            out.rss_samples = sampler.samples
            if out.t0 is not None and out.t_interrupt is not None:
                out.server_cpu = sampler.cpu_share(out.t0, out.t_interrupt)
            if out.t0 is not None and out.t_interrupt is not None:
                out.peak_rss_server_flood, out.peak_rss_total_flood = sampler.peaks_between(
                    out.t0, out.t_interrupt
                )
        quietly(inbox.close)
        quietly(inbox.cancel_join_thread)
    return out


def quietly(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception as e:
        print(f"  teardown: {getattr(fn, '__name__', fn)}: {type(e).__name__}: {e}", flush=True)


def end_process(p: Any) -> None:
    p.join(timeout=5)
    if p.is_alive():
        p.kill()
        p.join(timeout=5)


def probe_until(
    prober: Prober,
    interval: float,
    rtts: list[float | None],
    count: int = 0,
    until: Any = None,
) -> None:
    """Append round trips to ``rtts``, one started every ``interval`` s (or right after
    a slower one), until there are ``count`` or ``until()`` is true."""
    next_at = time.monotonic()
    while (count and len(rtts) < count) or (until is not None and not until()):
        now = time.monotonic()
        if now < next_at:
            time.sleep(min(next_at - now, 0.05))
            continue
        next_at = max(next_at + interval, now)
        try:
            rtts.append(prober.round_trip())
        except Exception:  # connection to kernel B lost: a timeout, then stop probing
            rtts.append(None)
            return


def wait_idle(
    out: Outcome,
    server: Server,
    kernel_a: str,
    sampler: RssSampler | None,
    got: dict[tuple[str, str], Any],
    drain: Any,
    cap: float,
) -> None:
    """Until the fast reader sees the flood's idle (or ``cap`` s); meanwhile poll the
    kernel's ``execution_state`` through REST."""
    assert out.t_interrupt is not None
    end = out.t_interrupt + cap
    next_poll = 0.0
    while time.monotonic() < end:
        drain(0.05)
        if ("idle", "fast") in got:
            out.interrupt_to_idle = got[("idle", "fast")] - out.t_interrupt
            if out.interrupt_to_rest_idle is not None:
                return
        if ("result", "fast") in got or ("error", "fast") in got:
            return  # the fast reader is gone (closed by the server?)
        if sampler is not None and sampler.over_hard.is_set():
            return  # the sampler killed the server
        now = time.monotonic()
        if out.interrupt_to_rest_idle is None and now >= next_poll:
            next_poll = now + 0.1
            try:
                model = server.request("GET", f"/api/kernels/{kernel_a}", timeout=5)
                if model.get("execution_state") == "idle":
                    out.interrupt_to_rest_idle = time.monotonic() - out.t_interrupt
            except Exception:
                pass
        seen = got.get(("idle", "fast"))
        if seen is not None and time.monotonic() - seen > 5:
            return  # REST still busy 5 s after the reader saw idle: stop asking


# -- report ---------------------------------------------------------------------------------


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def p90(xs: list[float]) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(0.9 * len(s)))]


def percent(x: float | None) -> float | None:
    return x * 100 if x is not None else None


def summary(o: Outcome) -> dict[str, Any]:
    """The table's figures (also saved in the JSON)."""
    idle = [x for x in o.idle_rtts if x is not None]
    flood_done = [x for x in o.flood_rtts if x is not None]
    timeouts = len(o.flood_rtts) - len(flood_done)
    # A timed-out probe counts as at least its timeout, so it cannot lower the median.
    flood_all = flood_done + [10.0] * timeouts
    fast = o.readers.get("fast", {})
    slow = o.readers.get("slow", {})
    idle_med, flood_med = median(idle), median(flood_all)
    return {
        "peak_rss_server_mib": o.peak_rss_server / MIB,
        "peak_rss_total_mib": o.peak_rss_total / MIB,
        "fast_lines_per_s": o.lines_per_s("fast"),
        "fast_lines": fast.get("lines"),
        "fast_lost": fast.get("lost"),
        "fast_malformed": fast.get("malformed"),
        "slow_lines_per_s": o.lines_per_s("slow"),
        "slow_lost": slow.get("lost"),
        "slow_notices": slow.get("notices"),
        "fast_closed": o.closed_text("fast"),
        "slow_closed": o.closed_text("slow"),
        "stalled_closed": o.closed_text("stalled"),
        "rtt_idle_median_ms": idle_med * 1000 if idle_med is not None else None,
        "rtt_flood_median_ms": flood_med * 1000 if flood_med is not None else None,
        "rtt_flood_p90_ms": (p90(flood_all) or 0) * 1000 if flood_all else None,
        "rtt_flood_over_idle": flood_med / idle_med if idle_med and flood_med else None,
        "rtt_flood_timeouts": timeouts,
        "rtt_flood_count": len(o.flood_rtts),
        "interrupt_to_idle_s": o.interrupt_to_idle,
        "interrupt_to_rest_idle_s": o.interrupt_to_rest_idle,
        "flood_seconds": o.flood_seconds,
        "server_cpu_pct": percent(o.server_cpu),
        "fast_cpu_pct": percent(o.reader_cpu("fast")),
    }


ROWS: list[tuple[str, str, str, bool]] = [
    # (label, summary key, format, whether an ipytwist / jupyter_server ratio makes sense)
    ("flood duration (s)", "flood_seconds", "s1", False),
    ("peak RSS, server process (MiB)", "peak_rss_server_mib", "n0", True),
    ("peak RSS, server + kernels (MiB)", "peak_rss_total_mib", "n0", True),
    ("fast reader lines/s", "fast_lines_per_s", "n0", True),
    ("fast reader lines lost", "fast_lost", "i", False),
    ("slow reader lines/s", "slow_lines_per_s", "n1", True),
    ("slow reader lines lost", "slow_lost", "i", False),
    ("slow reader drop notices", "slow_notices", "i", False),
    ("fast reader closed by server", "fast_closed", "t", False),
    ("slow reader closed by server", "slow_closed", "t", False),
    ("stalled reader closed by server", "stalled_closed", "t", False),
    ("kernel B round trip, idle median (ms)", "rtt_idle_median_ms", "n1", True),
    ("kernel B round trip, flood median (ms)", "rtt_flood_median_ms", "n1", True),
    ("kernel B round trip, flood p90 (ms)", "rtt_flood_p90_ms", "n1", True),
    ("kernel B round trip, flood/idle", "rtt_flood_over_idle", "x", True),
    ("kernel B round trips timed out (10 s)", "rtt_flood_timeouts", "i", False),
    ("interrupt -> idle seen by fast reader (s)", "interrupt_to_idle_s", "s2", True),
    ("interrupt -> kernel idle in REST model (s)", "interrupt_to_rest_idle_s", "s2", True),
    ("server process CPU during flood (% of a core)", "server_cpu_pct", "n0", False),
    ("fast reader CPU during flood (% of a core)", "fast_cpu_pct", "n0", False),
]


def fmt(v: Any, kind: str, cap: float) -> str:
    if kind == "t":
        return str(v)
    if v is None:
        if kind == "s2":
            return f"did not reach idle within {cap:g} s"
        return "n/a"
    if kind == "i":
        return f"{v:,}"
    if kind == "x":
        return f"{v:.1f}x"
    if kind.startswith("s"):
        return f"{v:.{kind[1]}f}"
    return f"{v:,.{kind[1]}f}"


def table(outcomes: list[Outcome], cap: float) -> str:
    sums = {o.server: summary(o) for o in outcomes}
    names = [s for s in SERVERS if s in sums]
    both = len(names) == 2
    head = "| metric | " + " | ".join(names) + (" | ipytwist / jupyter_server |" if both else " |")
    rows = [head, "|---" * (len(names) + 1 + both) + "|"]
    for label, key, kind, ratio in ROWS:
        cells = [fmt(sums[n][key], kind, cap) for n in names]
        if both:
            a, b = sums["ipytwist"][key], sums["jupyter_server"][key]
            numbers = isinstance(a, float | int) and isinstance(b, float | int)
            cells.append(f"{a / b:.3g}" if ratio and numbers and b else "")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    notes = [
        f"- {o.server}: {note}"
        for o in outcomes
        for note in (o.stopped_early, o.error, *(f"{r}: {e}" for r, e in o.reader_errors.items()))
        if note
    ]
    return "\n".join(rows + ([""] + notes if notes else []))


def print_outcome(o: Outcome, cap: float) -> None:
    s = summary(o)
    print(f"  {o.server}:", flush=True)
    for label, key, kind, _ in ROWS:
        print(f"    {label:<44} {fmt(s[key], kind, cap)}")
    if o.interrupt_http:
        print(f"    {'interrupt request':<44} {o.interrupt_http}")
    for note in (o.stopped_early, o.error):
        if note:
            print(f"    note: {note}")
    print(flush=True)


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="flood duration (default 60)")
    p.add_argument(
        "--servers",
        type=lambda s: s.split(","),
        default=list(SERVERS),
        help="comma-separated: ipytwist,jupyter_server",
    )
    p.add_argument(
        "--max-rss-mib",
        type=int,
        default=4096,
        help="end a server's flood early once server + kernels pass this RSS (default 4096);\n"
        "the server is killed at once if they pass 1.5x that",
    )
    p.add_argument("--interval", type=float, default=0.2, help="kernel B probe interval (s)")
    p.add_argument("--baseline", type=int, default=25, help="idle round trips before the flood")
    p.add_argument("--idle-cap", type=float, default=30.0, help="interrupt -> idle cap (s)")
    p.add_argument("--slow-pause", type=float, default=0.05, help="slow reader pause (s)")
    p.add_argument(
        "--stalled-rcvbuf", type=int, default=4096, help="stalled reader SO_RCVBUF (bytes)"
    )
    p.add_argument(
        "--jupyter-rate-limits",
        action="store_true",
        help="keep jupyter_server's default iopub rate limits (default: off, as in ws_fanout)",
    )
    p.add_argument("--ipytwist-args", default="", help="extra twistd ipytwist options")
    p.add_argument("--jupyter-args", default="", help="extra jupyter_server options")
    p.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    p.add_argument("--keep-logs", action="store_true", help="keep server logs (temp dir)")
    args = p.parse_args(argv)
    for s in args.servers:
        if s not in SERVERS:
            p.error(f"unknown server {s!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    tmp = tempfile.mkdtemp(prefix="ipytwist-flood-")
    outcomes: list[Outcome] = []
    started = time.time()
    try:
        for name in SERVERS:
            if name not in args.servers:
                continue
            print(f"{name}: {args.seconds:g} s flood ...", flush=True)
            o = run_server(name, args, tmp)
            outcomes.append(o)
            print_outcome(o, args.idle_cap)
    finally:
        if args.keep_logs:
            print("logs kept in", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(table(outcomes, args.idle_cap))
    if not args.no_save:
        os.makedirs(RESULTS_DIR, exist_ok=True)
        path = os.path.join(RESULTS_DIR, time.strftime("flood-%Y%m%d-%H%M%S.json"))
        with open(path, "w") as f:
            json.dump(
                {
                    "bench": "flood",
                    "started": started,
                    "duration": time.time() - started,
                    "args": vars(args),
                    "code": FLOOD_CODE,
                    "machine": {
                        "python": sys.version.split()[0],
                        "platform": platform.platform(),
                        "cpus": os.cpu_count(),
                    },
                    "results": [{"summary": summary(o), **asdict(o)} for o in outcomes],
                },
                f,
            )
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
