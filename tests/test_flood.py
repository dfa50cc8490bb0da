r"""Flow control: one kernel floods three WebSocket readers of different speeds.

The acceptance test of the service's flow control, against the real ``twistd ipytwist``
(default options).  Kernel A prints ``"<i> xxx…"`` (1000 x's) in an endless loop for
15 s, watched by three WebSocket clients, each in its own process (tests/flood_reader.py):
a fast reader, a slow one (50 ms pause after every message) and a stalled one (4 KiB
receive buffer, reads nothing until the flood has been interrupted).  Meanwhile the test
process probes kernel B's round trip every 0.2 s and samples the service's RSS.  Then
the flood is interrupted over REST.

The test asserts that

1. the service's RSS stays under ``RSS_BOUND_MIB`` (flood and drain);
2. the fast reader gets every line, contiguous and in order, and no drop notice;
3. the slow reader's gaps are each announced by a notice that is exact: the messages it
   stands for, counted and sized from the fast reader's complete record, are the ones
   missing between the messages before and after it (and it sees at least one gap);
4. the stalled reader, once it reads, gets what was in flight, a notice, then the
   retained messages (same exactness) through the flood's idle, within 60 s;
5. no reader is closed or dropped, and the kernel counts 3 connections before the
   interrupt;
6. kernel B's round trip during the flood stays under 3x its idle median (median), and
   under 4x at the 90th percentile (see ``TAIL_FACTOR``);
7. the interrupt brings kernel A to idle, as seen by the fast reader, within 1 s, and the
   flood's execute_reply is a KeyboardInterrupt error.

A drop notice is an iopub ``stream`` message on stderr whose text matches
``^\[ipytwist\] (\d+) output messages? \((\d+) bytes\) dropped`` (messages, bytes); the
size of a message is the UTF-8 byte length of every string value in its ``content``.  Every
problem found is reported together, after a summary of the measured figures.
"""

from __future__ import annotations

import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from service_proc import Service, WSClient, rss_mib, running_service, wait_for

RSS_BOUND_MIB = 256
FLOOD_SECONDS = 15.0
PROBE_INTERVAL = 0.2
IDLE_PROBES = 25
PROBE_TIMEOUT = 10.0
RSS_INTERVAL = 0.2
SLOW_PAUSE = 0.05
STALLED_RCVBUF = 4096
STALLED_READ_TIMEOUT = 60.0
INTERRUPT_TO_IDLE = 1.0
ROUND_TRIP_FACTOR = 3.0
#: The tail gets more room: on this 2-core machine two CPU-bound processes that have
#: nothing to do with ipytwist (`while True: pass`) already put the p90 of an idle
#: kernel's round trip at about 2.5x its median, and a flood brings two (the printing
#: interpreter and the fast reader).
TAIL_FACTOR = 4.0
FLOOD_CODE = "i = 0\nwhile True:\n    print(i, 'x' * 1000)\n    i += 1"
READER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flood_reader.py")
FAST = {"skip_utf8_validation": True}
MIB = 1024 * 1024
TICK = os.sysconf("SC_CLK_TCK")


# -- helpers: reader processes, RSS sampling, probing -------------------------------------


class Reader:
    """One flood_reader.py process: its stdout lines, stdin commands and JSON summary."""

    def __init__(self, role: str, svc: Service, kernel_id: str, flood_id: str, tmp: str) -> None:
        self.role = role
        self.out = os.path.join(tmp, f"{role}.json")
        self.err_path = os.path.join(tmp, f"{role}.stderr")
        self._err = open(self.err_path, "wb")  # noqa: SIM115 - closed in stop()
        argv = [
            sys.executable,
            READER_SCRIPT,
            "--url",
            svc.ws_url(kernel_id),
            "--token",
            svc.token,
            "--role",
            role,
            "--flood-id",
            flood_id,
            "--out",
            self.out,
        ]
        if role == "fast":
            argv += ["--code", FLOOD_CODE]
        if role == "slow":
            argv += ["--pause", str(SLOW_PAUSE)]
        if role == "stalled":
            argv += ["--rcvbuf", str(STALLED_RCVBUF), "--timeout", str(STALLED_READ_TIMEOUT)]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, text=True
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def expect(self, word: str, timeout: float) -> None:
        """Wait (bounded) for the reader to print ``word``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"{self.role} reader: no {word!r} within {timeout}s\n{self.stderr()}"
                ) from None
            if line is None:
                raise AssertionError(
                    f"{self.role} reader exited ({self.proc.wait()}) before {word!r}\n"
                    + self.stderr()
                )
            if line == word:
                return

    def tell(self, word: str) -> None:
        """Send a command; a reader that already exited (e.g. closed) ignores it."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(word + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass

    def finish(self, timeout: float) -> dict[str, Any] | None:
        """Wait (bounded) for the reader to exit; its summary, or None if it wrote none."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        try:
            with open(self.out) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return None

    def stderr(self) -> str:
        self._err.flush()
        with open(self.err_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._err.close()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` (None: gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def children(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(name))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                pass
    return found


def machine_cpu_seconds() -> tuple[float, float, float]:
    """The machine's busy CPU time, of which interrupts, and steal."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]  # all but idle and iowait
    return busy / TICK, (ticks[5] + ticks[6]) / TICK, ticks[7] / TICK


