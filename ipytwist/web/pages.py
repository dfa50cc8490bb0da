"""The web pages: login, the running kernels, and one kernel's notebook.

Each page is a small HTML shell; the bundled scripts (``/static/home.js``,
``/static/notebook.js``, built from ``frontend/``) do the rest. Pages carry no
inline script: data for the scripts is in ``data-`` attributes, and the
Content-Security-Policy allows scripts from this origin only.
"""

from __future__ import annotations

import html
import re
import uuid

from twisted.web.server import Request

from ..host import KernelHost
from .assets import StaticFiles

#: Scripts only from this origin, never inline. Styles may be inline: KaTeX and the
#: HTML outputs of user code (pandas tables, ...) carry style attributes and blocks.
#: Images, fonts and styles come from this origin or data: only, so no output sends a
#: request elsewhere (CSS ``url()`` included). No frames, objects or ``<base>``, and forms
#: only on the login page: the notebook page sanitises outputs, and this is its second
#: wall (see docs/internals.md, "Outputs on the page").
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "media-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'{sockets}",
        "form-action {forms}",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-src 'none'",
        "frame-ancestors 'none'",
    ]
)

_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def csp_for(host: str, forms: bool = False) -> str:
    """The policy for a page served to ``host`` (the Host header): 'self' covers the
    kernel WebSocket in current browsers; older ones need ws:/wss: named. Only a page
    with ``forms`` (the login page) may submit a form, to this origin."""
    sockets = f" ws://{host} wss://{host}" if _HOST.fullmatch(host) else ""
    return CSP.format(sockets=sockets, forms="'self'" if forms else "'none'")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>{title}</title>
<link rel="icon" href="{favicon}" type="image/svg+xml">
<link rel="stylesheet" href="{css}">{script}
</head>
<body class="page-{page}"{data}>
{body}
</body></html>"""

_LOGIN = """<main class="login">
<h1><span class="brand">ipytwist</span></h1>
{message}<form method="post" action="{base}login" class="login-form">
<input type="hidden" name="next" value="{next}">
<label for="token">Token</label>
<input id="token" type="password" name="token" autocomplete="current-password" required autofocus>
<button type="submit" class="primary">Log in</button>
</form>
<p class="hint">The service prints its address with the token when it starts.</p>
</main>"""

_HOME = """<header class="topbar">
<a class="brand" href="{base}">ipytwist</a>
<h1 class="title">Kernels</h1>
<nav class="toolbar" aria-label="Kernels">
<button type="button" id="new-kernel" class="primary">New</button>
</nav>
</header>
<main class="home">
<p id="home-status" class="status-line" role="status"></p>
<table id="kernels" class="kernels">
<caption>Running kernels</caption>
<thead><tr><th scope="col">Kernel</th><th scope="col">State</th><th scope="col">Windows</th>
<th scope="col">Last activity</th>
<th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
<tbody></tbody>
</table>
<p id="no-kernels" class="empty" hidden>No kernel is running. <strong>New</strong> starts one.</p>
<section class="about" aria-labelledby="about-title">
<h2 id="about-title">Other clients</h2>
<p>Every kernel here is shared: <code>jupyter console --existing</code> on its connection file,
JupyterLab through this server as a gateway, and scripts over <code>/api</code> all see the
same interpreter, and the notebook page shows the cells they run.</p>
</section>
</main>"""

_NOTEBOOK = """<header class="topbar">
<a class="brand" href="{base}">ipytwist</a>
<h1 class="title">Kernel <code>{short}</code></h1>
<div class="kernel-status">
<span id="kernel-state" class="state" data-state="unknown">\
<span class="dot" aria-hidden="true"></span><span class="label">connecting</span></span>
<span id="viewers" class="viewers" title="Windows viewing this kernel"></span>
</div>
<nav class="toolbar" aria-label="Kernel">
<button type="button" id="interrupt">Interrupt</button>
<button type="button" id="restart">Restart</button>
<a id="download" class="button" href="{base}api/kernels/{id}/transcript.ipynb"
 download>Download .ipynb</a>
