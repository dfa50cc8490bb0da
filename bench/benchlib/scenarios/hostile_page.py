"""The hostile outputs of :mod:`.hostile` on the real notebook page, in Chromium.

The outputs go in batches, each on a fresh transcript. Each output is shown live, in a
window that is open while another client runs its cell; then a window opened afterwards
shows the batch from the transcript. In each window, after each output, what a user
would click in it is clicked, a cell printed after it is waited for (the page still
follows the kernel, and whatever the output set off has had a round trip to happen),
and the page is probed. A *breach* is anything of:

- the page navigated, or a frame in it loaded a document;
- a request left for the other site (a new tab opened by a click may go there);
- a new tab can reach the page (``window.opener``);
- a script ran (``window.__pwned``), or the login cookie is readable by script;
- the page's base URL changed;
- one of the page's own controls, or a cell's code, is hidden or covered at its centre;
- the page's own scripts fail, or it stops showing output.

A breach is put down to the output probed after it (a window opened later may breach
as it loads: that goes to the batch's ``loading``). Batches of one (``bench/reliability.py``)
tell apart what each output does; one batch of all (``tests/reliability``) is quicker.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, Request, Route
from playwright.sync_api import Error as PlaywrightError

from ..servers import Service
from ..wsclient import WSClient
from .hostile import EVIL, HOSTILE, Hostile

#: The page's own controls, each of which must stay visible and on top.
CONTROLS = (
    "#interrupt",
    "#restart",
    "#clear",
    "#download",
    "#editor",
    "#kernel-state",
    ".topbar .brand",
)
#: What an output of a batch gets when an earlier one took the window away.
LEFT = "not tried: an output before it took the window away"
#: How long a window may take to show a printed line.
SHOW_MS = 10_000

_PROBE = """(controls) => {
  const out = [];
  const pwned = window.__pwned;
  if (pwned !== undefined) out.push(`a script ran (${String(pwned).slice(0, 60)})`);
  if (document.baseURI !== location.href.split('#')[0]) out.push(`base URL ${document.baseURI}`);
  if (/ipytwist/.test(document.cookie)) out.push('the login cookie is readable by script');
  const els = controls.map((s) => [s, document.querySelector(s)]);
  document.querySelectorAll('#cells pre.code').forEach((el, i) => {
    els.push([`code of cell ${i + 1}`, el]);
  });
  const shown = { checkOpacity: true, checkVisibilityCSS: true };
  for (const [what, el] of els) {
    if (!el) { out.push(`${what} is gone`); continue; }
    el.scrollIntoView({ block: 'center' });
    const r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1 || !el.checkVisibility(shown)) {
      out.push(`${what} is hidden`);
      continue;
    }
    const hit = document.elementFromPoint(r.left + Math.min(r.width / 2, 12), r.top + r.height / 2);
    if (!hit || !el.contains(hit)) out.push(`${what} is covered by <${hit?.localName}>`);
  }
  return out;
}"""

_SHOWN = """(text) => Array.from(document.querySelectorAll('#cells .output-stream'))
  .some((el) => el.textContent.includes(text))"""


@dataclass
class Outcome:
    """What one hostile output did: its breaches live and in a window opened later."""

    name: str
    live: list[str] = field(default_factory=list)
    later: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return not self.live and not self.later


@dataclass
class HostileResult:
    outcomes: list[Outcome]
    #: Breaches of windows opened later, while they loaded a batch of several outputs.
    loading: list[str]
    #: Links clicked that opened a new tab (without access to the page).
    new_tabs: int
    seconds: float

    @property
    def tried(self) -> int:
        return len(self.outcomes)

    @property
    def blocked(self) -> int:
        return sum(o.blocked for o in self.outcomes)

    def breaches(self) -> dict[str, Any]:
        """What was not blocked: by output, live and later, and while loading."""
        out: dict[str, Any] = {
            o.name: {"live": o.live, "later": o.later} for o in self.outcomes if not o.blocked
        }
        if self.loading:
            out["(loading)"] = self.loading
        return out


def _answer(route: Route) -> None:
    route.fulfill(status=200, content_type="text/html", body="<p>the other site</p>")


class Window:
    """One notebook page of the kernel, and the breaches it saw."""

    def __init__(self, ctx: BrowserContext, svc: Service, kid: str) -> None:
        self.url = f"{svc.url}/kernels/{kid}"
        self.page: Page = ctx.new_page()
        self.breaches: list[str] = []
        self.new_tabs = 0
        self._popups: list[Page] = []
        self.page.on("response", lambda r: self._request(r.request))
        self.page.on("popup", self._popup)
        self.page.on("pageerror", lambda e: self.add(f"page error: {e}"[:200]))
        self.page.goto(self.url)
        try:
            ready = self.page.locator("#kernel-state:not([data-state=unknown])")
            ready.wait_for(state="attached", timeout=SHOW_MS)
        except PlaywrightError:
            self.add("the page did not load")

    def _popup(self, popup: Page) -> None:
        if popup not in self._popups:
            self._popups.append(popup)

    def add(self, breach: str) -> None:
        if breach not in self.breaches:
            self.breaches.append(breach)

    def since(self, mark: int) -> list[str]:
        return self.breaches[mark:]

    def _request(self, req: Request) -> None:
        """A request that got an answer (one the policy blocked gets none)."""
        if req.url.startswith(EVIL):
            self.add(f"request to the other site: {req.url[len(EVIL) :][:80]}")
        elif req.is_navigation_request() and req.url != self.url:
            where = "the page" if req.frame == self.page.main_frame else "a frame"
            self.add(f"{where} loaded {req.method} {req.url[:100]}")

    def gone(self) -> bool:
        """Whether the page left its URL (a breach)."""
        if self.page.url.split("#")[0] == self.url:
            return False
        self.add(f"the page is now at {self.page.url[:100]}")
        return True

    def shown(self, text: str) -> None:
        """Wait until the page shows a printed ``text`` (a breach if it does not). Asked of
        the page itself: after a form submission the policy blocked, Playwright's own
        locators wait for a navigation that never comes."""
        if self.gone():
            return
        try:
            self.page.wait_for_function(_SHOWN, arg=text, timeout=SHOW_MS)
        except PlaywrightError:
            self.add(f"the page stopped showing output ({text!r} not shown)")

    def settle(self, ws: WSClient, text: str) -> None:
        """A round trip through the kernel and the page: print ``text``, wait for it."""
        reply, _ = ws.execute(f"print({text!r})")
        assert reply["content"]["status"] == "ok", reply["content"]
        self.shown(text)

    def click(self, h: Hostile) -> None:
        """Click (a real mouse click at its centre) everything ``h`` offers to click."""
        if h.click is None or self.gone():
            return
        code = self.page.locator("pre.code", has_text=f"# hostile[{h.name}]")
        cell = self.page.locator("#cells .cell").filter(has=code)
        targets = cell.locator(f".outputs {h.click}")
        for i in range(targets.count()):
            try:
                if h.link:  # a new tab is expected: wait for it, to look at it
                    with self.page.expect_popup(timeout=SHOW_MS) as popup:
                        targets.nth(i).click(force=True, timeout=2_000)
                    self._popup(popup.value)
                else:
                    targets.nth(i).click(force=True, timeout=2_000)
            except PlaywrightError:
                pass  # gone, or nothing to click, or no new tab: nothing happened

    def probe(self) -> None:
        if self.gone():
            return
        try:
            for breach in self.page.evaluate(_PROBE, list(CONTROLS)):
                self.add(breach)
        except PlaywrightError as e:
            self.add(f"the page cannot be probed: {str(e).splitlines()[0][:120]}")
        for popup in self._popups:
            self.new_tabs += 1
            try:
                if popup.evaluate("window.opener !== null"):
                    self.add("a new tab can reach the page (window.opener)")
            except PlaywrightError:
                pass
            popup.close()
        self._popups.clear()

    def close(self) -> None:
        self.page.close()


def run_batch(
    ctx: BrowserContext, svc: Service, kid: str, ws: WSClient, batch: list[Hostile]
) -> tuple[list[Outcome], list[str], int]:
    """The outputs of ``batch`` live, one after another in one window, then in a window
    opened later; their outcomes, what that window did as it loaded, and its new tabs."""
    svc.api("DELETE", f"/api/kernels/{kid}/transcript").raise_for_status()
    outcomes = [Outcome(h.name) for h in batch]
    live = Window(ctx, svc, kid)
    for h, o in zip(batch, outcomes, strict=True):
        if live.gone():
            o.live = [LEFT]
            continue
        mark = len(live.breaches)
        reply, _ = ws.execute(h.code(kid))
        assert reply["content"]["status"] == "ok", (h.name, reply["content"])
        live.shown(h.shown)
        live.click(h)
        live.settle(ws, f"clicked {h.name}")
        live.probe()
        o.live = live.since(mark)
    live.close()
    later = Window(ctx, svc, kid)
    later.shown(f"clicked {batch[-1].name}")
    later.probe()
    loading = later.since(0)
    for h, o in zip(batch, outcomes, strict=True):
        if later.gone():
            o.later = [LEFT]
            continue
        mark = len(later.breaches)
        later.click(h)
        later.settle(ws, f"clicked later {h.name}")
        later.probe()
        o.later = later.since(mark)
    later.close()
    if len(batch) == 1:
        outcomes[0].later[:0] = loading
        loading = []
    return outcomes, loading, live.new_tabs + later.new_tabs


def hostile_outputs(
    browser: Browser,
    svc: Service,
    kid: str,
    hostile: Iterable[Hostile] = HOSTILE,
    batch: int = 1,
) -> HostileResult:
    """Every output of ``hostile`` on kernel ``kid`` of ``svc`` (whose transcript it
    clears), ``batch`` at a time, in a browser context of its own."""
    t0 = time.monotonic()
    todo = list(hostile)
    ctx = browser.new_context(base_url=svc.url)
    ctx.set_default_timeout(SHOW_MS)
    ctx.route(f"{EVIL}/**", _answer)
    login = ctx.new_page()
    login.goto(f"/?token={svc.token}")  # the login cookie, for every window
    login.close()
    ws = WSClient.connect(svc, kid)
    result = HostileResult([], [], 0, 0.0)
    try:
        for i in range(0, len(todo), batch):
            outcomes, loading, tabs = run_batch(ctx, svc, kid, ws, todo[i : i + batch])
            result.outcomes += outcomes
            result.loading += loading
            result.new_tabs += tabs
    finally:
        ws.close()
        ctx.close()
    result.seconds = time.monotonic() - t0
    return result
