"""Clients of alice's server through the hub: Chromium logs into the hub as alice and
lands on ipytwist's page under /user/alice/ (the hub's OAuth in between), then runs a
cell; ``ipytwist console`` runs a cell with alice's hub token."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator

import pexpect
import pytest
from playwright.sync_api import Browser, expect
from support.browser import TIMEOUT_MS, last_cell, launch_chromium, run, state
from support.console import console_env
from support.hub import PASSWORD, JupyterHubProcess, UserServer


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch_chromium()


def test_chromium_logs_into_the_hub_and_runs_a_cell_on_ipytwist(
    browser: Browser, hub: JupyterHubProcess, alice: UserServer
) -> None:
    ctx = browser.new_context(base_url=hub.url)
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto("/user/alice/")  # no credentials: ipytwist -> the hub's OAuth -> login
        expect(page).to_have_url(re.compile(r"/hub/login"))
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", PASSWORD)
        page.locator("input[type=submit], button[type=submit]").first.click()
        # Back through the OAuth callback, logged in by our cookie, on our page.
        expect(page).to_have_url(f"{hub.url}/user/alice/")
        names = {c["name"]: c for c in ctx.cookies()}
        assert names["ipytwist-login"]["path"] == "/user/alice/"
        assert "ipytwist-oauth-state" not in names or not names["ipytwist-oauth-state"]["value"]
        page.get_by_role("button", name="New").click()
        expect(page).to_have_url(re.compile(r"/user/alice/kernels/[0-9a-f-]+$"))
        expect(page.locator("#kernel-state")).to_have_attribute("data-state", "idle")
        run(page, "print('hello from', __import__('os').environ['JUPYTERHUB_USER'])")
        cell = last_cell(page)
        expect(cell).to_have_class(state("done"))
        expect(cell.locator(".output")).to_contain_text("hello from alice")
        assert errors == []
    finally:
        ctx.close()


def test_ipytwist_console_runs_with_alices_hub_token(alice: UserServer, tmp_path: object) -> None:
    log = io.StringIO()
    console = pexpect.spawn(
        sys.executable,
        ["-m", "ipytwist", "console", "--no-color", alice.base, "--token", alice.token],
        env=console_env(str(tmp_path)),
        encoding="utf-8",
        timeout=30,
        dimensions=(50, 200),
    )
    console.logfile_read = log
    try:
        console.expect(r"In \[1\]:")
        console.send("6 * 7 * 1000\r")
        console.expect(r"Out\[1\]: 42000")
        console.expect(r"In \[2\]:")
        console.sendeof()
        console.expect(r"Shut down kernel (\w+)")
        kernel = console.match.group(1)
        console.send("y\r")
        console.expect(pexpect.EOF)
    finally:
        console.close(force=True)
    assert console.exitstatus == 0, log.getvalue()[-2000:]
    # it was a kernel of alice's server (the REST API through the proxy), and is gone
    assert not [k for k in alice.api("GET", "api/kernels").json() if k["id"].startswith(kernel)]