<button type="button" id="clear" aria-label="Clear transcript">\
Clear<span class="wide-only"> transcript</span></button>
</nav>
</header>
<main id="notebook" class="notebook">
<p id="banner" class="banner" role="status" hidden></p>
<p id="dropped-cells" class="truncated" hidden></p>
<section id="cells" class="cells" aria-label="Cells"></section>
<section id="input-cell" class="cell input-cell" aria-label="New cell">
<div class="prompt in" aria-hidden="true">In&nbsp;[&nbsp;]:</div>
<div id="editor" class="editor"></div>
</section>
<p class="hint"><kbd>Shift</kbd>+<kbd>Enter</kbd> runs · <kbd>Tab</kbd> completes ·
<kbd>Shift</kbd>+<kbd>Tab</kbd> or <code>name?</code> shows help · <kbd>Esc</kbd> then
<kbd>Tab</kbd> leaves the editor</p>
</main>
<aside id="pager" class="pager" aria-labelledby="pager-title" hidden>
<div class="pager-bar"><h2 id="pager-title">Help</h2>
<button type="button" id="pager-close">Close</button></div>
<pre id="pager-body" class="pager-body" tabindex="0"></pre>
</aside>
<noscript><p class="banner">This page needs JavaScript.</p></noscript>"""

_NOT_FOUND = """<main class="login">
<h1><span class="brand">ipytwist</span></h1>
<p>{message}</p>
<p><a href="{base}">The running kernels</a></p>
</main>"""


def _kernel_id(text: str) -> str | None:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


class Pages:
    """Renders the pages (the caller has checked authentication, except for login)."""

    def __init__(self, host: KernelHost, static: StaticFiles) -> None:
        self.host = host
        self.static = static
        self.base = host.config.base_url

    def _page(
        self,
        request: Request,
        page: str,
        title: str,
        body: str,
        script: str = "",
        data: dict[str, str] | None = None,
        code: int = 200,
        forms: bool = False,
    ) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        host = (request.getHeader(b"host") or b"").decode("latin-1")
        request.setHeader(b"content-security-policy", csp_for(host, forms).encode())
        request.setHeader(b"cache-control", b"no-store")
        tag = ""
        if script:
            tag = f'\n<script src="{html.escape(self.static.url(script))}" defer></script>'
        # Every page tells its script the base URL its REST, WebSocket and links live under.
        data = {"base-url": self.base, **(data or {})}
        attrs = "".join(f' data-{name}="{html.escape(value)}"' for name, value in data.items())
        return _PAGE.format(
            title=html.escape(title),
            favicon=html.escape(self.static.url("favicon.svg")),
            css=html.escape(self.static.url("style.css")),
            script=tag,
            page=page,
            data=attrs,
            body=body,
        ).encode()

    @property
    def _base(self) -> str:
        """The base URL, escaped for HTML."""
        return html.escape(self.base)

    def login(self, request: Request, next_path: str, message: str = "", code: int = 200) -> bytes:
        """The login page, with why the last try failed and where to go next."""
        note = f'<p class="error" role="alert">{html.escape(message)}</p>\n' if message else ""
        body = _LOGIN.format(message=note, next=html.escape(next_path), base=self._base)
        return self._page(request, "login", "ipytwist: log in", body, code=code, forms=True)

    def home(self, request: Request) -> bytes:
        """The home page: the running kernels."""
        return self._page(request, "home", "ipytwist", _HOME.format(base=self._base), "home.js")

    def notebook(self, request: Request, kernel_id: str) -> bytes:
        """One kernel's notebook page (a 404 page if there is no such kernel)."""
        kid = _kernel_id(kernel_id)
        if kid is None or self.host.get(kid) is None:
            return self.not_found(request, "There is no such kernel: it may have been shut down.")
        body = _NOTEBOOK.format(id=kid, short=kid[:8], base=self._base)
        title = f"ipytwist: kernel {kid[:8]}"
        return self._page(request, "notebook", title, body, "notebook.js", {"kernel-id": kid})

    def not_found(self, request: Request, message: str = "There is no such page.") -> bytes:
        """A 404 page saying ``message``."""
        body = _NOT_FOUND.format(message=html.escape(message), base=self._base)
        return self._page(request, "not-found", "ipytwist: not found", body, code=404)