class CpuMeter:
    """CPU used by each process group over a window, and by the rest of the machine: not
    asserted, but the round-trip figures mean little without it on a small machine."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.start = self._processes()
        self.machine_start = machine_cpu_seconds()
        self.started_at = time.monotonic()

    def _processes(self) -> dict[int, float | None]:
        return {pid: cpu_seconds(pid) for pids in self.groups.values() for pid in pids}

    def report(self) -> str:
        seconds = time.monotonic() - self.started_at
        end = self._processes()
        busy, irq, steal = (
            b - a for a, b in zip(self.machine_start, machine_cpu_seconds(), strict=True)
        )

        def used(pid: int) -> float:
            before, after = self.start[pid], end[pid]
            return 0.0 if before is None or after is None else after - before

        by_group = {name: sum(used(pid) for pid in pids) for name, pids in self.groups.items()}
        parts = [f"{name} {100 * cpu / seconds:.0f}%" for name, cpu in by_group.items()]
        rest = busy - sum(by_group.values())
        return (
            f"CPU during the flood ({seconds:.1f}s, {os.cpu_count()} CPUs; 100% = one CPU): "
            + ", ".join(parts)
            + f", rest of the machine {100 * rest / seconds:.0f}% (irq/softirq"
            f" {100 * irq / seconds:.0f}%, steal {100 * steal / seconds:.0f}%)"
        )


class RssSampler(threading.Thread):
    """Samples a process's VmRSS every ``RSS_INTERVAL`` seconds, tagged with a phase."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.phase = "flood"
        self.samples: list[tuple[str, float]] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                self.samples.append((self.phase, rss_mib(self.pid)))
            except (FileNotFoundError, ProcessLookupError):
                return  # the service died; the test reports that elsewhere
            self._done.wait(RSS_INTERVAL)

    def stop(self) -> None:
        self._done.set()
        self.join(5)

    def max(self, *phases: str) -> float:
        return max((mib for phase, mib in self.samples if phase in phases), default=0.0)


def probe(client: WSClient) -> float:
    """Round trip of ``1`` on kernel B: request sent to its idle status received (s)."""
    start = time.perf_counter()
    msg_id = client.execute_request("1")
    try:
        client.until_idle(msg_id, timeout=PROBE_TIMEOUT)
    except AssertionError:
        return float("inf")
    return time.perf_counter() - start


def probe_paced(client: WSClient, samples: list[float], done: Callable[[], bool]) -> None:
    """Probe every ``PROBE_INTERVAL`` seconds until ``done()``."""
    while not done():
        started = time.monotonic()
        samples.append(probe(client))
        wait = started + PROBE_INTERVAL - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # the probe interval, part of the scenario


# -- the run --------------------------------------------------------------------------


@dataclass
class Run:
    """What the scenario measured; judged by :func:`judge`."""

    flood_id: str
    summaries: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    stderr: dict[str, str] = field(default_factory=dict)
    idle_rt: list[float] = field(default_factory=list)
    flood_rt: list[float] = field(default_factory=list)
    rss_start: float = 0.0
    rss_flood_max: float = 0.0
    rss_drain_max: float = 0.0
    connections: Any = None
    interrupt_at: float = 0.0
    interrupt_status: int = 0
    cpu: str = ""


