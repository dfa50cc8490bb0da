"""The web notebook page in a real browser (Debian's Chromium driven by Playwright)
against the real service: login, running cells, rich output, keys, completion, help,
interrupt and restart.  (tests/browser/conftest.py: the fixtures.)

Without /usr/bin/chromium (or the playwright package) these tests skip, except
under CI=true, where a missing browser fails them.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchlib.servers import Service
from playwright.sync_api import Browser, BrowserContext, Page, expect
from support.browser import last_cell, new_context, run, state

# -- login, the kernel list ---------------------------------------------------------------


def test_token_login_then_the_kernel_list_opens_a_notebook(
    browser: Browser, svc: Service, kernel_id: str, contexts: list[BrowserContext]
) -> None:
    ctx = new_context(browser, svc, contexts)
    page = ctx.new_page()
    page.goto("/")
    expect(page).to_have_url(f"{svc.url}/login?next=%2F")
    page.goto(f"/?token={svc.token}")
    expect(page).to_have_url(f"{svc.url}/")
    cookie = next(c for c in ctx.cookies() if c["name"] == "ipytwist-login")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    row = page.locator(f'tr[data-kernel-id="{kernel_id}"]')
    expect(row).to_contain_text("idle")
    row.get_by_role("link", name="Open").click()
    expect(page).to_have_url(f"{svc.url}/kernels/{kernel_id}")
    expect(page.locator("#kernel-state")).to_have_attribute("data-state", "idle")
    expect(page.locator("#editor .cm-content")).to_be_focused()
    # New starts a kernel and opens it (same-origin POST with the cookie).
    page.goto("/")
    page.get_by_role("button", name="New").click()
    page.wait_for_url(lambda url: "/kernels/" in url and kernel_id not in url)
    svc.delete_kernel(page.url.rsplit("/", 1)[1])


# -- running cells ------------------------------------------------------------------------


def test_a_cell_runs_and_shows_its_output(page: Page, svc: Service, kernel_id: str) -> None:
    run(page, "print(6*7*1000)")
    cell = last_cell(page)
    expect(cell.locator(".output-stream")).to_have_text("42000")
    expect(cell.locator(".prompt.in")).to_have_text("In [1]:")
    run(page, "6*7")
    expect(last_cell(page).locator(".output")).to_contain_text("Out[2]:")
    expect(last_cell(page).locator(".output")).to_contain_text("42")
    assert page.errors == []  # type: ignore[attr-defined]
    cells = svc.api("GET", f"/api/kernels/{kernel_id}/transcript").json()["cells"]
    assert [c["origin"] for c in cells if c["code"] == "print(6*7*1000)"] == ["page"]


def test_output_appears_while_the_cell_still_runs(page: Page) -> None:
    run(page, "import time\nfor i in range(5):\n    print(i, flush=True)\n    time.sleep(1)")
    running = page.locator("#cells .cell.state-running")
    expect(running.locator(".output-stream")).to_contain_text("0", timeout=4000)
    expect(running.locator(".prompt.in")).to_have_text("In [*]:")
    page.get_by_role("button", name="Interrupt").click()  # no need to wait 5 s
    expect(last_cell(page)).to_have_class(state("interrupted"))


def test_a_matplotlib_plot_is_a_png_image(page: Page) -> None:
    run(page, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()")
    img = last_cell(page).locator(".output img")
    expect(img).to_have_count(1, timeout=30_000)
    assert img.get_attribute("src").startswith("data:image/png;base64,iVBOR")
    width = img.evaluate("el => el.naturalWidth")
    assert width > 100


def test_rich_outputs_text_carriage_returns_and_clear_output(page: Page) -> None:
    run(
        page,
        "from IPython.display import HTML, Latex, Markdown, JSON, display, clear_output\n"
        "display(Markdown('**bold** and $x^2$'))\n"
        "display(HTML('<table class=\"t\"><tr><td>cell</td></tr></table>'))\n"
        "display(Latex(r'$\\frac{1}{2}$'))\n"
        "display(JSON({'a': [1, 2]}))\n"
        "import sys\n"
        "for i in range(0, 101, 25):\n"
        "    sys.stdout.write(f'\\rprogress {i}%')\n"
        "print()\n"
        "print('\\x1b[31mred\\x1b[0m')\n"
        "h = display('first', display_id=True)\n"
        "h.update('updated')\n",
    )
    cell = last_cell(page)
    expect(cell.locator(".output-markdown strong")).to_have_text("bold")
    expect(cell.locator(".output-markdown .katex")).to_have_count(1)
    expect(cell.locator(".output-html table.t td")).to_have_text("cell")
    expect(cell.locator(".output-latex .katex")).to_have_count(1)
    expect(cell.locator(".output-json")).to_contain_text('"a": [')
    expect(cell.locator(".output-stream").first).to_contain_text("progress 100%")
    assert "progress 75%" not in cell.locator(".output-stream").first.inner_text()
    expect(cell.locator(".ansi-red-fg")).to_have_text("red")
    expect(cell).to_contain_text("'updated'")
    assert "'first'" not in cell.locator(".outputs").inner_text()
    run(page, "print('gone')\nclear_output(wait=True)\nprint('kept')")
    expect(last_cell(page).locator(".outputs")).to_have_text("kept")


def test_input_asks_inline(page: Page) -> None:
    run(page, "name = input('Name? ')\nprint('Hello', name)")
    field = last_cell(page).get_by_role("textbox")
    expect(field).to_be_focused()
    field.fill("Ada")
    field.press("Enter")
    expect(last_cell(page)).to_contain_text("Hello Ada")
    expect(last_cell(page)).to_have_class(state("done"))


def test_keys_newline_indent_history_and_leaving_the_editor(page: Page) -> None:
    editor = page.locator("#editor .cm-content")
    run(page, "a = 1")
    run(page, "b = 2")
    editor.click()
    page.keyboard.type("if True:")
    page.keyboard.press("Enter")  # a newline, auto-indented; nothing runs
    page.keyboard.type("pass")
    expect(editor).to_have_text("if True:    pass")
    assert editor.evaluate("el => el.innerText").split("\n")[1] == "    pass"
    page.keyboard.press("Control+Home")
    page.keyboard.press("ArrowUp")
    expect(editor).to_have_text("b = 2")
    page.keyboard.press("ArrowUp")
    expect(editor).to_have_text("a = 1")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(editor).to_have_text("if True:    pass")  # the draft comes back
    expect(page.locator("#cells .cell")).to_have_count(2)
    # Escape then (Shift+)Tab leaves the editor (no keyboard trap); focus is visible.
    page.keyboard.press("Escape")
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("button", name="Clear transcript")).to_be_focused()
    assert page.evaluate("document.activeElement.matches(':focus-visible')")


# -- completion, help, interrupt --------------------------------------------------------------


def test_tab_completes_from_the_kernel(page: Page) -> None:
    run(page, "import collections")
    expect(last_cell(page)).to_have_class(state("done"))
    page.locator("#editor .cm-content").click()
    page.keyboard.insert_text("collections.Ordered")
    page.keyboard.press("Tab")
    # A unique match is inserted at once; several would be offered in a list.
    expect(page.locator("#input-cell")).to_contain_text("OrderedDict")
    page.keyboard.press("Control+a")
    page.keyboard.insert_text("collections.")
    page.keyboard.press("Tab")
    options = page.locator(".cm-tooltip-autocomplete li")
    expect(options.filter(has_text="OrderedDict")).to_have_count(1)
    page.keyboard.press("Escape")
    expect(options).to_have_count(0)


def test_question_mark_shows_help_in_the_pager(page: Page) -> None:
    run(page, "len?")
    pager = page.locator("#pager")
    expect(pager).to_be_visible()
    expect(pager).to_contain_text("Return the number of items in a container")
    page.keyboard.press("Escape")
    expect(pager).to_be_hidden()
    expect(page.locator("#editor .cm-content")).to_be_focused()


def test_interrupt_button_stops_a_long_sleep(page: Page) -> None:
    run(page, "import time; time.sleep(100)")
    expect(last_cell(page)).to_have_class(state("running"))
    expect(page.locator("#kernel-state")).to_have_attribute("data-state", "busy")
    page.get_by_role("button", name="Interrupt").click()
    expect(last_cell(page).locator(".traceback")).to_contain_text("KeyboardInterrupt")
    expect(last_cell(page)).to_have_class(state("interrupted"))
    expect(page.locator("#kernel-state")).to_have_attribute("data-state", "idle")


def test_restart_download_and_clear(page: Page) -> None:
    run(page, "x = 5\nprint('kept', x)")
    expect(last_cell(page)).to_have_class(state("done"))
    with page.expect_download() as download:
        page.get_by_role("link", name="Download .ipynb").click()
    notebook = json.loads(Path(download.value.path()).read_text())
    assert notebook["nbformat"] == 4
    assert notebook["cells"][0]["source"] == "x = 5\nprint('kept', x)"
    page.get_by_role("button", name="Restart").click()
    expect(page.locator("#banner")).to_contain_text("restarted")
    run(page, "x")
    expect(last_cell(page).locator(".traceback")).to_contain_text("NameError")
    expect(last_cell(page).locator(".prompt.in")).to_have_text("In [1]:")
    page.get_by_role("button", name="Clear transcript").click()
    expect(page.locator("#cells .cell")).to_have_count(0)
    page.reload()
    expect(page.locator("#kernel-state")).to_have_attribute("data-state", "idle")
    expect(page.locator("#cells .cell")).to_have_count(0)


#: Relative luminance contrast of each piece of text against the background under it.
CONTRASTS_JS = """
(root) => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!n.textContent.trim()) continue;
    const el = n.parentElement;
    const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    out.push([n.textContent.trim().slice(0, 20), ratio]);
  }
  return out;
}
"""


def test_a_traceback_reads_on_the_light_background(page: Page) -> None:
    """Every piece of a traceback's text has at least 4.5:1 contrast (WCAG AA) against
    the page's background: the kernel's colours are IPython's default scheme."""
    run(page, "def f(x):\n    return 1/x\nf(0)")
    error = last_cell(page).locator(".output-error")
    expect(error).to_contain_text("ZeroDivisionError")
    contrasts = error.evaluate(CONTRASTS_JS)
    assert contrasts and min(c for _, c in contrasts) >= 4.5, sorted(contrasts, key=lambda x: x[1])[
        :5
    ]
