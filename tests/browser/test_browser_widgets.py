"""Widgets on the notebook page: an ipywidgets slider renders and drives the kernel, a
second window mirrors a drag, a window opened afterwards shows the current value; the
widget code loads only when a widget appears, runs under the page's policy (no eval), and
a view whose model never comes shows its text.

The slider tests need the kernel's comms (comm_open, comm_msg, comm_close both ways), and
the later window's the transcript's widget state: without them the view shows its
text/plain fallback. The bundle's own tests (a widget state drawn, a drag sent as
comm_msg, the Output widget, ipympl) give it a fake socket and need neither.
"""

from __future__ import annotations

import re
from typing import Any

from benchlib.servers import Service
from playwright.sync_api import Browser, BrowserContext, Page, expect
from support.browser import last_cell, new_context, open_notebook, run, state

SLIDER = "import ipywidgets as w\ns = w.IntSlider(5, min=0, max=100)\ns"
VIEW_MIME = "application/vnd.jupyter.widget-view+json"
#: How long the page waits for a view's model (MODEL_WAIT_MS in frontend/src/widgets/host.ts).
MODEL_WAIT_S = 5


def _watch(page: Page) -> list[str]:
    """Console errors and requests for the widget code, as they happen."""
    seen: list[str] = []
    page.on("console", lambda m: seen.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("request", lambda r: seen.append(f"request: {r.url}") if "widgets." in r.url else None)
    return seen


def _slider(page: Page) -> Any:
    return page.locator("#cells .widget-slider").first


def _readout(page: Page) -> Any:
    return page.locator("#cells .widget-readout").first


def _drag_to_the_end(page: Page) -> None:
    handle = _slider(page).locator(".noUi-handle").first
    track = _slider(page).locator(".noUi-target").first
    box = track.bounding_box()
    assert box is not None
    handle.hover()
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] + 50, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()


def _kernel_says(page: Page, code: str, text: str) -> None:
    run(page, code)
    cell = last_cell(page)
    expect(cell).to_have_class(state("done"))
    expect(cell.locator(".output-stream")).to_have_text(text)


def test_no_widget_no_widget_code(page: Page) -> None:
    seen = _watch(page)
    run(page, "print('plain')")
    expect(last_cell(page)).to_contain_text("plain")
    page.reload()
    expect(last_cell(page)).to_contain_text("plain")
    assert not [s for s in seen if s.startswith("request:")], seen
    assert page.evaluate("() => document.querySelector('script[src*=\"widgets.js\"]')") is None