def run_flood(svc: Service, tmp: str) -> Run:
    run = Run(flood_id=uuid.uuid4().hex)
    kernels: list[str] = []
    readers: dict[str, Reader] = {}
    clients: list[WSClient] = []
    sampler = RssSampler(svc.pid)
    try:
        kernels += [svc.start_kernel(), svc.start_kernel()]
        kernel_a, kernel_b = kernels
        prober = WSClient.connect(svc, kernel_b, "prober", **FAST)
        clients.append(prober)
        reply, _ = prober.execute("1", timeout=60)
        assert reply["content"]["status"] == "ok", reply
        warm = WSClient.connect(svc, kernel_a, "warm-up", **FAST)
        clients.append(warm)
        reply, _ = warm.execute("1", timeout=60)
        assert reply["content"]["status"] == "ok", reply
        warm.close()
        wait_for(lambda: connections(svc, kernel_a) == 0, 10, "the warm-up client to be gone")

        for role in ("fast", "slow", "stalled"):
            readers[role] = Reader(role, svc, kernel_a, run.flood_id, tmp)
            readers[role].expect("ready", 30)

        for _ in range(3):  # warm up the probe path
            probe(prober)
        probe_paced(prober, run.idle_rt, lambda: len(run.idle_rt) >= IDLE_PROBES)

        run.rss_start = rss_mib(svc.pid)
        cpu = CpuMeter(
            {
                "service": [svc.pid],
                "workers": children(svc.pid),
                **{f"{role} reader": [r.proc.pid] for role, r in readers.items()},
                "test process": [os.getpid()],
            }
        )
        sampler.start()
        readers["fast"].tell("go")
        readers["fast"].expect("flowing", 30)
        flood_end = time.monotonic() + FLOOD_SECONDS
        probe_paced(prober, run.flood_rt, lambda: time.monotonic() >= flood_end)

        run.cpu = cpu.report()
        run.connections = connections(svc, kernel_a)
        sampler.phase = "drain"
        run.interrupt_at = time.time()
        run.interrupt_status = svc.api("POST", f"/api/kernels/{kernel_a}/interrupt").status_code
        readers["stalled"].tell("read")
        readers["slow"].tell("drain")
        for role, timeout in (("fast", 30), ("slow", 90), ("stalled", STALLED_READ_TIMEOUT + 30)):
            run.summaries[role] = readers[role].finish(timeout)
            run.stderr[role] = readers[role].stderr()
        sampler.stop()
        run.rss_flood_max = sampler.max("flood")
        run.rss_drain_max = sampler.max("drain")
        return run
    finally:
        if sampler.is_alive():
            sampler.stop()
        for reader in readers.values():
            reader.stop()
        for client in clients:
            client.close()
        for kid in kernels:
            try:
                svc.delete_kernel(kid)
            except Exception as e:  # the service may be what failed; report the rest
                print(f"could not delete kernel {kid}: {e!r}")


def connections(svc: Service, kernel_id: str) -> Any:
    r = svc.api("GET", f"/api/kernels/{kernel_id}")
    return r.json().get("connections") if r.status_code == 200 else f"HTTP {r.status_code}"


# -- judging the run ------------------------------------------------------------------


def rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    fields = summary["fields"]
    return [dict(zip(fields, row, strict=True)) for row in summary["rows"]]


def is_notice(row: dict[str, Any]) -> bool:
    return row["notice"] is not None


def flood_iopub(rs: list[dict[str, Any]], flood_id: str) -> list[dict[str, Any]]:
    """The iopub messages of the flood request, and every drop notice, in order."""
    return [r for r in rs if r["channel"] == "iopub" and (r["parent"] == flood_id or is_notice(r))]


def connection_problems(role: str, summary: dict[str, Any] | None, stderr: str) -> list[str]:
    if summary is None:
        return [f"{role} reader: no summary (did not finish in time or crashed)\n{stderr}"]
    out = []
    closed = summary["closed"]
    if closed is not None:
        after = closed["at"] - summary["connected_at"]
        out.append(
            f"{role} reader: connection closed by the service {after:.1f}s after connecting"
            f" (code {closed['code']}, {closed['reason']!r})"
        )
    if summary["timed_out"]:
        out.append(f"{role} reader: did not get the flood's idle status in time")
    if summary["idle_at"] is None and closed is None and not summary["timed_out"]:
        out.append(f"{role} reader: stopped without the flood's idle status")
    return out


