"""HTML outputs on the notebook page, in Chromium: what a trusted notebook's user expects
still works (tables and their styles, images, links, Markdown and LaTeX), and what could
break out of an output is gone or stays inside it (docs/internals.md, "Outputs on the
page"). The hostile outputs themselves, live and from the transcript, are
tests/reliability/test_hostile_outputs.py.
"""

from __future__ import annotations

from typing import Any

from benchlib.servers import Service
from benchlib.wsclient import WSClient
from playwright.sync_api import Page, Route, expect
from support.browser import last_cell

# As pandas writes a DataFrame (`_repr_html_`) and a Styler (`.to_html()`).
DATAFRAME = """<div>
<style scoped>
    .dataframe tbody tr th { vertical-align: top; }
    .dataframe thead th { text-align: right; }
</style>
<table border="1" class="dataframe">
  <thead><tr style="text-align: right;"><th></th><th>a</th></tr></thead>
  <tbody><tr><th>0</th><td>1</td></tr></tbody>
</table>
</div>"""
STYLER = """<style type="text/css">
#T_c0ffee_row0_col0 { background-color: #ff0000; color: #ffffff; }
</style>
<table id="T_c0ffee">
  <thead><tr><th class="blank level0" >&nbsp;</th>
  <th class="col_heading level0 col0" >a</th></tr></thead>
  <tbody><tr><th class="row_heading level0 row0" >0</th>
  <td id="T_c0ffee_row0_col0" class="data row0 col0" >1</td></tr></tbody>
</table>"""
PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
OTHER_SITE = "http://example.invalid"


def show(svc: Service, kid: str, clients: list[Any], *outputs: tuple[str, str]) -> None:
    """Display ``outputs`` ((mime, source) each) from another client, in one cell."""
    ws = WSClient.connect(svc, kid)
    clients.append(ws)
    code = "\n".join(f"display({{{mime!r}: {src!r}}}, raw=True)" for mime, src in outputs)
    reply, _ = ws.execute(code)
    assert reply["content"]["status"] == "ok"


def style(locator: Any, prop: str) -> str:
    return str(locator.evaluate(f"el => getComputedStyle(el).{prop}"))


def test_tables_keep_their_own_styles_which_stay_in_the_output(
    page: Page, svc: Service, kernel_id: str, clients: list[Any]
) -> None:
    leak = (
        "<style>.topbar, pre, button { background: rgb(1, 2, 3) !important }</style><pre>in</pre>"
    )
    show(
        svc,
        kernel_id,
        clients,
        ("text/html", DATAFRAME),
        ("text/html", STYLER),
        ("text/html", leak),
    )
    out = last_cell(page).locator(".output-html")
    expect(out).to_have_count(3)
    header = out.nth(0).locator("table.dataframe thead th").nth(1)
    expect(header).to_have_text("a")
    assert style(header, "textAlign") == "right"  # the DataFrame's own <style>
    assert style(out.nth(0).locator("table"), "borderCollapse") == "collapse"  # the page's
    styled = out.nth(1).locator("td#T_c0ffee_row0_col0")
    assert style(styled, "backgroundColor") == "rgb(255, 0, 0)"  # the Styler's <style>
    assert style(styled, "color") == "rgb(255, 255, 255)"
    assert style(out.nth(2).locator("pre"), "backgroundColor") == "rgb(1, 2, 3)"
    for own in (
        page.locator(".topbar"),
        page.locator("#interrupt"),
        last_cell(page).locator("pre.code"),
    ):
        assert style(own, "backgroundColor") != "rgb(1, 2, 3)"


def test_an_output_cannot_draw_outside_its_box(
    page: Page, svc: Service, kernel_id: str, clients: list[Any]
) -> None:
    cover = (
        '<div id="cover" style="position:fixed;inset:0;z-index:2147483647;background:#fff">x</div>'
    )
    moved = '<div id="moved" style="transform:translateY(-3000px);height:50px">y</div>'
    show(svc, kernel_id, clients, ("text/html", cover + moved))
    cell = last_cell(page)
    expect(cell.locator("#cover")).to_have_count(1)
    area = cell.locator(".output-body").bounding_box()
    drawn = cell.locator("#cover").bounding_box()
    assert area and drawn
    assert drawn["y"] >= area["y"] - 1 and drawn["height"] <= area["height"] + 1
    # Nothing of it is over the page's own controls: they are still what a click hits.
    page.get_by_role("button", name="Interrupt").click(trial=True, timeout=2_000)
    page.locator("#editor .cm-content").click(timeout=2_000)
    expect(page.locator("#editor .cm-content")).to_be_focused()


