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
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.error import HTTPError

from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, sync_playwright

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from flood import descendants, kill_leftovers, start_time  # noqa: E402
from ws_fanout import REPO, RESULTS_DIR, Ipytwist, JupyterServer, Server  # noqa: E402

VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
SERVERS = ("ipytwist", "jupyterlab")
LABELS = {"ipytwist": "ipytwist", "jupyterlab": "JupyterLab"}
#: new: the kernel is started by opening the page; running: it was started before.
MODES = ("new", "running")
MIB = 1024 * 1024
GOAL = 0.5  # the project's goal: ipytwist <= 0.5 x JupyterLab on each metric

#: JupyterLab: not part of what is measured, and no network beyond loopback here.
LAB_ARGS = [
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
]


# -- the in-page probe --------------------------------------------------------------------------


@dataclass(frozen=True)
class Selectors:
    """What 'ready', 'the result 2' and 'the line 19999' look like in one frontend."""

    editor: str  # the focused element is a code cell's editor
    idle: str  # a JS expression, true while the page shows the kernel connected and idle
    result: str  # execute_result bodies
    stream: str  # stdout stream outputs


SELECTORS = {
    "ipytwist": Selectors(
        editor="#editor .cm-content",
        # "idle" only once the kernel WebSocket is open and the kernel said so.
        idle="!!document.querySelector('#kernel-state[data-state=\"idle\"]')",
        result="#cells .output .output-body",
        stream="#cells .output-stream pre",
    ),
    "jupyterlab": Selectors(
        editor=".jp-Notebook .jp-Cell .cm-content",
        # The toolbar's indicator says "idle" before the notebook has a kernel at all; the
        # status bar's "Python 3 (ipykernel) | Idle" appears once the kernel is connected
        # (after Initializing, Connecting, Unknown, Busy).
        idle=(
            "!!document.querySelector('.jp-Notebook-ExecutionIndicator[data-status=\"idle\"]')"
            " && [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
            ".some((e) => / [|] Idle$/.test(e.textContent))"
        ),
        result=".jp-OutputArea-executeResult .jp-OutputArea-output",
        stream='.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stdout"]',
    ),
}

#: Runs at the start of every document (Playwright init script). ``window.__bench.marks``
#: gets, per armed condition, when it was first seen true (``seen``) and after the next
#: frame (``painted``): {t: performance.now(), wall: epoch ms}. ``sent`` has the Shift+Enter
#: keydown of each armed step.
PROBE = r"""
(cfg, idle) => {
  if (window.top !== window || window.__bench) return;
  try { performance.setResourceTimingBufferSize(100000); } catch (e) {}
  const stamp = (t) => {
    const now = t === undefined ? performance.now() : t;
    return { t: now, wall: performance.timeOrigin + now };
  };
  const m = { marks: {}, sent: {}, armed: null, checks: 0 };
  window.__bench = m;
  m.focused = () => {
    const a = document.activeElement;
    return !!a && a.matches(cfg.editor);
  };
  m.idle = idle;
  const lastLine = new RegExp(cfg.lastLine);
  const conditions = {
    ready: () => m.idle() && m.focused(),
    focus: () => m.focused(),
    idle: () => m.idle(),
    one: () => [...document.querySelectorAll(cfg.result)].some(
      (e) => e.textContent.trim() === "2"),
    flood_first: () => [...document.querySelectorAll(cfg.stream)].some(
      (e) => e.textContent.length > 0),
    flood: () => [...document.querySelectorAll(cfg.stream)].find(
      (e) => lastLine.test(e.textContent)),
  };
  // Is the bottom of an element (where the last line is) inside the window?
  const onScreen = (el) => {
    const r = el.getBoundingClientRect();
    return r.height > 0 && r.bottom > 0 && r.bottom <= window.innerHeight + 1;
  };
  const pending = new Set(["ready", "focus", "idle"]);
  const check = () => {
    if (!pending.size) return;
    m.checks += 1;
    for (const name of [...pending]) {
      const found = conditions[name]();
      if (!found) continue;
      pending.delete(name);
      const seen = stamp();
      requestAnimationFrame(() => setTimeout(() => {
        const mark = { seen, painted: stamp() };
        if (found instanceof Element) mark.on_screen = onScreen(found);
        m.marks[name] = mark;
      }, 0));
    }
  };
  m.arm = (name, ...more) => {
    m.armed = name;
    for (const n of [name, ...more]) pending.add(n);
    check();
  };
  new MutationObserver(check).observe(document, {
    subtree: true, childList: true, characterData: true,
    attributes: true, attributeFilter: ["data-state", "data-status"],
  });
  document.addEventListener("focusin", check, true);
  window.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && e.shiftKey && m.armed && !(m.armed in m.sent)) {
      m.sent[m.armed] = stamp(e.timeStamp);
    }
  }, true);
}
"""