def line_problems(role: str, seq: list[dict[str, Any]], gaps_allowed: bool) -> list[str]:
    """Lines go up by exactly 1; where they jump, a notice came right before (if allowed)."""
    last = -1  # every reader was connected before the flood's line 0
    notice_before = False
    for i, r in enumerate(seq):
        if is_notice(r):
            notice_before = True
            continue
        if r["name"] != "stdout":
            continue
        if r["malformed"]:
            return [f"{role} reader: message #{i} ({r['msg_id']}) has malformed lines"]
        if not r["n_lines"]:
            continue
        if not r["contiguous"]:
            return [f"{role} reader: lines inside message #{i} ({r['msg_id']}) not contiguous"]
        first = r["first_line"]
        if first != last + 1:
            if not (gaps_allowed and notice_before):
                after = f"line {last} followed by" if last >= 0 else "the first line it got is"
                return [
                    f"{role} reader: {after} line {first} (message #{i}, {r['msg_id']})"
                    " without a drop notice right before"
                ]
            if first <= last:
                return [f"{role} reader: after a notice, line {first} follows line {last}"]
        last = r["last_line"]
        notice_before = False
    if last < 0:
        return [f"{role} reader: received no complete line of the flood"]
    return []


@dataclass
class Gaps:
    notices: int = 0
    dropped_messages: int = 0
    dropped_bytes: int = 0
    before_first_notice: int = 0
    problems: list[str] = field(default_factory=list)