def test_links_open_in_a_new_tab_that_cannot_reach_the_page(
    page: Page, svc: Service, kernel_id: str, clients: list[Any]
) -> None:
    def other_site(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html", body="<p>other site</p>")

    page.context.route(f"{OTHER_SITE}/**", other_site)
    show(
        svc,
        kernel_id,
        clients,
        ("text/html", f'<a href="{OTHER_SITE}/html" target="_top">html</a>'),
        ("text/markdown", f"[markdown]({OTHER_SITE}/markdown)"),
        (
            "text/html",
            f'<svg width="90" height="20"><a href="{OTHER_SITE}/svg">'
            '<text x="2" y="15">svg</text></a></svg>',
        ),
    )
    clients[0].execute(f"print('\\x1b]8;;{OTHER_SITE}/stream\\x1b\\\\stream\\x1b]8;;\\x1b\\\\')")
    for name, link in [
        ("html", page.get_by_role("link", name="html")),
        ("markdown", page.get_by_role("link", name="markdown")),
        ("svg", page.locator("#cells .output-html svg text")),
        ("stream", page.get_by_role("link", name="stream")),
    ]:
        with page.expect_popup() as popup:
            link.click()
        tab = popup.value
        tab.wait_for_url(f"{OTHER_SITE}/{name}")
        assert tab.evaluate("window.opener") is None, name
        tab.close()
    assert page.url == f"{svc.url}/kernels/{kernel_id}"


def test_markdown_latex_and_images_look_as_before(
    page: Page, svc: Service, kernel_id: str, clients: list[Any]
) -> None:
    markdown = (
        f"# Title\n\n`code`, $x^2$ and ![dot](data:image/png;base64,{PIXEL})\n\n| a |\n|---|\n| 1 |"
    )
    html = f'<p>image:</p><img src="data:image/png;base64,{PIXEL}" width="20">'
    show(svc, kernel_id, clients, ("text/markdown", markdown), ("text/html", html))
    md = last_cell(page).locator(".output-markdown")
    expect(md.locator("h1")).to_have_text("Title")
    expect(md.locator("td")).to_have_text("1")
    assert "KaTeX" in style(md.locator(".katex .mord").first, "fontFamily")
    # KaTeX's MathML copy is there for screen readers only, as on the rest of the page.
    assert md.locator(".katex-mathml").evaluate("el => el.getBoundingClientRect().height") <= 1
    for img in (md.locator("img"), last_cell(page).locator(".output-html img")):
        expect(img).to_have_count(1)
        assert img.evaluate("el => el.complete && el.naturalWidth") == 1


def test_what_could_break_out_is_taken_out_and_the_rest_kept(
    page: Page, svc: Service, kernel_id: str, clients: list[Any]
) -> None:
    hostile = (
        '<meta http-equiv="refresh" content="60"><base href="/x/"><form><input value="kept">'
        '</form><iframe srcdoc="x"></iframe><object data="x"></object><embed src="x">'
        "<script>1</script><dialog open>kept</dialog><div popover>kept</div>"
        '<button onclick="1" commandfor="d" command="show-modal">kept</button>'
        '<svg><a><set attributeName="href" to="x"/><animate attributeName="href" values="x"/>'
        "<text>kept</text></a><foreignObject><p>x</p></foreignObject></svg>"
        '<img name="createElement" alt="kept">'
    )
    show(svc, kernel_id, clients, ("text/html", hostile))
    out = last_cell(page).locator(".output-html")
    expect(out.locator("button")).to_have_text("kept")
    expect(out.locator("input")).to_have_value("kept")
    gone = "meta, base, form, iframe, object, embed, script, dialog, [popover], [onclick], "
    gone += "[commandfor], [command], set, animate, foreignObject, [name]"
    expect(out.locator(gone)).to_have_count(0)
    assert page.evaluate("typeof document.createElement") == "function"