def _after_the_model_wait(page: Page, locator: Any, text: str) -> None:
    """``locator`` shows ``text`` once the page's MODEL_WAIT_MS (5 s) for a widget model
    is over: the page's clock (installed before it loaded, flowing on its own too) is
    moved on 2 s at a time (less than any other wait of the page: nothing else times
    out), so the wait is not spent in real time."""
    for _ in range(MODEL_WAIT_S // 2 + 3):
        page.clock.fast_forward(2000)
        try:
            expect(locator).to_have_text(text, timeout=300)
            return
        except AssertionError:
            continue
    expect(locator).to_have_text(text, timeout=15_000)


def test_a_view_whose_model_never_comes_shows_its_text(
    browser: Browser, svc: Service, kernel_id: str, contexts: list[BrowserContext]
) -> None:
    """The widget code loads and runs under the page's policy (scripts from the origin
    only, no eval): a placeholder, then, once the page gave up waiting for the model,
    the output's text/plain."""
    ctx = new_context(browser, svc, contexts)
    ctx.clock.install()
    page = open_notebook(ctx, svc, kernel_id)
    seen = _watch(page)
    bundle = {VIEW_MIME: {"model_id": "nobody", "version_major": 2, "version_minor": 0}}
    bundle["text/plain"] = "no such widget"  # type: ignore[assignment]
    run(page, f"from IPython.display import display\ndisplay({bundle!r}, raw=True)")
    cell = last_cell(page)
    expect(cell.locator(".widget-loading")).to_have_text("widget loading…")
    _after_the_model_wait(page, cell.locator(".output-text"), "no such widget")
    assert any(s.startswith("request:") and "widgets.js" in s for s in seen), seen
    assert not [s for s in seen if s.startswith("console:")], seen
    assert not page.errors  # type: ignore[attr-defined]


def test_a_slider_renders_and_drives_the_kernel(page: Page) -> None:
    seen = _watch(page)
    run(page, SLIDER)
    expect(_readout(page)).to_have_text("5")
    _drag_to_the_end(page)
    expect(_readout(page)).to_have_text("100")
    _kernel_says(page, "print(s.value)", "100")
    run(page, "s.value = 42")
    expect(_readout(page)).to_have_text("42")
    assert not [s for s in seen if s.startswith("console:")], seen


def test_a_second_window_mirrors_a_drag(
    browser: Browser, svc: Service, kernel_id: str, page: Page, contexts: list[BrowserContext]
) -> None:
    other = open_notebook(new_context(browser, svc, contexts), svc, kernel_id)
    run(page, SLIDER)
    expect(_readout(page)).to_have_text("5")
    expect(_readout(other)).to_have_text("5")
    _drag_to_the_end(page)
    expect(_readout(other)).to_have_text("100")
    run(other, "s.value = 3")
    expect(_readout(page)).to_have_text("3")


def test_a_window_opened_later_and_a_reload_show_the_current_value(
    browser: Browser, svc: Service, kernel_id: str, page: Page, contexts: list[BrowserContext]
) -> None:
    """Needs the transcript's widget state (GET .../transcript carries "widgets")."""
    run(page, SLIDER)
    expect(_readout(page)).to_have_text("5")
    _drag_to_the_end(page)
    expect(_readout(page)).to_have_text("100")
    later = open_notebook(new_context(browser, svc, contexts), svc, kernel_id)
    expect(_readout(later)).to_have_text("100")
    page.reload()
    expect(_readout(page)).to_have_text("100")
    _kernel_says(later, "print(s.value)", "100")


_DRAW_FROM_STATE = """async ([models, shown]) => {
  const sent = [];
  let runtime = null;
  const link = {
    send(channel, type, content, metadata, buffers) {
      const id = `out${sent.length}`;
      sent.push({ channel, type, content });
      const reply = (channel, msg_type, content) => runtime.handle({
        channel, header: { msg_id: `re-${id}-${msg_type}`, msg_type },
        parent_header: { msg_id: id }, metadata: {}, buffers: [], content,
      });
      const comms = Object.fromEntries(Object.keys(models).map(
        (k) => [k, { target_name: "jupyter.widget" }]));
      setTimeout(() => {  // as the kernel answers: busy, the reply, idle
        reply("iopub", "status", { execution_state: "busy" });
        const ok = { status: "ok", comms };
        if (type === "comm_info_request") reply("shell", "comm_info_reply", ok);
        reply("iopub", "status", { execution_state: "idle" });
      }, 20);
      return id;
    },
    drawHtml: (html) => {
      const el = document.createElement("div");
      el.className = "html-drawn-by-the-page";
      el.textContent = html;
      return el;
    },
    drawMime: (data) => {
      const el = document.createElement("div");
      el.className = "drawn-by-the-page";
      el.textContent = JSON.stringify(data);
      return el;
    },
  };
  runtime = window.ipytwistWidgets.start(link);
  await runtime.setState({ version_major: 2, version_minor: 0, state: models });
  const el = document.createElement("div");
  el.id = "drawn";
  document.getElementById("cells").append(el);
  window.sentByWidgets = sent;
  window.widgetRuntime = runtime;
  return await runtime.render(shown, el, 1000);
}"""

CONTROLS = {"model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0"}
OUTPUT = {"model_module": "@jupyter-widgets/output", "model_module_version": "1.0.0"}


def _load_bundle(page: Page) -> None:
    page.add_style_tag(url="/static/widgets.css")
    page.add_script_tag(url="/static/widgets.js")


def test_the_widget_code_draws_a_state_and_sends_a_drag_as_comm_msg(page: Page) -> None:
    """Without the kernel: the bundle, under the page's policy, creates a slider from a
    widget-state document (its comm live, as comm_info_reply says), draws it, and a drag
    sends the new value on shell as the comm's update; the last update sent is the value
    shown (updates wait for the idle status of the one before, as on JupyterLab)."""
    seen = _watch(page)
    _load_bundle(page)
    slider = {**CONTROLS, "model_name": "IntSliderModel", "state": {"value": 7, "max": 10}}
    assert page.evaluate(_DRAW_FROM_STATE, [{"S": slider}, "S"]) is True
    drawn = page.locator("#drawn")
    expect(drawn.locator(".widget-readout")).to_have_text("7")
    handle = drawn.locator(".noUi-handle").first
    box = drawn.locator(".noUi-target").first.bounding_box()
    assert box is not None
    handle.hover()
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] + 50, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    expect(drawn.locator(".widget-readout")).to_have_text("10")
    sent = page.evaluate("() => window.sentByWidgets")
    updates = [m for m in sent if m["type"] == "comm_msg"]
    assert updates and all(m["channel"] == "shell" for m in updates), sent
    assert updates[-1]["content"]["comm_id"] == "S"
    assert updates[-1]["content"]["data"]["method"] == "update"
    assert updates[-1]["content"]["data"]["state"] == {"value": 10}
    assert not [s for s in seen if s.startswith("console:")], seen


