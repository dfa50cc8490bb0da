"""The site in process (as in test_web_inprocess.py): authentication (tokens, the login
cookie and form, origins, the failed-login rate limit on the fake clock), the kernel
WebSocket route and static files."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import pytest
from glue_fakes import (
    TOKEN,
    Browser,
    HostEnv,
    login_cookie,
    make_site_env,
)
from support.json_errors import assert_json_error

# -- authentication ------------------------------------------------------------------------


def test_the_api_needs_a_valid_token(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    assert_json_error(browser.request("GET", "/api/kernels", token=None), 401, "Unauthorized")
    assert_json_error(browser.request("GET", "/api/kernels", token="wrong"), 401, "Unauthorized")
    assert_json_error(browser.request("POST", "/api/kernels", token="wrong"), 401, "Unauthorized")
    assert env.provisioner.workers == []
    ok = browser.request(
        "GET", "/api/kernels", token=None, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert ok.code == 200
    # ?token= authenticates an API call; it sets no cookie and does not redirect.
    ok = browser.request("GET", f"/api/kernels?token={TOKEN}", token=None)
    assert ok.code == 200 and ok.header("set-cookie") is None


def test_every_response_carries_the_hardening_headers(web: tuple[HostEnv, Browser]) -> None:
    _, browser = web
    for r in (
        browser.request("GET", "/api/kernels"),
        browser.request("GET", "/api/kernels", token=None),
        browser.request("GET", "/nothing/here"),
    ):
        assert r.header("x-content-type-options") == "nosniff"
        assert r.header("referrer-policy") == "same-origin"


def test_a_page_without_credentials_redirects_to_login(web: tuple[HostEnv, Browser]) -> None:
    _, browser = web
    r = browser.request("GET", "/kernels/abc", token=None)
    assert r.code == 302
    assert r.header("location") == "/login?next=" + quote("/kernels/abc", safe="")
    login = browser.request("GET", "/login?next=/kernels/abc", token=None)
    assert login.code == 200 and b"<form" in login.body


def test_token_in_a_page_url_sets_the_login_cookie_and_redirects_without_it(
    web: tuple[HostEnv, Browser],
) -> None:
    _, browser = web
    r = browser.request("GET", f"/kernels/abc?token={TOKEN}", token=None)
    assert r.code == 302
    assert r.header("location") == "/kernels/abc"
    cookie = login_cookie(r)
    attributes = [a.strip().lower() for a in cookie.split(";")]
    assert "httponly" in attributes and "samesite=strict" in attributes and "path=/" in attributes
    assert "secure" not in attributes  # plain HTTP here
    assert TOKEN not in cookie

    value = cookie.split(";")[0]
    home = browser.request("GET", "/", token=None, headers={"Cookie": value})
    assert home.code == 200 and b"<html" in home.body
    assert browser.request("GET", "/api/kernels", token=None, headers={"Cookie": value}).code == 200
    forged = browser.request(
        "GET", "/api/kernels", token=None, headers={"Cookie": "ipytwist-login=forged"}
    )
    assert forged.code == 401


def test_a_wrong_token_in_a_page_url_sets_no_cookie(web: tuple[HostEnv, Browser]) -> None:
    _, browser = web
    r = browser.request("GET", "/?token=wrong", token=None)
    assert r.code == 302 and (r.header("location") or "").startswith("/login")
    assert r.header("set-cookie") is None


def cookie_for(browser: Browser) -> str:
    return login_cookie(browser.request("GET", f"/?token={TOKEN}", token=None)).split(";")[0]


@pytest.mark.parametrize(
    "headers, allowed",
    [
        ({}, False),
        ({"Origin": "http://localhost:8888"}, True),
        ({"Origin": "http://evil.example"}, False),
        ({"Origin": "http://localhost:9999"}, False),
        ({"Referer": "http://localhost:8888/kernels/x"}, True),
        ({"Referer": "http://evil.example/"}, False),
    ],
)
def test_cookie_state_changes_must_come_from_the_same_origin(
    web: tuple[HostEnv, Browser], headers: dict[str, str], allowed: bool
) -> None:
    env, browser = web
    cookie = cookie_for(browser)
    r = browser.request("POST", "/api/kernels", token=None, headers={"Cookie": cookie, **headers})
    if allowed:
        assert r.code == 201
    else:
        assert_json_error(r, 403, "Forbidden")
        assert env.provisioner.workers == []


def test_a_cross_origin_delete_by_cookie_leaves_the_kernel(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    hk = env.start_kernel()
    cookie = cookie_for(browser)
    r = browser.request(
        "DELETE",
        f"/api/kernels/{hk.id}",
        token=None,
        headers={"Cookie": cookie, "Origin": "http://evil.example"},
    )
    assert_json_error(r, 403, "Forbidden")
    assert env.host.get(hk.id) is hk and not env.provisioner.workers[0].stopped
    # A cookie GET from anywhere is fine (it changes nothing), and so is a token.
    assert (
        browser.request("GET", "/api/kernels", token=None, headers={"Cookie": cookie}).code == 200
    )
    r = browser.request(
        "DELETE", f"/api/kernels/{hk.id}", headers={"Origin": "http://evil.example"}
    )
    assert r.code == 204


def test_allowed_origin_patterns_apply_to_cookie_state_changes(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, site = make_site_env(tmp_path, monkeypatch, allow_origins=["https://*.example.org"])
    browser = Browser(site)
    cookie = cookie_for(browser)
    for origin, code in [("https://lab.example.org", 201), ("https://example.com", 403)]:
        r = browser.request(
            "POST", "/api/kernels", token=None, headers={"Cookie": cookie, "Origin": origin}
        )
        assert r.code == code, origin


def test_the_login_form(web: tuple[HostEnv, Browser]) -> None:
    _, browser = web
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    bad = browser.request("POST", "/login", token=None, headers=form, body=b"token=nope&next=/x")
    assert bad.code == 401 and bad.header("set-cookie") is None
    good = browser.request(
        "POST", "/login", token=None, headers=form, body=f"token={TOKEN}&next=/kernels/1".encode()
    )
    assert good.code == 302 and good.header("location") == "/kernels/1"
    assert login_cookie(good)
    for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        r = browser.request(
            "POST",
            "/login",
            token=None,
            headers=form,
            body=f"token={TOKEN}&next={quote(evil, safe='')}".encode(),
        )
        assert r.code == 302 and r.header("location") == "/", evil
    as_json = browser.request(
        "POST",
        "/login",
        token=None,
        headers={**form, "Accept": "application/json"},
        body=f"token={TOKEN}".encode(),
    )
    assert as_json.code == 200 and as_json.json() == {"ok": True} and login_cookie(as_json)


# -- failed-login rate limit (on the fake clock) -------------------------------------------


def test_failed_logins_are_rate_limited_per_address_for_a_window(
    web: tuple[HostEnv, Browser],
) -> None:
    env, browser = web
    codes = [browser.request("GET", "/api/kernels", token="wrong").code for _ in range(10)]
    assert codes == [401] * 9 + [429]
    limited = browser.request("GET", "/api/kernels", token=None)
    assert_json_error(limited, 429, "Too Many Requests")
    assert limited.header("retry-after") == "61"
    # A valid credential always passes; another address is not limited.
    assert browser.request("GET", "/api/kernels").code == 200
    other = Browser(browser.site, peer="10.0.0.2")
    assert other.request("GET", "/api/kernels", token="wrong").code == 401
    # The login form is limited too.
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    r = browser.request("POST", "/login", token=None, headers=form, body=b"token=nope")
    assert r.code == 429

    env.clock.advance(30)
    r = browser.request("GET", "/api/kernels", token="wrong")
    assert r.code == 429 and r.header("retry-after") == "31"
    env.clock.advance(30.5)  # the first failures are now out of the window
    assert browser.request("GET", "/api/kernels", token="wrong").code == 401


# -- the kernel WebSocket route --------------------------------------------------------------


def test_websocket_route_refuses_foreign_origins_and_unknown_kernels(
    web: tuple[HostEnv, Browser],
) -> None:
    env, browser = web
    hk = env.start_kernel()
    foreign = browser.request(
        "GET", f"/api/kernels/{hk.id}/channels", headers={"Origin": "http://evil.example"}
    )
    assert_json_error(foreign, 403, "Forbidden")
    missing = browser.request("GET", f"/api/kernels/{uuid.uuid4()}/channels")
    assert_json_error(missing, 404, "Not Found")
    unauth = browser.request("GET", f"/api/kernels/{hk.id}/channels", token=None)
    assert_json_error(unauth, 401, "Unauthorized")


def test_static_files_are_public_and_pages_are_not_found_as_html(
    web: tuple[HostEnv, Browser],
) -> None:
    _, browser = web
    css = browser.request("GET", "/static/style.css", token=None)
    assert css.code == 200 and "css" in (css.header("content-type") or "")
    missing = browser.request("GET", "/no/such/page")
    assert missing.code == 404 and "html" in (missing.header("content-type") or "")
