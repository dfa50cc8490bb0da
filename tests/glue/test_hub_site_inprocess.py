"""The site with the hub as its authenticator, in process on a fake hub and the fake
clock: tokens checked at the hub (cached, bounded, refused when the hub misbehaves, one
log line each, the site serving on), and the OAuth login with its state (CSRF) check."""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from glue_fakes import Browser, HostEnv, make_host
from hubfakes import ADMIN, ALICE, API, BOB, USERS, FakeHub, hub_env
from twisted.internet.defer import Deferred
from twisted.logger import capturedLogs

from ipytwist.hub.api import TIMEOUT, HubApi
from ipytwist.hub.auth import CACHE_SECONDS, MAX_LOOKUPS, STATE_SECONDS, HubAuthenticator
from ipytwist.web.auth import MAX_FAILURES
from ipytwist.web.site import make_site

PREFIX = "/user/alice/"


@pytest.fixture
def hub_site(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[HostEnv, FakeHub, Browser]:
    env = make_host(tmp_path, monkeypatch, base_url=PREFIX)
    hub = FakeHub()
    api = HubApi(hub.fetch, env.clock, API, "server-api-token")
    auth = HubAuthenticator(hub_env(), api, env.clock)
    return env, hub, Browser(make_site(env.host, auth, env.clock, env.sockets))


def get(browser: Browser, path: str, token: str | None = None, **kw: Any) -> Any:
    return browser.request("GET", PREFIX + path, token=token, **kw)


def test_only_holders_of_this_servers_scope_get_in(hub_site: Any) -> None:
    _, hub, browser = hub_site
    assert get(browser, "api/kernels", ALICE).code == 200
    assert get(browser, "api/kernels", ADMIN).code == 200  # access:servers
    assert get(browser, "api/kernels", BOB).code == 401
    assert get(browser, "api/kernels", "made-up").code == 401
    assert get(browser, f"api/kernels?token={ALICE}").code == 200
    # the service's own token means nothing under a hub
    assert get(browser, "api/kernels", hub_site[2].site.resource.auth.token).code == 401
    assert hub.user_calls() == 5


def test_the_hubs_answer_is_cached_for_a_minute(hub_site: Any) -> None:
    env, hub, browser = hub_site
    for _ in range(5):
        assert get(browser, "api/kernels", ALICE).code == 200
        assert get(browser, "api/kernels", BOB).code == 401
    assert hub.user_calls() == 2
    env.clock.advance(CACHE_SECONDS)
    hub.users.pop(ALICE)  # the token was revoked meanwhile
    assert get(browser, "api/kernels", ALICE).code == 401
    assert hub.user_calls() == 3


@pytest.mark.parametrize(
    ("answer", "said"),
    [((500, b"oops"), "answered 500"), ((200, b"<html>"), "not JSON"), (None, "in time")],
)
def test_a_misbehaving_hub_refuses_with_one_line_and_the_site_serves_on(
    hub_site: Any, answer: tuple[int, bytes] | None, said: str
) -> None:
    env, hub, browser = hub_site
    silent: Deferred[Any] = Deferred()
    hub.override = lambda method, url: silent if answer is None else answer
    with capturedLogs() as events:
        _, transport = browser.send("GET", PREFIX + "api/kernels", token=ALICE)
        env.clock.advance(TIMEOUT)
    assert transport.value().startswith(b"HTTP/1.1 401 ")
    lines = [e for e in events if "could not check a token" in str(e.get("log_format"))]
    assert len(lines) == 1 and said in lines[0]["why"]
    assert ALICE not in repr(events) and "server-api-token" not in repr(events)
    if answer is not None:  # more than the failed logins allowed: not held against alice
        for _ in range(2 * MAX_FAILURES):
            assert get(browser, "api/kernels", ALICE).code == 401
    hub.override = None  # the hub is back: nothing was cached from its failure
    assert get(browser, "api/kernels", ALICE).code == 200
    assert get(browser, "", ALICE).code == 200  # a page too (the login cookie)


def test_made_up_tokens_are_rate_limited_before_the_hub_is_asked(hub_site: Any) -> None:
    _, hub, browser = hub_site
    for i in range(MAX_FAILURES - 1):
        assert get(browser, "api/kernels", f"guess-{i}").code == 401
    assert get(browser, "api/kernels", "guess-last").code == 429  # as without a hub
    for i in range(20):
        assert get(browser, "api/kernels", f"guess-more-{i}").code == 429
    assert hub.user_calls() == MAX_FAILURES  # the hub was not asked again
    # another address, and a valid token, are not held up
    other = Browser(browser.site, peer="127.0.0.2")
    assert get(other, "api/kernels", ALICE).code == 200


def test_lookups_at_the_hub_are_bounded(hub_site: Any) -> None:
    env, hub, browser = hub_site
    hub.override = lambda method, url: Deferred()  # the hub is stuck
    peers = [Browser(browser.site, peer=f"10.0.{i // 200}.{i % 200}") for i in range(100)]
    for i, peer in enumerate(peers):
        peer.send("GET", PREFIX + "api/kernels", token=f"token-{i}")
    assert hub.user_calls() == MAX_LOOKUPS  # the rest were refused at once
    env.clock.advance(TIMEOUT)  # every lookup gives up
    hub.override = None
    assert get(browser, "api/kernels", ALICE).code == 200


def test_concurrent_requests_with_one_token_ask_the_hub_once(hub_site: Any) -> None:
    env, hub, browser = hub_site
    pending: Deferred[Any] = Deferred()
    hub.override = lambda method, url: pending
    sent = [browser.send("GET", PREFIX + "api/kernels", token=ALICE)[1] for _ in range(5)]
    assert hub.user_calls() == 1 and all(t.value() == b"" for t in sent)
    pending.callback((200, b'{"name": "alice", "scopes": ["access:servers!user=alice"]}'))
    assert all(t.value().startswith(b"HTTP/1.1 200 ") for t in sent)


# -- the OAuth login --------------------------------------------------------------------


def start_login(browser: Browser, path: str = "kernels/abc") -> tuple[str, str]:
    """A page without credentials: (the state, the state cookie) of its redirect."""
    r = get(browser, path)
    assert r.code == 302
    target = urlsplit(r.header("location"))
    assert target.path == "/hub/api/oauth2/authorize"
    query = parse_qs(target.query)
    assert query["client_id"] == ["jupyterhub-user-alice"]
    assert query["redirect_uri"] == ["/user/alice/oauth_callback"]
    assert query["response_type"] == ["code"]
    (cookie,) = [c for c in r.headers["set-cookie"] if c.startswith("ipytwist-oauth-state=")]
    assert "Path=/user/alice/" in cookie and "HttpOnly" in cookie
    return query["state"][0], cookie.split(";")[0]


def callback(browser: Browser, state: str, cookie: str, code: str = "the-code") -> Any:
    return get(browser, f"oauth_callback?code={code}&state={state}", headers={"Cookie": cookie})


def test_the_oauth_login_ends_in_our_cookie_and_where_it_was_going(hub_site: Any) -> None:
    _, hub, browser = hub_site
    state, cookie = start_login(browser)
    hub.codes["the-code"] = ALICE
    r = callback(browser, state, cookie)
    assert r.code == 302 and r.header("location") == PREFIX + "kernels/abc"
    (login,) = [c for c in r.headers["set-cookie"] if c.startswith("ipytwist-login=")]
    assert "Path=/user/alice/" in login and ALICE not in login
    page = get(browser, "", headers={"Cookie": login.split(";")[0]})
    assert page.code == 200 and b"<html" in page.body
    (exchange,) = [c for c in hub.calls if c[1].endswith("/oauth2/token")]
    form = parse_qs((exchange[3] or b"").decode())
    assert form["grant_type"] == ["authorization_code"] and form["code"] == ["the-code"]
    assert form["redirect_uri"] == ["/user/alice/oauth_callback"]
    # the state is used up: the same callback again is refused
    hub.codes["the-code"] = ALICE
    assert callback(browser, state, cookie).code == 400


@pytest.mark.parametrize("forgery", ["no cookie", "other cookie", "other state", "expired"])
def test_a_callback_whose_state_does_not_match_is_refused(hub_site: Any, forgery: str) -> None:
    env, hub, browser = hub_site
    state, cookie = start_login(browser)
    other_state, other_cookie = start_login(browser)
    hub.codes["the-code"] = ALICE
    if forgery == "no cookie":
        cookie = "x=y"
    elif forgery == "other cookie":
        cookie = other_cookie
    elif forgery == "other state":
        state = "made-up-state"
    else:
        env.clock.advance(STATE_SECONDS)
    with capturedLogs() as events:
        r = callback(browser, state, cookie)
    assert r.code == 400 and not any(
        c.startswith("ipytwist-login=") for c in r.headers.get("set-cookie", [])
    )
    assert len([e for e in events if "OAuth" in str(e.get("log_format"))]) == 1
    assert not [c for c in hub.calls if c[1].endswith("/oauth2/token")]  # never asked


def test_an_oauth_login_without_this_servers_scope_is_refused(hub_site: Any) -> None:
    _, hub, browser = hub_site
    state, cookie = start_login(browser)
    hub.codes["the-code"] = BOB
    r = callback(browser, state, cookie)
    assert r.code == 403 and not any(
        c.startswith("ipytwist-login=") for c in r.headers.get("set-cookie", [])
    )


def test_a_hub_failing_the_code_exchange_is_a_502(hub_site: Any) -> None:
    _, hub, browser = hub_site
    state, cookie = start_login(browser)
    r = callback(browser, state, cookie, code="unknown")  # the hub answers 400
    assert r.code == 502


def test_next_paths_stay_under_the_prefix(hub_site: Any) -> None:
    _, hub, browser = hub_site
    r = get(browser, "login?next=//evil.example/x")
    state = parse_qs(urlsplit(r.header("location")).query)["state"][0]
    cookie = [c for c in r.headers["set-cookie"] if c.startswith("ipytwist-oauth-state=")][0]
    hub.codes["the-code"] = ALICE
    done = callback(browser, state, cookie.split(";")[0])
    assert done.code == 302 and done.header("location") == PREFIX


# -- login cookies follow their tokens -----------------------------------------------------


def oauth_login(browser: Browser, hub: FakeHub, token: str = ALICE) -> str:
    """Log in through the OAuth callback; the login cookie (``name=value``)."""
    state, cookie = start_login(browser)
    hub.codes["the-code"] = token
    r = callback(browser, state, cookie)
    assert r.code == 302
    (login,) = [c for c in r.headers["set-cookie"] if c.startswith("ipytwist-login=")]
    return login.split(";")[0]


def test_a_login_cookie_holds_only_while_its_token_does(hub_site: Any) -> None:
    env, hub, browser = hub_site
    for login in (oauth_login(browser, hub), None):
        hub.users[ALICE] = dict(USERS[ALICE])
        if login is None:  # the same through ?token= on a page
            r = get(browser, f"?token={ALICE}")
            assert r.code == 302 and r.header("location") == PREFIX
            login = [c for c in r.headers["set-cookie"] if c.startswith("ipytwist-login=")][0]
            login = login.split(";")[0]
        assert get(browser, "api/kernels", headers={"Cookie": login}).code == 200
        asked = hub.user_calls()
        env.clock.advance(CACHE_SECONDS - 1)
        assert get(browser, "api/kernels", headers={"Cookie": login}).code == 200
        assert hub.user_calls() == asked  # cached
        env.clock.advance(1)
        hub.users.pop(ALICE)  # the hub revoked the token (or alice's access)
        assert get(browser, "api/kernels", headers={"Cookie": login}).code == 401
        page = get(browser, "kernels/abc", headers={"Cookie": login})
        assert page.code == 302 and "/hub/api/oauth2/authorize" in page.header("location")
        env.clock.advance(CACHE_SECONDS)


def test_while_the_hub_is_down_a_login_stays_and_new_tokens_are_refused(hub_site: Any) -> None:
    env, hub, browser = hub_site
    login = oauth_login(browser, hub)
    env.clock.advance(CACHE_SECONDS)
    hub.override = lambda method, url: (503, b"restarting")
    assert get(browser, "api/kernels", headers={"Cookie": login}).code == 200
    assert get(browser, "api/kernels", ALICE).code == 401  # a token alone: not known now
    hub.override = None
    assert get(browser, "api/kernels", ALICE).code == 200


def test_the_access_log_shows_no_oauth_code(hub_site: Any) -> None:
    env, hub, browser = hub_site
    state, cookie = start_login(browser)
    hub.codes["secret-code-1"] = ALICE
    lines: list[str] = []
    site = browser.site
    site._logFormatter, formatter = (
        lambda ts, request: lines.append(formatter(ts, request)) or "",
        site._logFormatter,
    )
    site.logFile = io.StringIO()  # the access log, written through the formatter
    assert callback(browser, state, cookie, code="secret-code-1").code == 302
    (line,) = lines
    assert "oauth_callback?code=[redacted]&state=" in line and "secret-code-1" not in line
