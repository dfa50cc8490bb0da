"""The judge of a flood run: the readers' records checked line by line and gap by gap,
and the service's memory, round trips and interrupt against their bounds."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from benchlib.scenarios.common import percentile

#: The service's RSS, during the flood and while draining.
RSS_BOUND_MIB = 256
#: Interrupt -> the flood's idle at the fast reader, in seconds.
INTERRUPT_TO_IDLE = 1.0
#: Kernel B's round trip during the flood against its idle median: the median...
ROUND_TRIP_FACTOR = 3.0
#: ... and at the p90, with more room: on this 2-core machine two CPU-bound processes
#: that have nothing to do with ipytwist (`while True: pass`) already put the p90 of an
#: idle kernel's round trip at about 2.5x its median, and a flood keeps both cores
#: about 80 % busy (service 72 %, the flooding interpreter and its keeper 50 %, the fast
#: reader 40 %: the durable kernel's link and journal cost the service a third more
#: than pipes).  Each of the five processes a round trip wakes may wait for a core:
#: the p90 was 2.3-3.8x the idle median (3.2-4.3 ms) in eleven runs, and 4.2x once.
TAIL_FACTOR = 5.0
MIB = 1024 * 1024


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