PAGE_STATS = """() => {
  const res = performance.getEntriesByType("resource");
  const nav = performance.getEntriesByType("navigation")[0];
  const fcp = performance.getEntriesByName("first-contentful-paint")[0];
  const sum = (k) => res.reduce((a, r) => a + (r[k] || 0), 0) + (nav ? nav[k] || 0 : 0);
  return {
    requests: res.length + 1,
    decoded_bytes: sum("decodedBodySize"),
    transfer_bytes: sum("transferSize"),
    dom_content_loaded_ms: nav ? nav.domContentLoadedEventEnd : null,
    load_ms: nav ? nav.loadEventEnd : null,
    first_contentful_paint_ms: fcp ? fcp.startTime : null,
    time_origin: performance.timeOrigin,
  };
}"""


# -- servers ------------------------------------------------------------------------------------


class JupyterLabServer(JupyterServer):
    """ws_fanout's jupyter_server launcher (temporary Jupyter dirs and root, token, loopback,
    iopub rate limits off), running ``python -m jupyterlab`` instead."""

    def _spawn(self, argv: list[str], env: dict[str, str]) -> None:
        i = argv.index("jupyter_server")
        super()._spawn([*argv[:i], "jupyterlab", *argv[i + 1 :], *LAB_ARGS], env)

    @property
    def runtime_dir(self) -> str:
        return os.path.join(self.tmp, "js-runtime")  # JUPYTER_RUNTIME_DIR of the launcher


class Target:
    """One frontend + server: prepares a notebook, gives its URL, cleans up after."""

    name = ""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.selectors = SELECTORS[self.name]

    def prepare(self, n: int) -> str:
        """Set up sample ``n`` (no kernel yet); returns its key."""
        raise NotImplementedError

    def start_kernel(self, key: str) -> str:
        """Start the kernel for ``key`` through REST (not waiting); returns its id."""
        raise NotImplementedError

    def connection_file(self, kernel_id: str) -> str:
        raise NotImplementedError

    def url(self, key: str, token: bool) -> str:
        raise NotImplementedError

    def page_kernel(self, key: str) -> str | None:
        """The kernel the page uses (after it opened)."""
        raise NotImplementedError

    def cleanup(self, key: str) -> None:
        raise NotImplementedError


class IpytwistTarget(Target):
    name = "ipytwist"

    def __init__(self, server: Server) -> None:
        super().__init__(server)
        self.kernels: dict[str, str] = {}

    def prepare(self, n: int) -> str:
        return f"s{n}"

    def start_kernel(self, key: str) -> str:
        kid = self.server.request("POST", "/api/kernels", {"name": "ipytwist"})["id"]
        self.kernels[key] = kid
        return kid

    def connection_file(self, kernel_id: str) -> str:
        return os.path.join(self.server.tmp, "ipytwist-state", f"kernel-{kernel_id}.json")

    def url(self, key: str, token: bool) -> str:
        login = f"?token={self.server.token}" if token else ""
        return f"{self.server.base}/kernels/{self.kernels[key]}{login}"

    def page_kernel(self, key: str) -> str | None:
        return self.kernels.get(key)

    def cleanup(self, key: str) -> None:
        kid = self.kernels.pop(key, None)
        if kid:
            quietly(self.server.request, "DELETE", f"/api/kernels/{kid}")


