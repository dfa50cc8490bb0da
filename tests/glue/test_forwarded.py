"""Behind a reverse proxy (``--trusted-proxy``), in process: forwarding headers are
believed from trusted proxies only, and then feed the login rate limit, ``Secure``
cookies and same-origin checks; malformed ones are ignored with one rate-limited line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from glue_fakes import TOKEN, Browser, HostEnv, make_host
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.usage import UsageError
from twisted.web.http import Request
from twisted.web.test.requesthelper import DummyChannel

from ipytwist.tap import Options
from ipytwist.web.auth import Authenticator
from ipytwist.web.forwarded import TrustedProxies, trusted_proxy_option
from ipytwist.web.site import make_site

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def proxied_site(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, *trusted: str) -> Browser:
    env: HostEnv = make_host(tmp_path, monkeypatch, trusted_proxies=trusted)
    auth = Authenticator(TOKEN, env.clock)
    return Browser(make_site(env.host, auth, env.clock, env.sockets))


def bad_logins(browser: Browser, n: int, **headers: str) -> list[int]:
    return [
        browser.request("GET", "/api/kernels", token="wrong", headers=headers).code
        for _ in range(n)
    ]


def test_without_trusted_proxies_the_rate_limit_keys_on_the_peer(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser = proxied_site(tmp_path, monkeypatch)
    assert bad_logins(browser, 10, **{"X-Forwarded-For": "198.51.100.1"}) == [401] * 9 + [429]
    # Another client behind the same (untrusted) proxy is locked out with it.
    assert bad_logins(browser, 1, **{"X-Forwarded-For": "198.51.100.2"}) == [429]


def test_a_trusted_proxy_gives_the_client_address_to_the_rate_limit(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser = proxied_site(tmp_path, monkeypatch, "127.0.0.1", "10.0.0.0/8")
    one = {"X-Forwarded-For": "198.51.100.1"}
    assert bad_logins(browser, 10, **one) == [401] * 9 + [429]
    # The same client, whatever it puts in front of what the proxies appended.
    assert bad_logins(browser, 1, **{"X-Forwarded-For": "203.0.113.9, 198.51.100.1"}) == [429]
    # Through two trusted proxies: the right-most address that is not a proxy.
    chain = {"X-Forwarded-For": "198.51.100.1, 10.1.2.3"}
    assert bad_logins(browser, 1, **chain) == [429]
    # Another client behind the same proxy is not locked out, nor the proxy itself.
    assert bad_logins(browser, 1, **{"X-Forwarded-For": "198.51.100.2"}) == [401]
    assert bad_logins(browser, 1) == [401]
    r = browser.request("POST", "/login", token=None, headers={**FORM, **one}, body=b"token=x")
    assert r.code == 429


def test_forwarding_headers_from_an_untrusted_peer_change_nothing(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser = proxied_site(tmp_path, monkeypatch, "127.0.0.1")
    outsider = Browser(browser.site, peer="192.0.2.7")
    spoofed = {"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https"}
    assert bad_logins(outsider, 10, **spoofed) == [401] * 9 + [429]
    assert bad_logins(outsider, 1, **{"X-Forwarded-For": "198.51.100.3"}) == [429]
    r = outsider.request("GET", f"/?token={TOKEN}", token=None, headers=spoofed)
    assert r.code == 302 and "secure" not in (r.header("set-cookie") or "").lower()


def test_the_login_cookie_is_secure_when_the_client_used_https(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser = proxied_site(tmp_path, monkeypatch, "127.0.0.1")
    r = browser.request("GET", f"/?token={TOKEN}", token=None)
    assert r.code == 302 and "secure" not in (r.header("set-cookie") or "").lower()
    https = {"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https"}
    r = browser.request("GET", f"/?token={TOKEN}", token=None, headers=https)
    assert r.code == 302 and "; secure" in (r.header("set-cookie") or "").lower()
    r = browser.request(
        "POST", "/login", token=None, headers={**FORM, **https}, body=b"token=" + TOKEN.encode()
    )
    assert r.code == 302 and "; secure" in (r.header("set-cookie") or "").lower()


def test_same_origin_is_the_forwarded_scheme_and_host(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser = proxied_site(tmp_path, monkeypatch, "127.0.0.1")
    login = browser.request("GET", f"/?token={TOKEN}", token=None)
    cookie = (login.header("set-cookie") or "").split(";")[0]
    public = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "lab.example.org", "Cookie": cookie}

    def post(peer: Browser, origin: str, **headers: str) -> int:
        all_headers = {**headers, "Origin": origin, "Content-Type": "application/json"}
        r = peer.request(
            "POST", "/api/kernels/nope/interrupt", token=None, headers=all_headers, body=b"{}"
        )
        return r.code

    assert post(browser, "https://lab.example.org", **public) == 404  # (past the check)
    assert post(browser, "http://lab.example.org", **public) == 403  # another scheme
    assert post(browser, "https://evil.example", **public) == 403
    # Without the proxy's word, the page's origin is not the Host the proxy connected to.
    assert post(browser, "https://lab.example.org", Cookie=cookie) == 403
    assert post(browser, "http://localhost:8888", Cookie=cookie) == 404
    outsider = Browser(browser.site, peer="192.0.2.7")
    assert post(outsider, "https://lab.example.org", **public) == 403


def test_a_kernel_websocket_checks_the_forwarded_origin(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser = proxied_site(tmp_path, monkeypatch, "127.0.0.1")
    public = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "lab.example.org:8443"}
    ws = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
    ws["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ=="
    path = "/api/kernels/nope/channels"
    ok = browser.request(
        "GET", path, headers={**ws, **public, "Origin": "https://lab.example.org:8443"}
    )
    assert ok.code == 404  # past the origin check: no such kernel
    foreign = browser.request(
        "GET", path, headers={**ws, **public, "Origin": "https://lab.example.org"}
    )
    assert foreign.code == 403


@pytest.fixture
def events() -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(seen.append)
    yield seen
    globalLogPublisher.removeObserver(seen.append)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-For": "SECRET-not-an-address"},
        {"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "SECRET"},
        {"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Host": "SECRET/../x"},
        {"Forwarded": 'for=198.51.100.1;SECRET"'},
        {"Forwarded": "for=198.51.100.1;proto=SECRET"},
    ],
)
def test_malformed_forwarding_headers_are_ignored_in_a_few_lines(
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    events: list[dict[str, Any]],
    headers: dict[str, str],
) -> None:
    browser = proxied_site(tmp_path, monkeypatch, "127.0.0.1")
    codes = [browser.request("GET", "/api/kernels", headers=headers).code for _ in range(50)]
    assert codes == [200] * 50
    # Ignored: the failed logins count against the proxy itself.
    assert bad_logins(browser, 10, **headers)[-1] == 429
    assert bad_logins(browser, 1) == [429]
    lines = [formatEvent(e) for e in events if "forwarding header" in formatEvent(e)]
    assert 1 <= len(lines) <= 10 and not any("SECRET" in line for line in lines)


def request_from(peer: str, **headers: str) -> Request:
    request = Request(DummyChannel())
    request.client = IPv4Address("TCP", peer, 1234)
    for name, value in headers.items():
        request.requestHeaders.addRawHeader(name.replace("_", "-").encode(), value.encode())
    request.requestHeaders.setRawHeaders(b"host", [b"127.0.0.1:8888"])
    return request


def test_the_standard_forwarded_header_and_ipv6(events: list[dict[str, Any]]) -> None:
    proxies = TrustedProxies(["::1", "127.0.0.0/8"], Clock())
    r = request_from("::1", Forwarded='for="[2001:db8::1]:4711";proto=https;host="lab.example.org"')
    proxies.apply(r)
    assert r.getClientAddress().host == "2001:db8::1"
    assert r.isSecure() and r.getHeader(b"host") == b"lab.example.org"
    # Several elements and several headers: the right-most untrusted one; "unknown" stops.
    r = request_from("::ffff:127.0.0.1", Forwarded="for=192.0.2.60, for=127.0.0.2;proto=http")
    proxies.apply(r)
    assert r.getClientAddress().host == "192.0.2.60" and not r.isSecure()
    r = request_from("127.0.0.1", Forwarded="for=192.0.2.60, for=unknown")
    proxies.apply(r)
    assert r.getClientAddress().host == "127.0.0.1"
    # X-Forwarded-For wins over Forwarded (a proxy that sets the one passes the other on).
    r = request_from("127.0.0.1", X_Forwarded_For="198.51.100.1", Forwarded="for=192.0.2.60")
    proxies.apply(r)
    assert r.getClientAddress().host == "198.51.100.1"
    r = request_from("192.0.2.1", X_Forwarded_For="198.51.100.1", X_Forwarded_Proto="https")
    proxies.apply(r)
    assert r.getClientAddress().host == "192.0.2.1" and not r.isSecure()
    r = request_from("127.0.0.1", X_Forwarded_For="[2001:db8::2]:80, 198.51.100.1:5")
    proxies.apply(r)
    assert r.getClientAddress().host == "198.51.100.1"
    assert not events


def test_the_option_takes_addresses_and_networks() -> None:
    assert trusted_proxy_option("127.0.0.1") == "127.0.0.1/32"
    assert trusted_proxy_option("10.1.0.0/16") == "10.1.0.0/16"
    assert trusted_proxy_option("fd00::/8") == "fd00::/8"
    assert trusted_proxy_option("::1") == "::1/128"
    for bad in ("localhost", "10.0.0.0/33", "", "1.2.3.4.5"):
        with pytest.raises(UsageError, match="--trusted-proxy"):
            trusted_proxy_option(bad)


def test_what_a_client_writes_beyond_itself_is_never_read(events: list[dict[str, Any]]) -> None:
    """A malformed value left of the client (the client's own writing) changes nothing
    and is not even logged; one between trusted proxies ends the walk at the last."""
    proxies = TrustedProxies(["127.0.0.1", "10.0.0.0/8"], Clock())
    r = request_from("127.0.0.1", X_Forwarded_For="SECRET, [nonsense, 198.51.100.1, 10.0.0.2")
    proxies.apply(r)
    assert r.getClientAddress().host == "198.51.100.1" and not events
    r = request_from("127.0.0.1", X_Forwarded_For="198.51.100.1, SECRET, 10.0.0.2")
    proxies.apply(r)
    assert r.getClientAddress().host == "10.0.0.2"
    r = request_from("127.0.0.1", Forwarded="for=SECRET;;, for=198.51.100.1;proto=https")
    proxies.apply(r)
    assert r.getClientAddress().host == "198.51.100.1" and r.isSecure()
    lines = [formatEvent(e) for e in events]
    assert len(lines) == 1 and "SECRET" not in lines[0] and "(for)" in lines[0]


def test_twistd_takes_the_option_repeated(tmp_path: Any) -> None:
    options = Options()
    given = ["--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "::1"]
    options.parseOptions([*given, "--state-dir", str(tmp_path)])
    assert options.config().trusted_proxies == ("10.0.0.0/8", "::1/128")
    default = Options()
    default.parseOptions(["--state-dir", str(tmp_path)])
    assert default.config().trusted_proxies == ()  # nothing trusted by default
    with pytest.raises(UsageError, match="--trusted-proxy: 'proxy.example' is not an IP"):
        Options().parseOptions(["--trusted-proxy", "proxy.example"])
