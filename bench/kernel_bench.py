"""Kernel benchmark: ipytwist and ipykernel side by side, in one run.

Both kernels are started from kernelspecs written to a temporary JUPYTER_PATH
and driven by the same jupyter_client code, so the only difference measured is
the kernel.  Metrics:

1. execute round trip of the cell ``1``: execute_request sent -> its
   ``status: idle`` received on iopub (median, p99);
2. stdout throughput of ``for i in range(N): print(i)``: every line checked,
   lines/s and wall time to idle;
3. time to ready (``start_kernel`` -> ``wait_for_ready``) and time to the
   first ``execute_result`` of ``1`` (counted from ``start_kernel`` too);
4. idle RSS of the kernel process and all its descendants.

Prints a markdown table (ipytwist, ipykernel, ratio) and writes JSON to
``bench/results/``.  Run ``python bench/kernel_bench.py --help`` for options.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(HERE, "results")
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing

KERNELS = {
    "ipytwist": [sys.executable, "-m", "ipytwist.kernel", "-f", "{connection_file}"],
    "ipykernel": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
}
SPEC_PREFIX = "bench-"


# -- environment ----------------------------------------------------------------


def prepare_environment() -> str:
    """Kernelspecs for both kernels in a fresh JUPYTER_PATH; a fresh IPYTHONDIR too."""
    root = tempfile.mkdtemp(prefix="ipytwist-bench-")
    for name, argv in KERNELS.items():
        spec_dir = os.path.join(root, "jupyter", "kernels", SPEC_PREFIX + name)
        os.makedirs(spec_dir)
        with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
            json.dump(
                {
                    "argv": argv,
                    "display_name": f"Python 3 ({name}, bench)",
                    "language": "python",
                    "interrupt_mode": "signal",
                },
                f,
            )
    os.environ["JUPYTER_PATH"] = (
        os.path.join(root, "jupyter") + os.pathsep + os.environ.get("JUPYTER_PATH", "")
    )
    os.environ["IPYTHONDIR"] = os.path.join(root, "ipython")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    # The kernels import ipytwist from this checkout even when it is not installed.
    repo = os.path.dirname(HERE)
    os.environ["PYTHONPATH"] = repo + os.pathsep + os.environ.get("PYTHONPATH", "")
    return root


class PidLog:
    """Kernel pids, appended to a file so a wrapper can clean up after a crash."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def add(self, pids: list[int]) -> None:
        if self.path:
            with open(self.path, "a") as f:
                for pid in pids:
                    f.write(f"{pid}\n")


# -- memory -----------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return kids


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(_children(p))
    return out


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> dict[str, Any]:
    pids = process_tree(pid)
    per = {p: rss_kib(p) for p in pids}
    return {"pids": pids, "rss_kib": per, "total_mib": sum(per.values()) / 1024}


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


# -- report -----------------------------------------------------------------------


@dataclass
class Row:
    label: str
    unit: str
    get: Callable[[dict], float]
    fmt: str = "{:.2f}"
    better: str = "lower"
    notes: list[str] = field(default_factory=list)


def rows(lines: int) -> list[Row]:
    return [
        Row("round trip `1`, median", "ms", lambda r: r["round_trip"]["median_ms"]),
        Row("round trip `1`, p99", "ms", lambda r: r["round_trip"]["p99_ms"]),
        Row(
            f"stdout {lines:,} lines, throughput",
            "lines/s",
            lambda r: r["stdout"]["median_lines_per_s"],
            "{:,.0f}",
            "higher",
        ),
        Row(
            f"stdout {lines:,} lines, wall to idle",
            "s",
            lambda r: r["stdout"]["median_wall_s"],
            "{:.3f}",
        ),
        Row(
            "stdout lines lost / out of order",
            "lines",
            lambda r: r["stdout"]["lost"] + r["stdout"]["out_of_order"],
            "{:.0f}",
        ),
        Row(
            "time to ready (start -> wait_for_ready)",
            "s",
            lambda r: r["startup"]["median_ready_s"],
            "{:.3f}",
        ),
        Row(
            "time to first result of `1` (from start)",
            "s",
            lambda r: r["startup"]["median_first_result_s"],
            "{:.3f}",
        ),
        Row("idle RSS, all processes", "MiB", lambda r: r["rss_idle"]["total_mib"], "{:.1f}"),
        Row("RSS after the stdout test", "MiB", lambda r: r["rss_after"]["total_mib"], "{:.1f}"),
    ]


def table(results: dict[str, dict], lines: int) -> str:
    out = [
        "| metric | unit | ipytwist | ipykernel | ratio (ipytwist/ipykernel) |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows(lines):
        a = row.get(results["ipytwist"])
        b = row.get(results["ipykernel"])
        ratio = f"{a / b:.2f}x" if b else "-"
        out.append(
            f"| {row.label} | {row.unit} | {row.fmt.format(a)} | {row.fmt.format(b)} | {ratio} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=300, help="timed round trips (default 300)")
    p.add_argument("--warmup", type=int, default=30, help="untimed round trips first")
    p.add_argument("--block", type=int, default=25, help="round trips per turn of a kernel")
    p.add_argument("--lines", type=int, default=100_000, help="lines printed by the stdout cell")
    p.add_argument("--stdout-runs", type=int, default=3, help="repeats of the stdout cell")
    p.add_argument("--starts", type=int, default=5, help="cold starts per kernel")
    p.add_argument("--settle", type=float, default=1.0, help="idle seconds before reading RSS")
    p.add_argument("--only", choices=sorted(KERNELS), help="measure one kernel only")
    p.add_argument("--pid-file", help="append every kernel pid here (for cleanup scripts)")
    p.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    args = p.parse_args(argv)

    root = prepare_environment()
    pids = PidLog(args.pid_file)
    names = [args.only] if args.only else list(KERNELS)
    results: dict[str, dict[str, Any]] = {n: {} for n in names}
    started = time.perf_counter()
    try:
        # Cold starts alternate between the kernels so drift hits both alike.
        print("cold starts ...", file=sys.stderr, flush=True)
        starts: dict[str, list[dict]] = {n: [] for n in names}
        for _ in range(args.starts):
            for n in names:
                starts[n].append(measure_startup(n, pids))
        for n in names:
            results[n]["startup"] = {
                "runs": args.starts,
                "median_ready_s": statistics.median(x["ready_s"] for x in starts[n]),
                "median_first_result_s": statistics.median(x["first_result_s"] for x in starts[n]),
                "trials": starts[n],
            }
        print("round trips, stdout, memory ...", file=sys.stderr, flush=True)
        for n, r in measure_sessions(names, args, pids).items():
            results[n].update(r)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    elapsed = time.perf_counter() - started

    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": elapsed,
        "args": vars(args),
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "versions": _versions(),
        "results": results,
    }
    if len(names) == 2:
        md = table(results, args.lines)
        print(md)
        report["table"] = md
    else:
        print(json.dumps(results, indent=1))
    print(f"\n(total {elapsed:.1f}s)")
    if not args.no_save:
        os.makedirs(RESULTS_DIR, exist_ok=True)
        path = os.path.join(RESULTS_DIR, f"kernel-{time.strftime('%Y%m%d-%H%M%S')}.json")
        with open(path, "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {os.path.relpath(path)}")
    return 0


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("ipytwist", "ipykernel", "jupyter_client", "pyzmq", "twisted", "ipython"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


if __name__ == "__main__":
    sys.exit(main())
