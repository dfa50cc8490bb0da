"""The notebook page in Chromium through a real nginx (docs/nginx.conf, HTTPS) in front
of a service that trusts it: the login cookie is Secure, the page's same-origin requests
and its kernel WebSocket pass the origin checks with the host and scheme nginx
forwards, and a cell runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from benchlib.servers import WARM_POOL, Service
from playwright.sync_api import Browser, BrowserContext, expect
from support.browser import TIMEOUT_MS, last_cell, run
from support.nginx import Nginx, nginx_in_front
from support.service import service_fixture

#: As in tests/test_nginx.py: docs/nginx.conf's prefix, the service's --base-url.
PREFIX = "/ipytwist/"

svc = service_fixture(
    "browser-nginx", "--trusted-proxy", "127.0.0.1", "--base-url", PREFIX, *WARM_POOL
)


@pytest.fixture(scope="module")
def front(svc: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    with nginx_in_front(tmp_path_factory.mktemp("nginx"), svc.port, PREFIX, svc.token) as proxy:
        yield proxy


def test_the_page_through_nginx_logs_in_starts_a_kernel_and_runs_a_cell(
    browser: Browser, svc: Service, front: Nginx, contexts: list[BrowserContext]
) -> None:
    ctx = browser.new_context(base_url=front.url, ignore_https_errors=True)
    ctx.set_default_timeout(TIMEOUT_MS)
    contexts.append(ctx)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{front.url}?token={svc.token}")
    expect(page).to_have_url(front.url)
    cookie = next(c for c in ctx.cookies() if c["name"] == "ipytwist-login")
    assert cookie["secure"] and cookie["httpOnly"]
    # New: a same-origin POST with the cookie, through nginx.
    page.get_by_role("button", name="New").click()
    page.wait_for_url(lambda url: "/kernels/" in url)
    expect(page.locator("#kernel-state")).to_have_attribute("data-state", "idle")
    run(page, "print(6*7*1000)")
    expect(last_cell(page).locator(".output-stream")).to_have_text("42000")
    assert errors == []
    kernel = page.url.rsplit("/", 1)[1]
    assert (
        front.request("DELETE", f"api/kernels/{kernel}", {"Authorization": f"token {svc.token}"})[0]
        == 204
    )
