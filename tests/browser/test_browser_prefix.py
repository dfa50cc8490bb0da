"""The notebook page under a base URL (``--base-url /user/alice/``) in Chromium: log in
with the token, start a kernel from the list, run a cell and show a widget; every
request the page makes stays below the prefix."""

from __future__ import annotations

from playwright.sync_api import Browser, BrowserContext, expect
from support.browser import TIMEOUT_MS, last_cell, run, state
from support.prefix import BASE, PrefixedService, prefixed_service_fixture

svc = prefixed_service_fixture()

SLIDER = "import ipywidgets as w\nw.IntSlider(7, min=0, max=10)"


def test_the_page_under_the_prefix_runs_a_cell_and_a_widget(
    browser: Browser, svc: PrefixedService, contexts: list[BrowserContext]
) -> None:
    ctx = browser.new_context()
    ctx.set_default_timeout(TIMEOUT_MS)
    contexts.append(ctx)
    page = ctx.new_page()
    requested: list[str] = []
    errors: list[str] = []
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.on("request", lambda r: requested.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(svc.url + "/kernels/x")  # not logged in: the prefix's login page
    expect(page).to_have_url(f"{svc.root}{BASE}login?next=%2Fuser%2Falice%2Fkernels%2Fx")
    page.goto(f"{svc.url}/?token={svc.token}")
    expect(page).to_have_url(f"{svc.root}{BASE}")
    (cookie,) = [c for c in ctx.cookies() if c["name"] == "ipytwist-login"]
    assert cookie["path"] == BASE
    page.get_by_role("button", name="New").click()
    page.wait_for_url(lambda url: url.startswith(f"{svc.root}{BASE}kernels/"))
    kid = page.url.rsplit("/", 1)[1]
    try:
        expect(page.locator("#kernel-state")).to_have_attribute("data-state", "idle")
        run(page, "print(6*7*1000)")
        expect(last_cell(page).locator(".output-stream")).to_have_text("42000")
        expect(last_cell(page)).to_have_class(state("done"))
        run(page, SLIDER)
        expect(page.locator("#cells .widget-readout").first).to_have_text("7")
        page.get_by_role("link", name="ipytwist").click()  # the brand: the kernel list
        expect(page).to_have_url(f"{svc.root}{BASE}")
        expect(page.locator(f'tr[data-kernel-id="{kid}"]')).to_contain_text("idle")
    finally:
        svc.delete_kernel(kid)
    assert errors == []
    outside = [u for u in requested if not u.startswith(f"{svc.root}{BASE}")]
    assert outside == [], outside
    assert any(u.startswith(f"{svc.root}{BASE}static/widgets.js") for u in requested)
    assert sockets and all(
        u.startswith(f"ws://127.0.0.1:{svc.port}{BASE}api/kernels/{kid}/channels?") for u in sockets
    ), sockets
