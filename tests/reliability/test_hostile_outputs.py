"""Hostile outputs on the notebook page, in Chromium: none navigates the page, runs script
in it, reads its cookie, sends a request to another site or covers the page's controls,
whether it arrives live or from the transcript in a window opened later.

The outputs (meta refresh, <base>, forms, links of every kind, frames, objects, script
in every place, SVG and MathML tricks, CSS beacons, styles and overlays, popovers and
dialogs, DOM clobbering) are :data:`benchlib.scenarios.hostile.HOSTILE`; how each is
shown and probed is :mod:`benchlib.scenarios.hostile_page`. Here they go in one batch;
``python bench/reliability.py --only hostile`` shows them one at a time and counts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from benchlib.scenarios.hostile import HOSTILE
from benchlib.scenarios.hostile_page import hostile_outputs
from benchlib.servers import WARM_POOL, Service
from playwright.sync_api import Browser
from support.browser import launch_chromium
from support.service import service_fixture

svc = service_fixture("hostile", *WARM_POOL)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch_chromium()


def test_no_hostile_output_breaks_out_live_or_from_the_transcript(
    browser: Browser, svc: Service, kernel_id: str
) -> None:
    result = hostile_outputs(browser, svc, kernel_id, HOSTILE, batch=len(HOSTILE))
    assert result.breaches() == {}
    assert result.tried == len(HOSTILE) and result.blocked == len(HOSTILE)
    # Links stay links: each one clicked, live and later, opened the other site in a new
    # tab (that could not reach the page), so the clicks above did click.
    assert result.new_tabs == 2 * sum(h.link for h in HOSTILE)
