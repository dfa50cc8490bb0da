"""The web pages and their assets, in process (a real HTTP channel on a fake transport):
what needs a login, the Content-Security-Policy, the static files and their caching,
and 404s for unknown kernels and paths."""

from __future__ import annotations

import gzip
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from support.fakes import FakeProvisioner
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from ipytwist.config import Config
from ipytwist.host import KernelHost
from ipytwist.web.assets import StaticFiles
from ipytwist.web.auth import Authenticator
from ipytwist.web.pages import csp_for
from ipytwist.web.site import make_site
from ipytwist.web.transport import WebSocketTransport

TOKEN = "page-token"
KERNEL_ID = str(uuid.uuid4())


class StubKernel:
    id = KERNEL_ID
    name = "ipytwist"


class StubHosted:
    id = KERNEL_ID
    kernel = StubKernel()


class Response:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.setdefault(name.strip().lower(), []).append(value.strip())

    def header(self, name: str) -> str:
        return self.headers.get(name, [""])[0]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@pytest.fixture
def site(tmp_path: Path) -> Any:
    clock = MemoryReactorClock()
    config = Config(state_dir=str(tmp_path))
    host = KernelHost(clock, config, provisioner=FakeProvisioner())
    host.kernels[KERNEL_ID] = StubHosted()  # type: ignore[assignment]
    return make_site(host, Authenticator(TOKEN, clock), clock, WebSocketTransport(clock, config))


def get(site: Any, path: str, *headers: str, method: str = "GET") -> Response:
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5555))
    transport = StringTransport()
    channel.makeConnection(transport)
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1:8888", "Connection: close", *headers]
    channel.dataReceived(("\r\n".join(lines) + "\r\n\r\n").encode())
    return Response(transport.value())


AUTH = f"Authorization: token {TOKEN}"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)", re.IGNORECASE)


def assert_strict_page(r: Response, forms: bool = False) -> None:
    """The page's policy: scripts from its origin only, no frames, objects or <base>, and
    forms (to its origin) only on a page that has one (the login page)."""
    assert r.header("content-type") == "text/html; charset=utf-8"
    csp = r.header("content-security-policy")
    assert csp == csp_for("127.0.0.1:8888", forms)
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self' ws://127.0.0.1:8888 wss://127.0.0.1:8888"
    assert directives["default-src"] == "'none'"
    none = ["frame-src", "object-src", "base-uri", "frame-ancestors"]
    assert all(directives[d] == "'none'" for d in none)
    assert directives["form-action"] == ("'self'" if forms else "'none'")
    assert not INLINE_SCRIPT.search(r.text), "pages carry no inline script"
    assert not re.search(r"\son[a-z]+=", r.text), "no inline event handlers"


# -- what needs a login -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", f"/kernels/{KERNEL_ID}", "/no/such/page"])
def test_pages_need_a_login(site: Any, path: str) -> None:
    r = get(site, path)
    assert r.status == 302
    assert r.header("location").startswith("/login?next=")


def test_the_login_page_is_styled_and_strict(site: Any) -> None:
    r = get(site, "/login?next=/kernels/x")
    assert r.status == 200
    assert_strict_page(r, forms=True)
    assert re.search(r'<link rel="stylesheet" href="/static/style\.css\?v=[0-9a-f]+">', r.text)
    assert 'name="next" value="/kernels/x"' in r.text
    bad = get(site, "/login", method="POST")
    assert bad.status == 401 and "Invalid token." in bad.text
    assert_strict_page(bad, forms=True)


def test_a_token_in_the_url_logs_in_and_redirects(site: Any) -> None:
    r = get(site, f"/kernels/{KERNEL_ID}?token={TOKEN}")
    assert r.status == 302
    assert r.header("location") == f"/kernels/{KERNEL_ID}"
    cookie = r.header("set-cookie")
    assert cookie.startswith("ipytwist-login=") and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie


# -- the pages ------------------------------------------------------------------------------


def test_the_kernel_list(site: Any) -> None:
    r = get(site, "/", AUTH)
    assert r.status == 200
    assert_strict_page(r)
    assert re.search(r'<script src="/static/home\.js\?v=[0-9a-f]+" defer></script>', r.text)
    assert 'id="new-kernel"' in r.text and ">New<" in r.text


