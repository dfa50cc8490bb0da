"""The kernel benchmark's measurements: kernels started and driven through jupyter_client
(the same code for both kernels), and what is measured of them."""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchlib.procs import descendants, rss_kib

SPEC_PREFIX = "bench-"


class PidLog:
    """Kernel pids, appended to a file so a wrapper can clean up after a crash."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def add(self, pids: list[int]) -> None:
        if self.path:
            with open(self.path, "a") as f:
                for pid in pids:
                    f.write(f"{pid}\n")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    return [pid, *descendants(pid)]


def pss_kib(pid: int) -> int:
    """The proportional set size of ``pid`` (pages shared with N processes count 1/N);
    0 if it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
    except (OSError, StopIteration, ValueError):
        return 0


def tree_rss(pid: int) -> dict[str, Any]:
    """RSS of ``pid`` and its descendants (shared pages counted in each), and their PSS
    (shared pages counted once: the honest sum for a kernel of several processes)."""
    pids = process_tree(pid)
    per = {p: rss_kib(p) for p in pids}
    pss = sum(pss_kib(p) for p in pids) / 1024
    return {"pids": pids, "rss_kib": per, "total_mib": sum(per.values()) / 1024, "pss_mib": pss}


# -- driving a kernel -------------------------------------------------------------


def iopub_until_idle(
    kc: Any, msg_id: str, timeout: float, on_msg: Callable[[dict], None] | None = None
) -> float:
    """Read iopub until ``status: idle`` for ``msg_id``; return the time it arrived."""
    deadline = time.perf_counter() + timeout
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise TimeoutError(f"no idle for {msg_id} within {timeout}s")
        msg = kc.get_iopub_msg(timeout=left)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if on_msg is not None:
            on_msg(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return time.perf_counter()


def drain_shell_reply(kc: Any, msg_id: str, timeout: float = 10) -> dict:
    deadline = time.perf_counter() + timeout
    while True:
        msg = kc.get_shell_msg(timeout=max(0.01, deadline - time.perf_counter()))
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


def run_cell(kc: Any, code: str, timeout: float = 60) -> float:
    """Execute ``code``; return the round trip (request sent -> idle) in seconds."""
    t0 = time.perf_counter()
    msg_id = kc.execute(code)
    t1 = iopub_until_idle(kc, msg_id, timeout)
    reply = drain_shell_reply(kc, msg_id)
    if reply["content"].get("status") != "ok":
        raise RuntimeError(f"cell {code!r} failed: {reply['content']}")
    return t1 - t0


@dataclass
class Session:
    name: str
    km: Any
    kc: Any

    @property
    def pid(self) -> int:
        return self.km.provisioner.process.pid


def start_session(name: str, pids: PidLog) -> tuple[Session, float]:
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name=SPEC_PREFIX + name)
    # Each kernel gets its own IPython dir: no shared history database between them.
    env = dict(os.environ, IPYTHONDIR=os.path.join(os.environ["IPYTHONDIR"], name))
    t0 = time.perf_counter()
    km.start_kernel(env=env)
    try:
        pids.add([km.provisioner.process.pid])
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
    except BaseException:
        km.shutdown_kernel(now=True)
        raise
    return Session(name, km, kc), time.perf_counter() - t0


def stop_session(s: Session, pids: PidLog) -> None:
    try:
        pids.add(process_tree(s.pid))
    except Exception:
        pass
    try:
        s.kc.stop_channels()
    finally:
        s.km.shutdown_kernel(now=True)


# -- metrics ----------------------------------------------------------------------


def measure_startup(name: str, pids: PidLog) -> dict[str, float]:
    """start_kernel -> wait_for_ready, and start_kernel -> execute_result of ``1``."""
    t0 = time.perf_counter()
    s, ready = start_session(name, pids)
    try:
        msg_id = s.kc.execute("1")
        first: list[float] = []

        def on_msg(msg: dict) -> None:
            if msg["msg_type"] == "execute_result" and not first:
                first.append(time.perf_counter())

        iopub_until_idle(s.kc, msg_id, 60, on_msg)
        if not first:
            raise RuntimeError(f"{name}: no execute_result for `1`")
        return {"ready_s": ready, "first_result_s": first[0] - t0}
    finally:
        stop_session(s, pids)


