"""The site under a base URL (``--base-url /user/alice/``), in process: every route lives
below the prefix, nothing outside it is served, redirects and ``?next=`` stay below it,
the login cookie's Path is the prefix."""

from __future__ import annotations

import re
from email.message import Message
from http.cookiejar import CookieJar
from typing import Any
from urllib.parse import quote
from urllib.request import Request

import pytest
from glue_fakes import TOKEN, Browser, HostEnv, login_cookie, make_site_env
from support.json_errors import assert_json_error

from ipytwist.web.auth import safe_next

BASE = "/user/alice/"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def alice(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[HostEnv, Browser]:
    """The site of a host served under /user/alice/."""
    env, _, site = make_site_env(tmp_path, monkeypatch, base_url=BASE)
    return env, Browser(site)


def test_the_api_pages_and_assets_are_served_below_the_prefix(
    alice: tuple[HostEnv, Browser],
) -> None:
    env, browser = alice
    assert browser.request("GET", BASE + "api/kernels").json() == []
    made = browser.request("POST", BASE + "api/kernels", body=b"{}")
    assert made.code == 201
    kid = made.json()["id"]
    assert made.header("location") == f"{BASE}api/kernels/{kid}"
    assert browser.request("GET", f"{BASE}api/kernels/{kid}").json()["id"] == kid

    home = browser.request("GET", BASE)
    assert home.code == 200 and f'data-base-url="{BASE}"'.encode() in home.body
    # Every address the page names is below the prefix, and is served there.
    links = re.findall(rb'(?:href|src|action)="([^"]+)"', home.body)
    assert links and all(link.startswith(BASE.encode()) for link in links), links
    for asset in (link for link in links if b"/static/" in link):
        assert browser.request("GET", asset.decode().replace("&amp;", "&")).code == 200, asset
    env.provisioner.report_ready()
    page = browser.request("GET", f"{BASE}kernels/{kid}")
    assert page.code == 200 and f'data-kernel-id="{kid}"'.encode() in page.body
    links = re.findall(rb'(?:href|src|action)="([^"]+)"', page.body)
    assert f"{BASE}api/kernels/{kid}/transcript.ipynb".encode() in links
    assert all(link.startswith(BASE.encode()) for link in links), links


@pytest.mark.parametrize(
    "path",
    ["/", "/api/kernels", "/static/style.css", "/login", "/kernels/x", "/user/", "/user/bob/",
     "/user/bob/api/kernels", "/user/alicex/", "/user/alicex/api/kernels", "/alice/user/"],
)  # fmt: skip
def test_nothing_outside_the_prefix_is_served(alice: tuple[HostEnv, Browser], path: str) -> None:
    """Not even with the token: a 404, JSON for API-looking paths, and nothing starts."""
    env, browser = alice
    for method in ("GET", "POST"):
        r = browser.request(method, path, body=b"{}" if method == "POST" else None)
        assert r.code == 404, (method, path)
        if "/api/" in path:
            assert_json_error(r, 404, "Not Found")
        assert r.header("set-cookie") is None
    assert env.provisioner.workers == []


def test_the_prefix_without_its_slash_redirects_to_it(alice: tuple[HostEnv, Browser]) -> None:
    _, browser = alice
    r = browser.request("GET", BASE.rstrip("/"), token=None)
    assert r.code == 302 and r.header("location") == BASE
    r = browser.request("GET", BASE.rstrip("/") + f"?token={TOKEN}", token=None)
    assert r.code == 302 and r.header("location") == f"{BASE}?token={TOKEN}"


def test_login_redirects_and_the_cookie_stay_below_the_prefix(
    alice: tuple[HostEnv, Browser],
) -> None:
    _, browser = alice
    r = browser.request("GET", f"{BASE}kernels/abc", token=None)
    assert r.code == 302
    assert r.header("location") == f"{BASE}login?next=" + quote(f"{BASE}kernels/abc", safe="")
    form = browser.request("GET", f"{BASE}login?next={BASE}kernels/abc", token=None)
    assert form.code == 200
    assert f'action="{BASE}login"'.encode() in form.body
    assert f'name="next" value="{BASE}kernels/abc"'.encode() in form.body
    assert_json_error(browser.request("GET", BASE + "api/kernels", token=None), 401, "Unauthorized")

    via_url = browser.request("GET", f"{BASE}kernels/abc?token={TOKEN}", token=None)
    assert via_url.code == 302 and via_url.header("location") == f"{BASE}kernels/abc"
    cookie = login_cookie(via_url)
    assert f"path={BASE}" in [a.strip().lower() for a in cookie.split(";")]
    value = cookie.split(";")[0]
    assert browser.request("GET", BASE, token=None, headers={"Cookie": value}).code == 200

    for target, lands in [
        (f"{BASE}kernels/1", f"{BASE}kernels/1"),
        ("/user/bob/", BASE),
        ("/", BASE),
        (f"{BASE}../bob/", BASE),
        (f"{BASE}%2e%2e/bob/", BASE),
        ("/user/alicex/", BASE),
        ("//evil.example/user/alice/", BASE),
        ("https://evil.example/user/alice/", BASE),
    ]:
        body = f"token={TOKEN}&next={quote(target, safe='')}".encode()
        r = browser.request("POST", BASE + "login", token=None, headers=FORM, body=body)
        assert r.code == 302 and r.header("location") == lands, target
        assert login_cookie(r)


def _browser_jar_sends(set_cookie: str, issued_at: str, url: str) -> bool:
    """Whether a browser's cookie jar that got ``set_cookie`` from ``issued_at`` sends it
    with a request for ``url`` (the standard library's RFC 6265 path matching)."""
    jar = CookieJar()
    headers = Message()
    headers["Set-Cookie"] = set_cookie

    class _Response:
        def info(self) -> Message:
            return headers

    jar.extract_cookies(_Response(), Request(issued_at))  # type: ignore[arg-type]  # duck-typed response
    request = Request(url)
    jar.add_cookie_header(request)
    return request.has_header("Cookie")


def test_services_under_two_prefixes_of_one_host_do_not_see_each_others_cookie(
    alice: tuple[HostEnv, Browser],
) -> None:
    _, browser = alice
    cookie = login_cookie(browser.request("GET", f"{BASE}?token={TOKEN}", token=None))
    issued = f"http://hub.example{BASE}"
    assert _browser_jar_sends(cookie, issued, f"http://hub.example{BASE}api/kernels")
    assert not _browser_jar_sends(cookie, issued, "http://hub.example/user/bob/api/kernels")
    assert not _browser_jar_sends(cookie, issued, "http://hub.example/hub/home")


def test_a_login_form_body_is_read_only_below_the_prefix(alice: tuple[HostEnv, Browser]) -> None:
    """The login form may send a body without credentials, at the prefix's login only."""
    _, browser = alice
    body = b"token=nope&next=/"
    at_prefix = browser.request("POST", BASE + "login", token=None, headers=FORM, body=body)
    assert at_prefix.code == 401 and b"Invalid token." in at_prefix.body
    outside = browser.request("POST", "/login", token=None, headers=FORM, body=body)
    assert_json_error(outside, 401, "Unauthorized")  # refused before its body is read


@pytest.mark.parametrize(
    "target, base, expected",
    [
        ("/user/alice/kernels/1?x=1", "/user/alice/", "/user/alice/kernels/1?x=1"),
        ("/user/alice/", "/user/alice/", "/user/alice/"),
        ("/user/alice", "/user/alice/", "/user/alice/"),
        ("/user/bob/", "/user/alice/", "/user/alice/"),
        ("/user/alice/./../bob/", "/user/alice/", "/user/alice/"),
        ("/user/alice/%2E%2E/bob", "/user/alice/", "/user/alice/"),
        ("/kernels/1", "/", "/kernels/1"),
        ("/a/../b", "/", "/"),
        ("//evil.example/", "/", "/"),
    ],
)
def test_safe_next_never_leaves_the_prefix(target: str, base: str, expected: str) -> None:
    assert safe_next(target, base) == expected
