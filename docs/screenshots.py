"""Screenshots of the notebook page, at desktop and phone width, into docs/.

    python docs/screenshots.py

Starts the service (as the tests do), runs a few cells with typical outputs in
headless Chromium (/usr/bin/chromium, driven by Playwright) and saves
``docs/notebook-desktop.png`` (1280x800) and ``docs/notebook-phone.png`` (390x844).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bench"))

from benchlib.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from benchlib.servers import Service  # noqa: E402
from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

CELLS = [
    "import sys, time\nprint(f'Python {sys.version.split()[0]}: hello from ipytwist')",
    "from tqdm import tqdm\nfor _ in tqdm(range(40), desc='training', ncols=70):\n"
    "    time.sleep(0.01)",
    "import matplotlib.pyplot as plt, numpy as np\n"
    "x = np.linspace(0, 4 * np.pi, 200)\n"
    "fig, ax = plt.subplots(figsize=(5, 1.9))\n"
    "ax.plot(x, np.sin(x), label='sin'); ax.plot(x, np.cos(x), label='cos')\n"
    "ax.legend(); plt.show()",
    "from IPython.display import Markdown\n"
    "Markdown('**Euler**: $e^{i\\\\pi} + 1 = 0$, and '\n"
    "         '$\\\\sum_{n=1}^\\\\infty 1/n^2 = \\\\pi^2/6$')",
    "{'kernel': 'shared', 'clients': ['browser', 'console', 'lab']}",
    "1 / 0",
]


def run(page: Page, code: str) -> None:
    page.locator("#editor .cm-content").click()
    page.keyboard.insert_text(code)
    page.keyboard.press("Shift+Enter")
    busy = re.compile(r"state-(queued|running)")
    expect(page.locator("#cells .cell").last).not_to_have_class(busy)


def main() -> None:
    base = tempfile.mkdtemp(prefix="ipytwist-shots-")
    svc = Service(base).start()
    try:
        kid = svc.start_kernel()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            ctx = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=svc.url)
            page = ctx.new_page()
            page.goto(f"/kernels/{kid}?token={svc.token}")
            expect(page.locator("#kernel-state")).to_have_attribute("data-state", "idle")
            for code in CELLS:
                run(page, code)
                expect(page.locator("#kernel-state")).to_have_attribute("data-state", "idle")
            expect(page.locator("#cells img")).to_have_count(1)
            page.locator("#editor .cm-content").click()
            page.keyboard.insert_text("np.lin")
            page.keyboard.press("Tab")
            expect(page.locator(".cm-tooltip-autocomplete li").first).to_be_visible()
            page.evaluate("document.fonts.ready")
            page.mouse.wheel(0, 10_000)
            page.screenshot(path=os.path.join(HERE, "notebook-desktop.png"))
            page.screenshot(path=os.path.join(base, "full.png"), full_page=True)
            print("full page:", os.path.join(base, "full.png"))
            phone = browser.new_context(
                viewport={"width": 390, "height": 844},
                device_scale_factor=2,
                is_mobile=True,
                has_touch=True,
                base_url=svc.url,
            )
            mobile = phone.new_page()
            mobile.goto(f"/kernels/{kid}?token={svc.token}")
            expect(mobile.locator("#cells .cell")).to_have_count(len(CELLS))
            mobile.evaluate("document.fonts.ready")
            mobile.locator("#cells .cell").nth(2).scroll_into_view_if_needed()
            mobile.evaluate("window.scrollBy(0, -60)")
            mobile.screenshot(path=os.path.join(HERE, "notebook-phone.png"))
            browser.close()
    finally:
        svc.stop()


if __name__ == "__main__":
    main()
