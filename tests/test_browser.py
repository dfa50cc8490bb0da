"""The web notebook page in a real browser (Debian's Chromium driven by Playwright)
against the real service: login, running cells, live output from any client,
reconnection and reload, interrupt, completion, help, and a 100,000-line flood.

Without /usr/bin/chromium (or the playwright package) these tests skip, except
under CI=true, where a missing browser fails them.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from chromium import CHROMIUM, CHROMIUM_ARGS
from service_proc import WARM_POOL, Service, running_service, wait_for

TIMEOUT_MS = 20_000


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


try:
    from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        _unavailable("the playwright package is not installed (pip install '.[test]')")
    if not os.path.exists(CHROMIUM):
        _unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def svc(tmp_path_factory: Any, browser: Browser) -> Iterator[Service]:
    with running_service(tmp_path_factory, "browser", *WARM_POOL) as s:
        yield s


@pytest.fixture
def kernel_id(svc: Service) -> Iterator[str]:
    kid = svc.start_kernel()
    yield kid
    svc.delete_kernel(kid)


@pytest.fixture
def contexts(browser: Browser, svc: Service) -> Iterator[list[BrowserContext]]:
    """Browser contexts (separate cookie jars, like separate browsers); closed after."""
    opened: list[BrowserContext] = []
    yield opened
    for c in opened:
        c.close()


def new_context(browser: Browser, svc: Service, contexts: list[BrowserContext], **kw: Any) -> Any:
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


@pytest.fixture
def page(browser: Browser, svc: Service, kernel_id: str, contexts: list[BrowserContext]) -> Page:
    return open_notebook(new_context(browser, svc, contexts), svc, kernel_id)


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


# -- many windows, reloads, other clients -----------------------------------------------------


def test_a_second_window_gets_the_transcript_then_live_output(
    browser: Browser, svc: Service, kernel_id: str, page: Page, contexts: list[BrowserContext]
) -> None:
    run(page, "print('from the first window')")
    expect(last_cell(page)).to_contain_text("from the first window")
    other = open_notebook(new_context(browser, svc, contexts), svc, kernel_id)
    expect(last_cell(other)).to_contain_text("from the first window")
    expect(last_cell(other).locator(".prompt.in")).to_have_text("In [1]:")
    run(page, "import time\nfor i in range(3):\n    print('live', i, flush=True); time.sleep(0.3)")
    expect(last_cell(other).locator(".output-stream")).to_have_text("live 0\nlive 1\nlive 2")
    expect(other.locator("#cells .cell")).to_have_count(2)
    expect(other.locator("#viewers")).to_have_text("2 windows", timeout=10_000)


def test_a_long_output_from_the_transcript_counts_the_lines_it_left_out(
    browser: Browser, svc: Service, kernel_id: str, page: Page, contexts: list[BrowserContext]
) -> None:
    """The service keeps the first and last 1,000 lines of a 3,000-line output with one
    "... [1000 lines hidden] ..." line; a window opened later says 2,000 earlier lines
    are not shown, as the window that ran it does."""
    run(page, "for i in range(3000): print('line', i)")
    expect(last_cell(page)).to_have_class(state("done"), timeout=20_000)
    expect(last_cell(page).locator(".truncated")).to_contain_text("2,000 earlier lines not shown")
    other = open_notebook(new_context(browser, svc, contexts), svc, kernel_id)
    bar = last_cell(other).locator(".truncated")
    expect(bar).to_contain_text("2,000 earlier lines not shown")
    last_cell(other).get_by_role("button", name="Show all").click()
    expect(bar).to_contain_text("the 1,000 the service left out in the middle")


def test_a_long_output_in_two_frames_keeps_exactly_the_newest_1000_lines(
    page: Page, tmp_path: Path
) -> None:
    """3,000 lines reach the page in two frames, 2,611 then 389, as on a loaded machine:
    the page still shows exactly the newest 1,000 (the older chunk is cut, its colour kept)
    and says 2,000 are not shown. It kept both chunks, 1,389 lines, and said 1,611."""
    go = tmp_path / "go"
    code = (
        "import os, sys, time\nprint('\\x1b[31m', end='')\n"
        "for i in range(2611): print('line', i)\nsys.stdout.flush()\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.05)\n"
        "for i in range(2611, 3000): print('line', i)"
    )
    run(page, code)
    cell = last_cell(page)
    stream = cell.locator(".output-stream pre")
    expect(stream).to_contain_text("line 2610")
    go.touch()
    expect(cell).to_have_class(state("done"))
    expect(cell.locator(".truncated")).to_contain_text("2,000 earlier lines not shown")
    assert stream.text_content() == "".join(f"line {i}\n" for i in range(2000, 3000))
    expect(stream.locator(".ansi-red-fg").first).to_contain_text("line 2000\nline 2001")


def test_a_reload_keeps_the_transcript(page: Page) -> None:
    run(page, "print('before the reload')")
    expect(last_cell(page)).to_contain_text("before the reload")
    page.reload()
    expect(page.locator("#kernel-state")).to_have_attribute("data-state", "idle")
    expect(page.locator("#cells .cell")).to_have_count(1)
    expect(last_cell(page)).to_contain_text("before the reload")
    expect(last_cell(page).locator(".prompt.in")).to_have_text("In [1]:")


def test_output_printed_while_no_window_is_open_is_shown_later(
    browser: Browser, svc: Service, kernel_id: str, contexts: list[BrowserContext]
) -> None:
    ctx = new_context(browser, svc, contexts)
    page = open_notebook(ctx, svc, kernel_id)
    run(page, "import time\nfor i in range(8):\n    print('tick', i, flush=True); time.sleep(0.25)")
    expect(last_cell(page)).to_contain_text("tick 0")
    ctx.close()  # every window of the kernel is gone mid-cell

    def printed_meanwhile() -> bool:
        r = svc.api("GET", f"/api/kernels/{kernel_id}/transcript")
        return "tick 4" in str(r.json()["cells"][-1]["outputs"])

    wait_for(printed_meanwhile, 20, "output printed with no window open")
    later = open_notebook(new_context(browser, svc, contexts), svc, kernel_id)
    stream = last_cell(later).locator(".output-stream")
    expect(stream).to_have_text("\n".join(f"tick {i}" for i in range(8)))
    expect(last_cell(later)).to_have_class(state("done"))


def test_a_cell_run_by_a_zmq_client_appears_on_the_page(
    svc: Service, kernel_id: str, page: Page
) -> None:
    from jupyter_client import BlockingKernelClient

    kc = BlockingKernelClient(connection_file=svc.connection_file(kernel_id))
    kc.load_connection_file()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=20)
        reply = kc.execute_interactive("print('hello from a console')", timeout=20)
        assert reply["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
    cell = last_cell(page)
    expect(cell.locator("pre.code")).to_have_text("print('hello from a console')")
    expect(cell.locator(".output-stream")).to_have_text("hello from a console")
    expect(cell.locator(".prompt.in")).to_have_text("In [1]:")


def test_a_dropped_websocket_reconnects_without_gap_or_duplicate(
    browser: Browser, svc: Service, kernel_id: str, contexts: list[BrowserContext]
) -> None:
    """The kernel WebSocket drops mid-cell: the page reconnects with the same session_id
    from the last message it saw, and shows every line once."""
    page = new_context(browser, svc, contexts).new_page()
    sockets: list[Any] = []

    def through(ws: Any) -> None:
        server = ws.connect_to_server()
        sockets.append((ws, server))

    page.route_web_socket(re.compile(r"/channels\?"), through)
    page.goto(f"/kernels/{kernel_id}?token={svc.token}")
    expect(page.locator("#kernel-state")).to_have_attribute("data-state", "idle")
    run(page, "import time\nfor i in range(12):\n    print('n', i, flush=True); time.sleep(0.15)")
    expect(last_cell(page)).to_contain_text("n 1")
    first, server = sockets[0]
    server.close()
    first.close(code=4001, reason="dropped by the test")
    expect(last_cell(page)).to_have_class(state("done"))
    expect(last_cell(page).locator(".output-stream")).to_have_text(
        "\n".join(f"n {i}" for i in range(12))
    )
    assert len(sockets) >= 2
    params = [parse_qs(urlsplit(ws.url).query) for ws, _ in sockets]
    assert params[1]["session_id"] == params[0]["session_id"]
    assert params[1]["since_msg_id"][0]


# -- floods -------------------------------------------------------------------------------------


def test_a_100000_line_output_leaves_the_page_responsive(page: Page) -> None:
    run(page, "for i in range(100000):\n    print(i)")
    cell = last_cell(page)
    latencies = []
    deadline = time.monotonic() + 60
    while "state-running" in (cell.get_attribute("class") or "") or not latencies:
        t0 = time.perf_counter()
        page.evaluate("1")
        latencies.append(time.perf_counter() - t0)
        assert time.monotonic() < deadline, "the flood did not end within 60 s"
    expect(cell).to_have_class(state("done"), timeout=60_000)
    stream = cell.locator(".output-stream pre")
    expect(stream).to_contain_text("99999")
    # Only the newest lines are in the page; the rest is one click away.
    shown = stream.evaluate("el => el.textContent.split('\\n').length")
    assert shown <= 2100, shown
    expect(cell.locator(".truncated")).to_contain_text("earlier lines not shown")
    # Typing still works at once, and the page answers promptly.
    page.locator("#editor .cm-content").click()
    page.keyboard.type("still typing")
    expect(page.locator("#editor .cm-content")).to_have_text("still typing")
    t0 = time.perf_counter()
    page.evaluate("1")
    assert time.perf_counter() - t0 < 0.5
    assert max(latencies) < 2.0, latencies
    # Show all: every line the page keeps.
    cell.get_by_role("button", name="Show all").click()
    expect(cell.locator(".truncated")).to_contain_text("All 100,000 lines are shown")
    assert stream.evaluate("el => el.textContent.startsWith('0\\n1\\n2\\n')")
    assert stream.evaluate("el => el.textContent.split('\\n').length") > 100_000
    # The whole output, from the service, one link away (the page's own login cookie).
    link = cell.get_by_role("link", name="Download the whole output")
    whole = page.request.get(link.get_attribute("href") or "")
    assert whole.ok, whole.status
    assert whole.text() == "".join(f"{i}\n" for i in range(100_000))
