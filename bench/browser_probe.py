"""The browser benchmark's probe inside the page: what "ready", "the result 2" and "the
line 19999" look like in each frontend, the script that timestamps them as they are
painted, and waiting for its marks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from playwright.sync_api import Page


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
