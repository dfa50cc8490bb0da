"""Browser benchmark: the ipytwist notebook page next to JupyterLab 4 (+ ipykernel), in one run.

Both are driven by the same Playwright code in the same headless Chromium
(``/usr/bin/chromium``). Each sample is a fresh page (by default in a fresh browser
context: empty cache, no cookies) that

1. opens a notebook: ipytwist ``/kernels/{id}``, JupyterLab ``/lab/tree/<name>.ipynb``
   (a one-empty-cell notebook with the ``python3`` kernelspec, written through the
   contents API first), and waits until a code cell's editor has the focus and the page
   shows the kernel idle;
2. types ``1+1``, Shift+Enter, and waits for the ``2`` to be shown;
3. inserts ``for i in range(20000): print(i)``, Shift+Enter, and waits for the line
   ``19999`` to be in the page (and painted);
4. once the kernel is idle again, reads the page's JS heap through the DevTools
   protocol (``HeapProfiler.collectGarbage``, then ``Runtime.getHeapUsage``).

Pages are opened in two ways: with a kernel started by the open itself (ipytwist:
``POST /api/kernels`` then the page; JupyterLab: the page starts the notebook's kernel),
and with a kernel already running (started through REST and answered ``kernel_info``
beforehand; JupyterLab finds it through its session for the notebook's path).

Times are taken inside the page (a MutationObserver installed by an init script, the
keydown's timestamp, then a requestAnimationFrame + setTimeout so that what is measured
has been painted), not by polling from Python.

Prints a markdown table (medians, min-max, ratio ipytwist / JupyterLab) and writes the
samples to ``bench/results/browser-<time>.json``. ``python bench/browser_bench.py --help``.
Needs ``playwright`` (the test extra), ``jupyterlab>=4`` (``pip install 'jupyterlab>=4'``,
for this bench only) and ``/usr/bin/chromium``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import asdict
from typing import Any

from benchlib.chromium import CHROMIUM, CHROMIUM_ARGS
from benchlib.cli import add_common_options, comma_list, scratch
from benchlib.procs import descendants, kill_leftovers, start_time
from benchlib.results import record, save, versions
from benchlib.servers import REPO, ServerProcess, comparison_server, raise_fd_limit
from browser_probe import PAGE_STATS, focus_editor, js_probe, wait_idle, wait_mark
from browser_report import MODES, SERVERS, Sample, describe, summarize, table
from browser_targets import LAB_ARGS, IpytwistTarget, JupyterLabTarget, Target, wait_kernel_ready
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, sync_playwright

VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
MIB = 1024 * 1024


def run_sample(
    target: Target,
    ctx: BrowserContext,
    sample: Sample,
    n: int,
    args: argparse.Namespace,
    logged_in: bool,
) -> None:
    sel = target.selectors
    running = sample.mode == "running"
    key = target.prepare(n)
    page: Page | None = None
    try:
        if running:
            kid = target.start_kernel(key)
            sample.kernel_ready_before_s = wait_kernel_ready(target, kid, args.timeout)
            time.sleep(args.settle)
        page = ctx.new_page()
        page.on("pageerror", lambda e: sample.page_errors.append(str(e)[:300]))
        cdp = ctx.new_cdp_session(page)
        t_start = time.time() * 1000
        if not running and isinstance(target, IpytwistTarget):
            target.start_kernel(key)  # ipytwist: the kernel through REST, then the page
        t_nav = time.time() * 1000
        page.goto(target.url(key, token=not logged_in), wait_until="commit")
        ready = wait_mark(page, "ready", args.timeout)
        sample.ready_s = (ready["painted"]["wall"] - t_start) / 1000
        sample.nav_ready_s = (ready["painted"]["wall"] - t_nav) / 1000
        parts = page.evaluate("[window.__bench.marks.focus, window.__bench.marks.idle]")
        if parts[0]:
            sample.nav_focus_s = (parts[0]["painted"]["wall"] - t_nav) / 1000
        if parts[1]:
            sample.nav_idle_s = (parts[1]["painted"]["wall"] - t_nav) / 1000

        # 1+1, typed as a user would.
        focus_editor(page, sel)
        page.evaluate("window.__bench.arm('one')")
        page.keyboard.type("1+1")
        page.keyboard.press("Shift+Enter")
        one = wait_mark(page, "one", args.timeout)
        sent = page.evaluate("window.__bench.sent.one")
        sample.one_s = (one["painted"]["wall"] - t_start) / 1000
        sample.nav_one_s = (one["painted"]["wall"] - t_nav) / 1000
        sample.one_exec_s = (one["painted"]["t"] - sent["t"]) / 1000
        sample.one_typing_s = (sent["wall"] - ready["painted"]["wall"]) / 1000
        wait_idle(page, args.timeout)

        # The print flood, inserted (as a paste: no auto-indent or bracket closing).
        focus_editor(page, sel)
        page.keyboard.insert_text(f"for i in range({args.lines}): print(i)")
        page.evaluate("window.__bench.arm('flood', 'flood_first')")
        page.keyboard.press("Shift+Enter")
        flood = wait_mark(page, "flood", args.timeout)
        sent = page.evaluate("window.__bench.sent.flood")
        sample.flood_s = (flood["painted"]["t"] - sent["t"]) / 1000
        sample.flood_seen_s = (flood["seen"]["t"] - sent["t"]) / 1000
        sample.flood_on_screen = flood.get("on_screen")
        first = page.evaluate("window.__bench.marks.flood_first")
        if first:
            sample.flood_first_s = (first["painted"]["t"] - sent["t"]) / 1000
        wait_idle(page, args.timeout)
        time.sleep(args.settle)

        before = cdp.send("Runtime.getHeapUsage")
        cdp.send("HeapProfiler.collectGarbage")
        cdp.send("HeapProfiler.collectGarbage")
        after = cdp.send("Runtime.getHeapUsage")
        counters = cdp.send("Memory.getDOMCounters")
        sample.heap_before_gc_mib = before["usedSize"] / MIB
        sample.heap_mib = after["usedSize"] / MIB
        sample.heap_total_mib = after["totalSize"] / MIB
        sample.dom_nodes = counters.get("nodes")
        sample.js_listeners = counters.get("jsEventListeners")
        sample.page = page.evaluate(PAGE_STATS)
        sample.page_mb = sample.page["decoded_bytes"] / 1e6
        sample.clock_offset_ms = sample.page["time_origin"] - t_nav
        if running:
            sample.kernel_reused = target.page_kernel(key) == kid
    except Exception as e:
        sample.error = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
        if page is not None and args.keep_logs:
            shot = os.path.join(args.tmp, f"{target.name}-{sample.mode}-{n}.png")
            try:
                page.screenshot(path=shot)
                sample.error += f" (screenshot {shot})"
            except Exception:
                pass
    finally:
        if page is not None:
            page.close()
        target.cleanup(key)


# -- the run ------------------------------------------------------------------------------------


class Pids:
    """Every descendant of the servers seen during the run, to kill any left at the end."""

    def __init__(self) -> None:
        self.seen: dict[int, str | None] = {}

    def note(self, servers: list[ServerProcess]) -> None:
        for s in servers:
            if s.proc is not None:
                for pid in descendants(s.proc.pid):
                    self.seen.setdefault(pid, start_time(pid))


def new_context(browser: Browser, target: Target, lines: int) -> BrowserContext:
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.add_init_script(script=js_probe(target.selectors, lines))
    return ctx


def run_all(
    browser: Browser, targets: list[Target], args: argparse.Namespace, pids: Pids
) -> list[Sample]:
    samples: list[Sample] = []
    counter = 0
    warm: dict[str, BrowserContext] = {}
    servers = [t.server for t in targets]

    def one(target: Target, mode: str, rep: int, timed: bool) -> Sample:
        nonlocal counter
        counter += 1
        sample = Sample(target.name, mode, rep, args.cache)
        if args.cache == "warm":
            ctx = warm.get(target.name)
            logged_in = ctx is not None
            if ctx is None:
                ctx = warm[target.name] = new_context(browser, target, args.lines)
            run_sample(target, ctx, sample, counter, args, logged_in)
        else:
            ctx = new_context(browser, target, args.lines)
            try:
                run_sample(target, ctx, sample, counter, args, logged_in=False)
            finally:
                ctx.close()
        pids.note(servers)
        time.sleep(args.pause)  # let the closed page and the deleted kernel wind down
        print(f"  {'' if timed else '(warm-up) '}{describe(sample)}", flush=True)
        return sample

    try:
        for w in range(args.warmup):
            for target in targets:
                one(target, "new", -1 - w, timed=False)
        for rep in range(args.reps):
            order = targets if rep % 2 == 0 else targets[::-1]
            for mode in args.modes:
                for target in order:
                    samples.append(one(target, mode, rep, timed=True))
    finally:
        for ctx in warm.values():
            ctx.close()
    return samples


def run_versions(browser_version: str) -> dict[str, Any]:
    """Chromium's, the packages' and this checkout's (its commit, and whether the service
    or the frontend differ from it)."""
    out: dict[str, Any] = {"chromium": browser_version, "python": sys.version.split()[0]}
    out |= versions("jupyterlab", "jupyter_server", "ipykernel", "playwright", "twisted")
    try:
        out["ipytwist_commit"] = subprocess.run(
            ["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", REPO, "status", "--porcelain", "ipytwist", "frontend"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        out["ipytwist_dirty"] = bool(dirty)
    except (OSError, subprocess.CalledProcessError):
        pass
    return out


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reps", type=int, default=5, help="samples per server and mode (5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed samples per server first (1)")
    p.add_argument(
        "--modes",
        type=comma_list(MODES, "mode"),
        default=list(MODES),
        help="comma-separated: new (kernel started with the page), running (before it)",
    )
    p.add_argument(
        "--cache",
        choices=("cold", "warm"),
        default="cold",
        help="cold: a fresh browser context per sample (empty cache, login by ?token=);\n"
        "warm: one context per server, reused after the warm-up (cached, logged in)",
    )
    p.add_argument("--lines", type=int, default=20_000, help="lines printed (20000)")
    p.add_argument(
        "--settle", type=float, default=1.0, help="seconds idle before the heap is read (1)"
    )
    p.add_argument("--pause", type=float, default=1.0, help="seconds between samples (1)")
    p.add_argument("--timeout", type=float, default=120.0, help="per step (seconds)")
    p.add_argument("--chromium", default=CHROMIUM, help=f"browser binary ({CHROMIUM})")
    add_common_options(p, SERVERS)
    args = p.parse_args(argv)
    if args.cache == "warm" and args.warmup < 1:
        p.error("--cache warm needs --warmup >= 1")
    return args


def start_target(name: str, tmp: str, servers: dict[str, ServerProcess]) -> Target:
    """Start the server of frontend ``name`` (kept in ``servers``); the frontend on it."""
    if name == "ipytwist":
        server = servers[name] = comparison_server(name, tmp)
        return IpytwistTarget(server.start())
    server = servers[name] = comparison_server(name, tmp, *LAB_ARGS, app="jupyterlab")
    return JupyterLabTarget(server.start())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.path.exists(args.chromium):
        print(f"{args.chromium} is missing (apt-get install -y chromium)", file=sys.stderr)
        return 2
    raise_fd_limit()  # for the servers, as the other benchmarks raise it
    samples: list[Sample] = []
    started = time.time()
    info: dict[str, Any] = {}
    with scratch("ipytwist-browser-", args.keep_logs) as tmp:
        args.tmp = tmp
        servers: dict[str, ServerProcess] = {}
        pids = Pids()
        try:
            targets = [start_target(name, tmp, servers) for name in args.servers]
            pids.note(list(servers.values()))
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                try:
                    info = run_versions(browser.version)
                    print(
                        f"chromium {browser.version}, jupyterlab {info.get('jupyterlab')}, "
                        f"cache {args.cache}, {args.reps} reps x modes {','.join(args.modes)}",
                        flush=True,
                    )
                    samples = run_all(browser, targets, args, pids)
                finally:
                    browser.close()
        finally:
            for s in servers.values():
                s.stop()
            left = kill_leftovers(pids.seen)
            if left:
                print(f"killed leftover processes: {left}", flush=True)
    rows = summarize(samples, args.servers)
    print()
    print(table(rows, args.servers))
    errors = [s for s in samples if s.error]
    if errors:
        print(f"\n{len(errors)} samples failed: " + "; ".join(describe(s) for s in errors))
    if not args.no_save:
        options = {k: v for k, v in vars(args).items() if k != "tmp"}
        data = record("browser", started, options, versions=info, chromium_args=CHROMIUM_ARGS)
        data |= {"summary": rows, "samples": [asdict(s) for s in samples]}
        print(f"\nwrote {save('browser', data)}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