class JupyterLabTarget(Target):
    name = "jupyterlab"

    def notebook(self, key: str) -> str:
        return f"{key}.ipynb"

    def prepare(self, n: int) -> str:
        key = f"bench-{n}"
        nb = {
            "cells": [
                {
                    "cell_type": "code",
                    "id": secrets.token_hex(4),
                    "source": "",
                    "metadata": {},
                    "outputs": [],
                    "execution_count": None,
                }
            ],
            "metadata": {
                "kernelspec": {
                    "name": "python3",
                    "display_name": "Python 3 (ipykernel)",
                    "language": "python",
                },
                "language_info": {"name": "python"},
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        path = f"/api/contents/{self.notebook(key)}"
        self.server.request("PUT", path, {"type": "notebook", "format": "json", "content": nb})
        return key

    def start_kernel(self, key: str) -> str:
        body = {
            "path": self.notebook(key),
            "name": self.notebook(key),
            "type": "notebook",
            "kernel": {"name": "python3"},
        }
        return self.server.request("POST", "/api/sessions", body)["kernel"]["id"]

    def connection_file(self, kernel_id: str) -> str:
        assert isinstance(self.server, JupyterLabServer)
        return os.path.join(self.server.runtime_dir, f"kernel-{kernel_id}.json")

    def url(self, key: str, token: bool) -> str:
        login = f"?token={self.server.token}" if token else ""
        return f"{self.server.base}/lab/tree/{self.notebook(key)}{login}"

    def sessions(self, key: str) -> list[dict[str, Any]]:
        return [
            s
            for s in self.server.request("GET", "/api/sessions")
            if s.get("path") == self.notebook(key)
        ]

    def page_kernel(self, key: str) -> str | None:
        found = self.sessions(key)
        return found[0]["kernel"]["id"] if len(found) == 1 else None

    def cleanup(self, key: str) -> None:
        for s in quietly(self.sessions, key) or []:
            quietly(self.server.request, "DELETE", f"/api/sessions/{s['id']}")
        quietly(self.server.request, "DELETE", f"/api/contents/{self.notebook(key)}")
        # The next page opens on an empty workspace, not with this notebook's tab again.
        quietly(self.server.request, "DELETE", "/lab/api/workspaces/default")


def quietly(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except HTTPError as e:
        if e.code != 404:
            print(f"  cleanup: {fn.__name__}{args}: {e}", flush=True)
    except Exception as e:
        print(f"  cleanup: {fn.__name__}{args}: {type(e).__name__}: {e}", flush=True)
    return None


def wait_kernel_ready(target: Target, kernel_id: str, timeout: float) -> float:
    """Block until the kernel answers ``kernel_info`` on ZeroMQ; returns the seconds taken."""
    from jupyter_client import BlockingKernelClient

    t0 = time.perf_counter()
    path = target.connection_file(kernel_id)
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no connection file {path}")
        time.sleep(0.05)
    time.sleep(0.05)  # written in one go, but do not race its writer
    kc = BlockingKernelClient(connection_file=path)
    kc.load_connection_file()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=timeout)
    finally:
        kc.stop_channels()
    return time.perf_counter() - t0


# -- one sample ---------------------------------------------------------------------------------


@dataclass
class Sample:
    server: str
    mode: str  # "new" or "running"
    rep: int
    cache: str  # "cold" (fresh context) or "warm" (context reused after a warm-up)
    #: From the start (kernel creation for ipytwist "new", else navigation) to ...
    ready_s: float | None = None  # ... a focused code cell editor with the kernel idle
    one_s: float | None = None  # ... the ``2`` of ``1+1`` shown
    #: The same from navigation (equal to the above except for ipytwist "new").
    nav_ready_s: float | None = None
    nav_one_s: float | None = None
    nav_focus_s: float | None = None  # navigation -> the editor first had the focus
    nav_idle_s: float | None = None  # navigation -> the page first showed the kernel idle
    one_exec_s: float | None = None  # Shift+Enter -> 2 shown
    #: ready shown -> Shift+Enter of 1+1: the driver's round trips and typing (in one_s).
    one_typing_s: float | None = None
    flood_s: float | None = None  # Shift+Enter -> 19999 shown
    flood_seen_s: float | None = None  # ... first in the DOM (before the next frame)
    flood_first_s: float | None = None  # Shift+Enter -> the first line of the print shown
    flood_on_screen: bool | None = None  # the output's end was inside the window then
    heap_mib: float | None = None  # JS heap used after the print, after GC
    heap_before_gc_mib: float | None = None
    heap_total_mib: float | None = None
    dom_nodes: int | None = None
    page_mb: float | None = None  # the page and its resources, decoded (resource timing)
    js_listeners: int | None = None
    kernel_ready_before_s: float | None = None  # "running": start -> kernel_info answered
    kernel_reused: bool | None = None  # "running": the page uses the pre-started kernel
    page: dict[str, Any] = field(default_factory=dict)  # resource and navigation timing
    page_errors: list[str] = field(default_factory=list)
    clock_offset_ms: float | None = None  # page time origin - navigation start (python)
    error: str | None = None


def js_probe(sel: Selectors, lines: int) -> str:
    cfg = {
        "editor": sel.editor,
        "result": sel.result,
        "stream": sel.stream,
        "lastLine": rf"(^|\n){lines - 1}\n?$",
    }
    # The idle test is inlined (no eval: ipytwist's Content-Security-Policy forbids it).
    return f"({PROBE})({json.dumps(cfg)}, () => ({sel.idle}));"


def wait_mark(page: Page, name: str, timeout: float) -> dict[str, Any]:
    page.wait_for_function(
        f"() => window.__bench && window.__bench.marks[{json.dumps(name)}]",
        polling="raf",
        timeout=timeout * 1000,
    )
    return page.evaluate(f"window.__bench.marks[{json.dumps(name)}]")


def wait_idle(page: Page, timeout: float) -> None:
    page.wait_for_function("() => window.__bench.idle()", polling="raf", timeout=timeout * 1000)


def focus_editor(page: Page, sel: Selectors) -> None:
    """Type into the cell editor the page put the focus in; click the last one otherwise."""
    if not page.evaluate("window.__bench.focused()"):
        page.locator(sel.editor).last.click()


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

    def note(self, servers: list[Server]) -> None:
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


def describe(s: Sample) -> str:
    def f(v: float | None, unit: str = "s", digits: int = 2) -> str:
        return "n/a" if v is None else f"{v:.{digits}f}{unit}"

    text = (
        f"{s.server:<10} {s.mode:<7} rep {s.rep}: ready {f(s.ready_s)} 1+1 {f(s.one_s)} "
        f"flood {f(s.flood_s, digits=3)} heap {f(s.heap_mib, ' MiB', 1)}"
    )
    if s.kernel_reused is False:
        text += " KERNEL NOT REUSED"
    if s.page_errors:
        text += f" ({len(s.page_errors)} page errors)"
    if s.error:
        text += f" ERROR {s.error}"
    return text


# -- report -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    key: str  # Sample attribute
    label: str
    unit: str  # "s", "ms", "MiB", "n", "MB"
    modes: tuple[str, ...] = MODES  # which samples it is taken from
    goal: bool = True  # the <= 0.5x goal applies


METRICS = [
    Metric(
        "ready_s", "open (kernel started with the page) -> focused cell, kernel idle", "s", ("new",)
    ),
    Metric("one_s", "open (kernel started with the page) -> `2` of `1+1` shown", "s", ("new",)),
    Metric(
        "ready_s", "open (kernel already running) -> focused cell, kernel idle", "s", ("running",)
    ),
    Metric("one_s", "open (kernel already running) -> `2` of `1+1` shown", "s", ("running",)),
    Metric("flood_s", "Shift+Enter on the print -> `19999` shown", "s"),
    Metric("heap_mib", "JS heap after the print, after GC", "MiB"),
    Metric("one_exec_s", "`1+1`: Shift+Enter -> `2` shown", "ms", goal=False),
    Metric("flood_first_s", "Shift+Enter on the print -> first line shown", "s", goal=False),
    Metric("heap_before_gc_mib", "JS heap after the print, before GC", "MiB", goal=False),
    Metric("dom_nodes", "DOM nodes after the print", "n", goal=False),
    Metric("page_mb", "bytes of the page and its resources (decoded)", "MB", goal=False),
]


def values(samples: list[Sample], server: str, m: Metric) -> list[float]:
    out = []
    for s in samples:
        if s.server != server or s.mode not in m.modes or s.error:
            continue
        if s.mode == "running" and s.kernel_reused is False:
            continue  # the page started another kernel: not the scenario
        v = getattr(s, m.key)
        if v is not None:
            out.append(v * 1000 if m.unit == "ms" else float(v))
    return out


def stats(xs: list[float]) -> dict[str, Any] | None:
    if not xs:
        return None
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def summarize(samples: list[Sample], servers: list[str]) -> list[dict[str, Any]]:
    rows = []
    for m in METRICS:
        row: dict[str, Any] = {"metric": m.label, "unit": m.unit, "goal_applies": m.goal}
        for name in servers:
            row[name] = stats(values(samples, name, m))
        a, b = row.get("ipytwist"), row.get("jupyterlab")
        row["ratio"] = a["median"] / b["median"] if a and b and b["median"] else None
        rows.append(row)
    return rows


def fmt_value(st: dict[str, Any] | None, unit: str) -> str:
    if not st:
        return "n/a"
    digits = {"s": 3, "ms": 0, "MiB": 1, "n": 0, "MB": 2}[unit]

    def f(v: float) -> str:
        return f"{v:,.{digits}f}"

    text = f"{f(st['median'])} {'' if unit == 'n' else unit}".rstrip()
    if st["n"] > 1:
        text += f" ({f(st['min'])}-{f(st['max'])})"
    return text


def table(rows: list[dict[str, Any]], servers: list[str]) -> str:
    heads = [LABELS[s] for s in servers]
    out = [
        "| metric | " + " | ".join(heads) + " | ratio | goal <= 0.5x |",
        "|---|" + "---|" * len(heads) + "---|---|",
    ]
    for r in rows:
        if not any(r.get(s) for s in servers):
            continue  # a mode that was not run
        cells = [fmt_value(r.get(s), r["unit"]) for s in servers]
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else ""
        goal = ""
        if r["goal_applies"] and r["ratio"] is not None:
            goal = "met" if r["ratio"] <= GOAL else "not met"
        out.append(f"| {r['metric']} | " + " | ".join(cells) + f" | {ratio} | {goal} |")
    return "\n".join(out)


def versions(browser_version: str) -> dict[str, Any]:
    out: dict[str, Any] = {"chromium": browser_version, "python": sys.version.split()[0]}
    for pkg in ("jupyterlab", "jupyter_server", "ipykernel", "playwright", "twisted"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
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
        "--servers",
        type=lambda s: s.split(","),
        default=list(SERVERS),
        help="comma-separated: ipytwist,jupyterlab",
    )
    p.add_argument(
        "--modes",
        type=lambda s: s.split(","),
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
    p.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    p.add_argument("--keep-logs", action="store_true", help="keep server logs (temp dir)")
    args = p.parse_args(argv)
    for s in args.servers:
        if s not in SERVERS:
            p.error(f"unknown server {s!r}")
    for m in args.modes:
        if m not in MODES:
            p.error(f"unknown mode {m!r}")
    if args.cache == "warm" and args.warmup < 1:
        p.error("--cache warm needs --warmup >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.path.exists(args.chromium):
        print(f"{args.chromium} is missing (apt-get install -y chromium)", file=sys.stderr)
        return 2
    args.tmp = tmp = tempfile.mkdtemp(prefix="ipytwist-browser-")
    servers: dict[str, Server] = {}
    targets: list[Target] = []
    pids = Pids()
    samples: list[Sample] = []
    started = time.time()
    info: dict[str, Any] = {}
    try:
        for name in args.servers:
            server: Server = (
                Ipytwist(name, tmp) if name == "ipytwist" else JupyterLabServer(name, tmp)
            )
            servers[name] = server
            server.start()
            targets.append(
                IpytwistTarget(server) if name == "ipytwist" else JupyterLabTarget(server)
            )
        pids.note(list(servers.values()))
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            try:
                info = versions(browser.version)
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
        if args.keep_logs:
            print("logs kept in", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    rows = summarize(samples, args.servers)
    print()
    print(table(rows, args.servers))
    errors = [s for s in samples if s.error]
    if errors:
        print(f"\n{len(errors)} samples failed: " + "; ".join(describe(s) for s in errors))
    if not args.no_save:
        os.makedirs(RESULTS_DIR, exist_ok=True)
        path = os.path.join(RESULTS_DIR, time.strftime("browser-%Y%m%d-%H%M%S.json"))
        with open(path, "w") as f:
            json.dump(
                {
                    "bench": "browser",
                    "started": started,
                    "duration": time.time() - started,
                    "args": {k: v for k, v in vars(args).items() if k != "tmp"},
                    "versions": info,
                    "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
                    "chromium_args": CHROMIUM_ARGS,
                    "summary": rows,
                    "samples": [asdict(s) for s in samples],
                },
                f,
                indent=1,
            )
        print(f"\nwrote {path}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