def gap_check(role: str, seq: list[dict[str, Any]], full: list[dict[str, Any]]) -> Gaps:
    """Each message the reader got is the next one of the fast reader's complete record,
    unless a notice came right before; then the notice counts and sizes exactly the
    messages skipped."""
    gaps = Gaps()
    position = {r["msg_id"]: i for i, r in enumerate(full)}
    prev = -1  # position in ``full`` of the last message the reader got
    notice: dict[str, Any] | None = None
    for i, r in enumerate(seq):
        if is_notice(r):
            if notice is not None:
                gaps.problems.append(f"{role} reader: two drop notices in a row (#{i})")
                return gaps
            notice = r
            gaps.notices += 1
            if gaps.notices == 1:
                gaps.before_first_notice = i
            continue
        pos = position.get(r["msg_id"])
        if pos is None:
            gaps.problems.append(
                f"{role} reader: message #{i} ({r['msg_type']} {r['msg_id']}) is not in the"
                " fast reader's record"
            )
            return gaps
        skipped = full[prev + 1 : pos]
        size = sum(s["size"] for s in skipped)
        if notice is None and skipped:
            gaps.problems.append(
                f"{role} reader: {len(skipped)} messages ({size} bytes) missing before"
                f" message #{i} ({r['msg_id']}) without a drop notice"
            )
            return gaps
        if notice is not None:
            said_count, said_bytes = notice["notice"]
            if pos <= prev or (said_count, said_bytes) != (len(skipped), size):
                gaps.problems.append(
                    f"{role} reader: drop notice #{gaps.notices} says {said_count} messages"
                    f" ({said_bytes} bytes) but {len(skipped)} messages ({size} bytes) are"
                    f" missing around it (went from position {prev} to {pos})"
                )
                return gaps
            gaps.dropped_messages += len(skipped)
            gaps.dropped_bytes += size
        prev = pos
        notice = None
    if notice is not None:
        gaps.problems.append(f"{role} reader: its last message is a drop notice")
    return gaps


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def judge(run: Run) -> tuple[list[str], list[str]]:
    """(figures to print, problems found)."""
    figures: list[str] = []
    problems: list[str] = []
    fid = run.flood_id

    # 1. memory
    figures.append(
        f"service RSS: start {run.rss_start:.0f} MiB, max during flood {run.rss_flood_max:.0f}"
        f" MiB, max while draining {run.rss_drain_max:.0f} MiB (bound {RSS_BOUND_MIB} MiB)"
    )
    rss_max = max(run.rss_flood_max, run.rss_drain_max)
    if rss_max >= RSS_BOUND_MIB:
        problems.append(f"service RSS reached {rss_max:.0f} MiB (bound {RSS_BOUND_MIB} MiB)")

    figures.append(run.cpu)

    # 5. connections
    for role in ("fast", "slow", "stalled"):
        problems += connection_problems(role, run.summaries.get(role), run.stderr.get(role, ""))
    figures.append(f"connections on kernel A before the interrupt: {run.connections}")
    if run.connections != 3:
        problems.append(f"GET /api/kernels/A says {run.connections} connections, not 3")

    # 2. fast reader: every line, no notice
    fast = run.summaries.get("fast")
    full: list[dict[str, Any]] = []
    fast_complete = False
    if fast is not None:
        seq = flood_iopub(rows(fast), fid)
        full = [r for r in seq if not is_notice(r)]
        lines = sum(r["n_lines"] for r in full if r["name"] == "stdout")
        figures.append(
            f"fast reader: {len(full)} flood messages, {lines} lines,"
            f" {sum(r['size'] for r in full) / MIB:.0f} MiB of content"
        )
        notices = [r for r in seq if is_notice(r)]
        if notices:
            problems.append(
                f"fast reader: got {len(notices)} drop notice(s): {notices[0]['text']!r}"
            )
        problems += line_problems("fast", seq, gaps_allowed=False)
        fast_complete = fast["idle_at"] is not None and fast["closed"] is None and not notices

        # 7. interrupt
        reply = fast["reply"]
        if fast["idle_at"] is None:
            problems.append("fast reader: never saw the flood's idle: interrupt -> idle unknown")
        else:
            latency = fast["idle_at"] - run.interrupt_at
            figures.append(f"interrupt -> flood idle at the fast reader: {latency * 1000:.0f} ms")
            if latency < 0:
                problems.append("fast reader: the flood went idle before it was interrupted")
            elif latency >= INTERRUPT_TO_IDLE:
                problems.append(
                    f"interrupt -> idle took {latency:.2f}s (bound {INTERRUPT_TO_IDLE:.0f}s)"
                )
        if run.interrupt_status != 204:
            problems.append(f"POST /interrupt answered {run.interrupt_status}")
        if reply is None or (reply["status"], reply["ename"]) != ("error", "KeyboardInterrupt"):
            problems.append(f"flood execute_reply is {reply}, not a KeyboardInterrupt error")

    # 3. and 4. slow and stalled readers: gaps announced, notices exact
    for role in ("slow", "stalled"):
        summary = run.summaries.get(role)
        if summary is None:
            continue
        seq = flood_iopub(rows(summary), fid)
        problems += line_problems(role, seq, gaps_allowed=True)
        if not fast_complete:
            problems.append(f"{role} reader: notices not checked (fast reader's record incomplete)")
            continue
        gaps = gap_check(role, seq, full)
        problems += gaps.problems
        text = (
            f"{role} reader: {len(seq) - gaps.notices} flood messages, {gaps.notices} notice(s)"
            f" for {gaps.dropped_messages} messages / {gaps.dropped_bytes / MIB:.1f} MiB dropped"
        )
        if role == "stalled":
            text += f", {gaps.before_first_notice} messages in flight before the first notice"
            if summary["idle_at"] is not None:
                text += f", read to idle in {summary['idle_at'] - summary['read_started_at']:.1f}s"
        figures.append(text)
        if not gaps.notices and not gaps.problems:
            problems.append(
                f"{role} reader: saw no gap (no drop notice): the flood did not test it"
            )

    # 6. kernel B's round trip
    idle_median = statistics.median(run.idle_rt)
    if run.flood_rt:
        median = statistics.median(run.flood_rt)
        p90 = percentile(run.flood_rt, 0.9)
        figures.append(
            f"kernel B round trip: idle median {idle_median * 1000:.1f} ms; during the flood"
            f" median {median * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms,"
            f" max {max(run.flood_rt) * 1000:.1f} ms, {len(run.flood_rt)} samples"
        )
        bound = ROUND_TRIP_FACTOR * idle_median
        tail_bound = TAIL_FACTOR * idle_median
        if median >= bound or p90 >= tail_bound:
            problems.append(
                f"kernel B round trip during the flood: median {median * 1000:.1f} ms"
                f" (bound {ROUND_TRIP_FACTOR:g} x idle median = {bound * 1000:.1f} ms),"
                f" p90 {p90 * 1000:.1f} ms (bound {TAIL_FACTOR:g} x = {tail_bound * 1000:.1f} ms)"
            )
    else:
        problems.append("kernel B: no round trip measured during the flood")
    return figures, problems


@pytest.mark.timeout(400)
def test_flood_three_readers_and_a_prober(tmp_path_factory: Any, tmp_path: Any) -> None:
    """The scenario and checks of the module docstring."""
    with running_service(tmp_path_factory, "flood") as svc:
        run = run_flood(svc, str(tmp_path))
        figures, problems = judge(run)
        print("\n-- flood test figures --\n" + "\n".join(figures))
        print("-- problems --\n" + ("\n".join(problems) or "none"))
    assert not problems, "flow control under a flood:\n- " + "\n- ".join(problems)
