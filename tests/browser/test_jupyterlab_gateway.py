"""JupyterLab 4 through ``--gateway-url`` at ipytwist, in Debian's Chromium: a slider
renders and a drag sets the kernel's value, ``%matplotlib widget`` shows ipympl's
figure widget, tqdm.auto shows a progress-bar widget, and the debugger panel stops at
a breakpoint in a cell and shows a local variable.

One service, one JupyterLab (its kernels at the service) and one notebook page for the
module; each test runs its own cells of that notebook.

jupyter_server's gateway client reads every frame from the gateway as UTF-8 text, so
binary comm buffers never reach JupyterLab through ``--gateway-url`` (ipytwist sends
such messages to it as text frames without their buffers): ipympl's figure widget
renders (label, canvas, toolbar) and the connection stays up, but the image it draws
comes in a buffer: the figure is blank until the page is reloaded, when ipympl draws
the image the kernel's state of the figure holds.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from benchlib.servers import WARM_POOL, WARN_ONLY, JupyterServer, Service
from browser_probe import SELECTORS
from browser_targets import LAB_ARGS
from playwright.sync_api import Browser, Locator, Page, expect
from support.browser import TIMEOUT_MS
from support.service import service_fixture

svc = service_fixture("jupyterlab", *WARM_POOL)

NOTEBOOK = "widgets.ipynb"
SLIDER = "import ipywidgets as w\ns = w.IntSlider(5)\ns"
SLIDER_VALUE = "print(s.value)"
FIGURE = (
    "%matplotlib widget\nimport matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots()\nax.plot([1, 2, 3], [1, 4, 9]);"
)
AFTER_FIGURE = "print('after the figure')"
PROGRESS = "from tqdm.auto import tqdm\nfor i in tqdm(range(50)):\n    pass"
#: The breakpoint goes on line 3 (``return b``): ``b`` is set, a local of ``f``.
DEBUGGED = "def f(a):\n    b = a * 3\n    return b\n\nz = f(14)\nprint(z)"
CELLS = [SLIDER, SLIDER_VALUE, FIGURE, AFTER_FIGURE, PROGRESS, DEBUGGED]
STDOUT = '[data-mime-type="application/vnd.jupyter.stdout"]'
STDERR = '[data-mime-type="application/vnd.jupyter.stderr"]'
#: True once ipympl's figure canvas has a painted pixel.
PAINTED = """() => {
  const c = document.querySelector(".jupyter-matplotlib-canvas-div canvas");
  if (!c || !c.width || !c.height) return false;
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < d.length; i += 4) if (d[i]) return true;
  return false;
}"""


def _notebook() -> dict[str, Any]:
    cells = [
        {
            "cell_type": "code",
            "id": secrets.token_hex(4),
            "source": source,
            "metadata": {},
            "outputs": [],
            "execution_count": None,
        }
        for source in CELLS
    ]
    spec = {"name": "ipytwist", "display_name": "Python 3 (ipytwist)", "language": "python"}
    metadata = {"kernelspec": spec, "language_info": {"name": "python"}}
    return {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture(scope="module")
def lab(svc: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """JupyterLab on loopback with its own token, its kernels at the service."""
    gateway = (f"--gateway-url={svc.url}", f"--GatewayClient.auth_token={svc.token}")
    server = JupyterServer(
        str(tmp_path_factory.mktemp("jupyterlab")),
        *LAB_ARGS,
        WARN_ONLY,
        *gateway,
        app="jupyterlab",
    )
    try:
        server.start()
        with open(os.path.join(server.root_dir, NOTEBOOK), "w", encoding="utf-8") as f:
            json.dump(_notebook(), f)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def notebook(browser: Browser, lab: JupyterServer) -> Iterator[Page]:
    """The notebook open in JupyterLab, its ipytwist kernel connected and idle."""
    ctx = browser.new_context(base_url=lab.url, viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(TIMEOUT_MS)
    page = ctx.new_page()
    page.goto(f"/lab/tree/{NOTEBOOK}?reset&token={lab.token}")
    page.wait_for_function(SELECTORS["jupyterlab"].idle, timeout=60_000)
    yield page
    ctx.close()


def run_cell(page: Page, source: str) -> Locator:
    """Run the notebook's cell of ``source`` (Shift+Enter in its editor); returns the
    cell once its prompt shows an execution count."""
    cell = page.locator(".jp-Notebook .jp-CodeCell").nth(CELLS.index(source))
    cell.locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    expect(cell.locator(".jp-InputArea-prompt")).to_have_text(re.compile(r"^\[\d+\]:$"))
    return cell


def test_a_slider_renders_and_a_drag_sets_the_value_in_the_kernel(notebook: Page) -> None:
    cell = run_cell(notebook, SLIDER)
    slider = cell.locator(".widget-slider")
    readout = slider.locator(".widget-readout")
    expect(readout).to_have_text("5")
    track = slider.locator(".noUi-target")
    box = track.bounding_box()
    assert box is not None
    slider.locator(".noUi-handle").hover()
    notebook.mouse.down()
    notebook.mouse.move(box["x"] + box["width"] + 50, box["y"] + box["height"] / 2, steps=5)
    notebook.mouse.up()
    expect(readout).to_have_text("100")
    later = run_cell(notebook, SLIDER_VALUE)
    expect(later.locator(STDOUT)).to_have_text("100")


def test_matplotlib_widget_shows_ipympls_figure_and_the_connection_stays_up(
    notebook: Page,
) -> None:
    cell = run_cell(notebook, FIGURE)
    figure = cell.locator(".jupyter-matplotlib-figure")
    expect(figure.locator(".jupyter-matplotlib-header")).to_have_text("Figure 1")
    # The canvas, sized by the figure's size (a JSON comm message), and its overlay.
    canvases = figure.locator(".jupyter-matplotlib-canvas-div canvas")
    expect(canvases).to_have_count(2)
    expect(canvases.first).to_have_attribute("width", "640")
    expect(canvases.first).to_have_attribute("height", "480")
    toolbar = figure.locator(".jupyter-matplotlib-toolbar")
    expect(toolbar.locator("button")).to_have_count(6)
    expect(toolbar.locator('button[title="Download plot"]')).to_be_attached()
    figure.hover()  # the toolbar fades in over the figure
    expect(toolbar).to_be_visible()
    later = run_cell(notebook, AFTER_FIGURE)
    expect(later.locator(STDOUT)).to_have_text("after the figure")
    # The image came in a binary buffer, which the gateway client cannot pass on.  The
    # kernel's state of the figure has it as ``_data_url`` too, which ipympl draws when
    # its model is made: on a reload, from the state the kernel sends.
    notebook.keyboard.press("Control+s")
    tab = notebook.locator(".lm-TabBar-tab.jp-mod-current")
    expect(tab).not_to_have_class(re.compile(r"\bjp-mod-dirty\b"))
    notebook.reload()
    notebook.wait_for_function(SELECTORS["jupyterlab"].idle, timeout=60_000)
    notebook.wait_for_function(PAINTED, polling=100, timeout=TIMEOUT_MS)


def test_tqdm_auto_shows_a_progress_bar_widget_and_no_text_bar(notebook: Page) -> None:
    cell = run_cell(notebook, PROGRESS)
    bar = cell.locator(".widget-hprogress .progress-bar")
    expect(bar).to_have_attribute("style", re.compile(r"\bwidth: 100%"))
    texts = cell.locator(".widget-html-content")
    expect(texts.first).to_have_text("100%")
    expect(texts.nth(1)).to_contain_text("50/50")
    expect(cell.locator(STDERR)).to_have_count(0)


def test_the_debugger_stops_at_a_breakpoint_and_shows_a_local(notebook: Page) -> None:
    bug = notebook.locator(".jp-DebuggerBugButton:visible")
    expect(bug).to_have_attribute("aria-disabled", "false")
    bug.click()
    expect(bug).to_have_attribute("aria-pressed", "true")
    cell = notebook.locator(".jp-Notebook .jp-CodeCell").nth(CELLS.index(DEBUGGED))
    # Line 3's place in the breakpoint gutter (the gutter's first element is a spacer).
    cell.locator(".cm-gutter.cm-breakpoint-gutter .cm-gutterElement").nth(3).click()
    listed = notebook.locator(".jp-DebuggerBreakpoint")
    expect(listed.locator(".jp-DebuggerBreakpoint-line")).to_have_text("3")
    cell.locator(".cm-content").click()
    notebook.keyboard.press("Shift+Enter")
    expect(cell.locator(".jp-InputArea-prompt")).to_have_text("[*]:")
    name = notebook.locator(".jp-DebuggerVariables-name", has_text=re.compile(r"^b$"))
    local = notebook.locator(".jp-DebuggerVariables-body jp-tree-item").filter(has=name)
    expect(local.locator(".jp-DebuggerVariables-detail")).to_have_text("42")
    notebook.locator('jp-button[data-command="debugger:continue"]').click()
    expect(cell.locator(STDOUT)).to_have_text("42")
    expect(cell.locator(".jp-InputArea-prompt")).to_have_text(re.compile(r"^\[\d+\]:$"))
    bug.click()
    expect(bug).to_have_attribute("aria-pressed", "false")