_CAPTURED = """() => {
  const msg = (type, content, parent) => ({
    channel: "iopub", header: { msg_id: `k-${type}`, msg_type: type },
    parent_header: { msg_id: parent }, metadata: {}, buffers: [], content,
  });
  const html = { "text/html": "<b>bold</b>", "text/plain": "bold" };
  return [
    window.widgetRuntime.handle(msg("display_data", { data: html, metadata: {} }, "run1")),
    window.widgetRuntime.handle(msg("status", { execution_state: "idle" }, "run1")),
    window.widgetRuntime.handle(msg("stream", { name: "stdout", text: "x" }, "run2")),
  ];
}"""


def test_an_output_widget_takes_its_requests_outputs_and_the_page_draws_them(
    page: Page,
) -> None:
    """An Output widget whose msg_id names a request takes that request's outputs (the
    cell does not show them; other requests' outputs and statuses are not its), draws
    them with the page's own renderer (sanitised, isolated), and tells the kernel."""
    seen = _watch(page)
    _load_bundle(page)
    out = {**OUTPUT, "model_name": "OutputModel", "state": {"msg_id": "run1", "outputs": []}}
    assert page.evaluate(_DRAW_FROM_STATE, [{"O": out}, "O"]) is True
    assert page.evaluate(_CAPTURED) == [True, False, False]
    drawn = page.locator("#drawn .drawn-by-the-page")
    expect(drawn).to_have_count(1)
    assert '"text/html":"<b>bold</b>"' in (drawn.text_content() or "")
    sent = page.evaluate("() => window.sentByWidgets")
    updates = [m["content"]["data"] for m in sent if m["type"] == "comm_msg"]
    assert updates and updates[-1]["method"] == "update", sent
    assert updates[-1]["state"]["outputs"][0]["output_type"] == "display_data"
    assert not [s for s in seen if s.startswith("console:")], seen


def test_an_ipympl_figure_draws_and_asks_the_kernel_for_its_image(page: Page) -> None:
    """ipympl's frontend is in the bundle: a figure's canvas draws from a widget state,
    and tells the kernel it is ready (the kernel then sends the image)."""
    seen = _watch(page)
    _load_bundle(page)
    mpl = {"model_module": "jupyter-matplotlib", "model_module_version": "^0.12"}
    toolbar = {**mpl, "model_name": "ToolbarModel", "state": {"toolitems": []}}
    canvas = {**mpl, "model_name": "MPLCanvasModel"}
    canvas["state"] = {"toolbar": "IPY_MODEL_T", "_width": 320, "_height": 240}
    assert page.evaluate(_DRAW_FROM_STATE, [{"T": toolbar, "C": canvas}, "C"]) is True
    expect(page.locator("#drawn canvas").first).to_be_attached()
    sent = page.evaluate("() => window.sentByWidgets")
    custom = [m["content"] for m in sent if m["type"] == "comm_msg"]
    assert {"comm_id": "C", "data": {"method": "custom", "content": {"type": "initialized"}}} in (
        custom
    ), sent
    assert not [s for s in seen if s.startswith("console:")], seen


