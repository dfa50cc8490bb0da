"""The notebook page in Debian's Chromium, driven by Playwright: launching it, opening a
kernel's page in a fresh context (a browser of its own), and typing into the page."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from benchlib.chromium import CHROMIUM, CHROMIUM_ARGS
from benchlib.servers import Service

try:
    from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]

TIMEOUT_MS = 20_000


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def launch_chromium() -> Iterator[Browser]:
    """Chromium for a module's tests; without it they skip (they fail under CI=true)."""
    if sync_playwright is None:
        _unavailable("the playwright package is not installed (pip install '.[test]')")
    if not os.path.exists(CHROMIUM):
        _unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def new_context(browser: Browser, svc: Service, contexts: list[BrowserContext], **kw: Any) -> Any:
    """A fresh browser context (its own cookie jar), closed after the test."""
    ctx = browser.new_context(base_url=svc.url, **kw)
    ctx.set_default_timeout(TIMEOUT_MS)
    contexts.append(ctx)
    return ctx


def open_notebook(ctx: BrowserContext, svc: Service, kid: str, login: bool = True) -> Page:
    """The kernel's page, logged in by ``?token=`` (which redirects to the bare page)."""
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors  # type: ignore[attr-defined]
    page.goto(f"/kernels/{kid}" + (f"?token={svc.token}" if login else ""))
    assert "token" not in page.url
    expect(page.locator("#kernel-state")).to_have_attribute("data-state", "idle")
    return page


def run(page: Page, code: str) -> None:
    """Type ``code`` into the input cell (as a paste: no auto-indent) and Shift+Enter."""
    editor = page.locator("#editor .cm-content")
    editor.click()
    page.keyboard.insert_text(code)
    page.keyboard.press("Shift+Enter")
    expect(editor).to_have_text("")


def state(name: str) -> re.Pattern[str]:
    """A cell's class when it is in state ``name``."""
    return re.compile(rf"\bstate-{name}\b")


def last_cell(page: Page) -> Any:
    return page.locator("#cells .cell").last