def test_a_kernels_notebook_page(site: Any) -> None:
    r = get(site, f"/kernels/{KERNEL_ID}", AUTH)
    assert r.status == 200
    assert_strict_page(r)
    assert f'data-kernel-id="{KERNEL_ID}"' in r.text
    assert re.search(r'<script src="/static/notebook\.js\?v=[0-9a-f]+" defer></script>', r.text)
    for name in ("Interrupt", "Restart", "Download .ipynb"):
        assert f">{name}<" in r.text
    assert 'aria-label="Clear transcript"' in r.text
    assert f'href="/api/kernels/{KERNEL_ID}/transcript.ipynb"' in r.text
    assert r.header("cache-control") == "no-store"


@pytest.mark.parametrize("kid", ["5b2e3c1a-0d4f-4e8a-9c7b-2f6e1d0a3b4c", "not-a-uuid", "<script>"])
def test_an_unknown_kernels_page_is_404(site: Any, kid: str) -> None:
    r = get(site, f"/kernels/{kid}", AUTH)
    assert r.status == 404
    assert_strict_page(r)
    assert "no such kernel" in r.text
    assert "<script>" not in r.text


def test_an_unknown_path_is_404(site: Any) -> None:
    r = get(site, "/kernels", AUTH)
    assert r.status == 404
    assert_strict_page(r)


# -- static files -----------------------------------------------------------------------------


def test_a_strange_host_is_not_copied_into_the_policy() -> None:
    for host in ("evil.example; script-src *", "a b", "", "x\n", "[::1]:8888", "localhost"):
        directives = dict(d.strip().split(" ", 1) for d in csp_for(host).split(";"))
        assert directives["script-src"] == "'self'"
        if host in ("[::1]:8888", "localhost"):
            assert f"ws://{host}" in directives["connect-src"]
        else:
            assert directives["connect-src"] == "'self'"


def test_static_files_are_served_without_login(site: Any) -> None:
    for name, ctype in [
        ("notebook.js", "text/javascript; charset=utf-8"),
        ("home.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
        ("fonts/KaTeX_Main-Regular.woff2", "font/woff2"),
        ("THIRD-PARTY-LICENSES.txt", "text/plain; charset=utf-8"),
    ]:
        r = get(site, f"/static/{name}")
        assert r.status == 200, name
        assert r.header("content-type") == ctype
        assert r.header("cache-control") == "no-cache"
        assert r.header("etag") and r.body
    css = get(site, "/static/style.css").text
    for font in re.findall(r"url\((fonts/[^)]+)\)", css):
        assert get(site, f"/static/{font}").status == 200, font


def test_static_versions_are_cached_for_good_and_revalidated_otherwise(site: Any) -> None:
    page = get(site, "/", AUTH).text
    url = re.search(r'src="(/static/home\.js\?v=[0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
    r = get(site, url)
    assert r.status == 200 and "immutable" in r.header("cache-control")
    stale = get(site, "/static/home.js?v=0000")
    assert stale.header("cache-control") == "no-cache"
    again = get(site, "/static/home.js", f"If-None-Match: {r.header('etag')}")
    assert again.status == 304 and again.body == b""


def test_static_files_are_gzipped_for_clients_that_accept_it(site: Any) -> None:
    plain = get(site, "/static/notebook.js")
    zipped = get(site, "/static/notebook.js", "Accept-Encoding: gzip, deflate")
    assert zipped.header("content-encoding") == "gzip"
    assert gzip.decompress(zipped.body) == plain.body
    assert len(zipped.body) < len(plain.body) / 2
    assert plain.header("vary") == "accept-encoding"


@pytest.mark.parametrize(
    "path",
    [
        "/static/nope.js",
        "/static/",
        "/static/../site.py",
        "/static/fonts",
        "/static/%2e%2e/auth.py",
    ],
)
def test_unknown_static_files_are_404(site: Any, path: str) -> None:
    assert get(site, path).status == 404


def test_static_files_are_read_only(site: Any) -> None:
    r = get(site, "/static/home.js", AUTH, "Origin: http://127.0.0.1:8888", method="POST")
    assert r.status == 405


def test_static_files_come_from_the_given_folder_only(tmp_path: Path) -> None:
    (tmp_path / "a.js").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.css").write_text("y")
    (tmp_path / ".hidden").write_text("z")
    files = StaticFiles(tmp_path)  # type: ignore[arg-type]
    assert sorted(files.assets) == ["a.js", "sub/b.css"]
    assert files.url("a.js").startswith("/static/a.js?v=")
    assert files.url("missing.js") == "/static/missing.js"
