"""Fixtures of the browser tests: one Chromium per module, one service for both modules
(with a kernel started ahead), a fresh kernel and a fresh page per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from benchlib.servers import WARM_POOL, Service
from playwright.sync_api import Browser, BrowserContext, Page
from support.browser import launch_chromium, new_context, open_notebook
from support.service import service_fixture

svc = service_fixture("browser", *WARM_POOL, shared=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch_chromium()


@pytest.fixture
def contexts(browser: Browser, svc: Service) -> Iterator[list[BrowserContext]]:
    """Browser contexts (separate cookie jars, like separate browsers); closed after."""
    opened: list[BrowserContext] = []
    yield opened
    for c in opened:
        c.close()


@pytest.fixture
def page(browser: Browser, svc: Service, kernel_id: str, contexts: list[BrowserContext]) -> Page:
    return open_notebook(new_context(browser, svc, contexts), svc, kernel_id)