def round_trip_stats(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {
        "runs": len(samples),
        "median_ms": statistics.median(samples) * 1e3,
        "p99_ms": p99 * 1e3,
        "mean_ms": statistics.fmean(samples) * 1e3,
        "min_ms": ordered[0] * 1e3,
        "max_ms": ordered[-1] * 1e3,
    }


def check_lines(text: str, n: int) -> dict[str, int]:
    """Compare received stdout with the lines ``0..n-1`` in order."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    seen: set[int] = set()
    expected = 0
    out_of_order = duplicates = garbage = 0
    for line in lines:
        try:
            v = int(line)
        except ValueError:
            garbage += 1
            continue
        if not 0 <= v < n:
            garbage += 1
            continue
        if v in seen:
            duplicates += 1
            continue
        seen.add(v)
        if v != expected:
            out_of_order += 1
        expected = v + 1
    return {
        "received": len(lines),
        "lost": n - len(seen),
        "out_of_order": out_of_order,
        "duplicates": duplicates,
        "garbage": garbage,
    }


def stdout_trial(s: Session, lines: int) -> dict[str, Any]:
    """Run the print loop once; time it and check every line."""
    code = f"for i in range({lines}):\n    print(i)"
    chunks: list[str] = []
    other: list[str] = []
    first: list[float] = []

    def on_msg(msg: dict, chunks: list = chunks, other: list = other, first: list = first):
        if msg["msg_type"] == "stream":
            if msg["content"]["name"] == "stdout":
                if not first:
                    first.append(time.perf_counter())
                chunks.append(msg["content"]["text"])
            else:
                other.append(msg["content"]["text"])

    t0 = time.perf_counter()
    msg_id = s.kc.execute(code)
    t1 = iopub_until_idle(s.kc, msg_id, 120, on_msg)
    drain_shell_reply(s.kc, msg_id)
    check = check_lines("".join(chunks), lines)
    wall = t1 - t0
    return {
        "wall_s": wall,
        "lines_per_s": lines / wall,
        "first_output_s": (first[0] - t0) if first else None,
        "stream_messages": len(chunks),
        "stderr_chars": sum(len(x) for x in other),
        **check,
    }


def stdout_stats(trials: list[dict[str, Any]], lines: int) -> dict[str, Any]:
    best = sorted(trials, key=lambda t: t["wall_s"])[len(trials) // 2]  # the median trial
    return {
        "lines": lines,
        "runs": len(trials),
        "median_wall_s": best["wall_s"],
        "median_lines_per_s": best["lines_per_s"],
        "lost": sum(t["lost"] for t in trials),
        "out_of_order": sum(t["out_of_order"] for t in trials),
        "duplicates": sum(t["duplicates"] for t in trials),
        "garbage": sum(t["garbage"] for t in trials),
        "trials": trials,
    }


def measure_sessions(names: list[str], args: argparse.Namespace, pids: PidLog) -> dict:
    """Round trips, stdout and memory, with all kernels running and the work interleaved.

    The kernels take turns (blocks of round trips, single stdout trials), so a
    background load on the machine hits each of them alike.
    """
    sessions: dict[str, Session] = {}
    try:
        for n in names:
            sessions[n], _ = start_session(n, pids)
        for s in sessions.values():
            for _ in range(3):
                run_cell(s.kc, "1")
        time.sleep(args.settle)
        out: dict[str, dict[str, Any]] = {n: {} for n in names}
        for n, s in sessions.items():
            out[n]["rss_idle"] = tree_rss(s.pid)
            pids.add(out[n]["rss_idle"]["pids"])
        for s in sessions.values():
            for _ in range(args.warmup):
                run_cell(s.kc, "1")
        samples: dict[str, list[float]] = {n: [] for n in names}
        block = max(1, args.block)
        while any(len(v) < args.runs for v in samples.values()):
            for n, s in sessions.items():
                for _ in range(min(block, args.runs - len(samples[n]))):
                    samples[n].append(run_cell(s.kc, "1"))
        trials: dict[str, list[dict]] = {n: [] for n in names}
        for _ in range(args.stdout_runs):
            for n, s in sessions.items():
                trials[n].append(stdout_trial(s, args.lines))
        time.sleep(args.settle)
        for n, s in sessions.items():
            out[n]["round_trip"] = round_trip_stats(samples[n])
            out[n]["stdout"] = stdout_stats(trials[n], args.lines)
            out[n]["rss_after"] = tree_rss(s.pid)
        return out
    finally:
        for s in sessions.values():
            stop_session(s, pids)