def test_the_html_widgets_draw_their_value_as_the_page_draws_html(page: Page) -> None:
    """The HTML and HTMLMath widgets hand their value to the page's HTML drawing
    (sanitised, in a shadow root), never to the page's innerHTML."""
    seen = _watch(page)
    _load_bundle(page)
    value = "<b>bold</b><img src=x>"
    html = {**CONTROLS, "model_name": "HTMLModel", "state": {"value": value}}
    math = {**CONTROLS, "model_name": "HTMLMathModel", "state": {"value": value}}
    box = {**CONTROLS, "model_name": "HBoxModel"}
    box["state"] = {"children": ["IPY_MODEL_H", "IPY_MODEL_M"]}
    assert page.evaluate(_DRAW_FROM_STATE, [{"H": html, "M": math, "B": box}, "B"]) is True
    drawn = page.locator("#drawn .html-drawn-by-the-page")
    expect(drawn).to_have_count(2)
    expect(drawn.first).to_have_text(value)
    assert page.evaluate("() => document.querySelectorAll('#drawn b, #drawn img').length") == 0
    page.evaluate(
        "() => { window.widgetRuntime.handle({ channel: 'iopub', "
        "header: { msg_id: 'u', msg_type: 'comm_msg' }, parent_header: {}, "
        "metadata: {}, buffers: [], content: { comm_id: 'H', data: { method: "
        "'update', state: { value: '<i>new</i>' }, buffer_paths: [] } } }) }"
    )
    expect(drawn.first).to_have_text("<i>new</i>")
    assert not [s for s in seen if s.startswith("console:")], seen


_DRAWN_PIXELS = """() => Array.from(document.querySelectorAll('#cells canvas')).some((c) => {
  if (!c.width || !c.height) return false;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] && (d[i] < 200 || d[i + 1] < 200 || d[i + 2] < 200)) return true;
  }
  return false;
})"""


def test_matplotlib_widget_draws_an_interactive_figure(page: Page) -> None:
    """%matplotlib widget: ipympl's canvas, its image sent by the kernel as a binary
    buffer, drawn (some dark pixels: the axes and the line)."""
    run(page, "%matplotlib widget\nimport matplotlib.pyplot as plt\nplt.plot([1, 3, 2]);")
    expect(page.locator("#cells .jupyter-matplotlib-figure").first).to_be_visible()
    page.wait_for_function(_DRAWN_PIXELS)
    assert not page.errors  # type: ignore[attr-defined]


def test_tqdm_auto_shows_a_progress_bar_widget(page: Page) -> None:
    run(page, "from tqdm.auto import tqdm\nfor i in tqdm(range(3), desc='work'): pass")
    cell = last_cell(page)
    expect(cell.locator(".widget-hprogress")).to_be_visible()
    expect(cell.get_by_text(re.compile(r"3/3"))).to_be_visible()  # in its shadow root
    expect(cell.locator(".output-stream")).to_have_count(0)


def test_an_output_widget_captures_its_print(page: Page) -> None:
    run(page, "import ipywidgets as w\nout = w.Output()\ndisplay(out)\nwith out: print('inside')")
    cell = last_cell(page)
    expect(cell).to_have_class(state("done"))
    expect(cell.locator(".widget-output")).to_contain_text("inside")
    expect(cell.locator(".output-stream")).to_have_count(0)
    # From the transcript: the print once, in the widget (it was the cell's as well).
    page.reload()
    cell = last_cell(page)
    expect(cell.locator(".widget-output")).to_have_text(re.compile(r"^\s*inside\s*$"))
    expect(cell.locator(".output-stream")).to_have_count(0)


def test_a_restart_takes_the_widgets_away(page: Page) -> None:
    run(page, SLIDER)
    expect(_readout(page)).to_have_text("5")
    page.locator("#restart").click()
    expect(page.locator("#kernel-state")).to_have_attribute("data-state", "idle")
    expect(page.locator("#cells .widget-slider")).to_have_count(0)
