"""The site in process: REST, auth and the resource tree, over a real HTTP channel of
``make_site`` on a ``StringTransport``, with a KernelHost whose workers are fakes
and whose reactor is a ``MemoryReactorClock`` (no process, no socket, no sleep)."""

from __future__ import annotations

import os
import signal
import stat
import uuid
from typing import Any
from urllib.parse import quote

import pytest
from glue_fakes import (
    TOKEN,
    Browser,
    HostEnv,
    Requester,
    Response,
    make_site_env,
    parse_response,
)
from twisted.internet.defer import Deferred

from ipytwist.web.guard import MAX_BODY_BYTES
from ipytwist.wire import new_message


@pytest.fixture
def web(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[HostEnv, Browser]:
    env, _, site = make_site_env(tmp_path, monkeypatch)
    return env, Browser(site)


def assert_json_error(response: Any, code: int, reason: str) -> None:
    assert response.code == code, response
    assert response.header("content-type") == "application/json"
    body = response.json()
    assert body["reason"] == reason, body
    assert isinstance(body["message"], str) and body["message"]


# -- /api/kernels ----------------------------------------------------------------------


def test_create_list_get_and_delete_a_kernel(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    created = browser.request("POST", "/api/kernels", body=b"{}")
    assert created.code == 201
    model = created.json()
    kernel_id = model["id"]
    assert uuid.UUID(kernel_id)
    assert created.header("location") == f"/api/kernels/{kernel_id}"
    assert model["name"] == "ipytwist"
    assert model["execution_state"] == "starting"
    assert model["connections"] == 0
    assert len(env.provisioner.workers) == 1
    connection_file = os.path.join(env.state_dir, f"kernel-{kernel_id}.json")
    assert os.path.exists(connection_file)  # written by the ZeroMQ transport
    assert stat.S_IMODE(os.stat(connection_file).st_mode) == 0o600

    env.provisioner.report_ready()
    listed = browser.request("GET", "/api/kernels")
    assert listed.code == 200
    assert [(k["id"], k["execution_state"]) for k in listed.json()] == [(kernel_id, "idle")]
    one = browser.request("GET", f"/api/kernels/{kernel_id}")
    assert one.code == 200 and one.json()["id"] == kernel_id
    assert one.header("cache-control") == "no-store"

    deleted = browser.request("DELETE", f"/api/kernels/{kernel_id}")
    assert deleted.code == 204 and deleted.body == b""
    assert env.provisioner.workers[0].stopped
    assert env.host.get(kernel_id) is None
    assert not os.path.exists(connection_file)
    assert_json_error(browser.request("GET", f"/api/kernels/{kernel_id}"), 404, "Not Found")
    assert browser.request("GET", "/api/kernels").json() == []


def test_delete_answers_once_the_worker_has_stopped(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    hk = env.start_kernel()
    worker = env.provisioner.workers[0]
    worker.stop_result = Deferred()
    _, transport = browser.send("DELETE", f"/api/kernels/{hk.id}")
    assert worker.stopped
    assert b"HTTP/1.1" not in transport.value()  # not answered yet
    worker.stop_result.callback("exited with status 0")
    assert transport.value().startswith(b"HTTP/1.1 204 ")


def test_create_by_kernelspec_name(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    for name in ("ipytwist", "python3"):
        r = browser.request("POST", "/api/kernels", body=b'{"name": "%s"}' % name.encode())
        assert r.code == 201, (name, r)
    assert_json_error(
        browser.request("POST", "/api/kernels", body=b'{"name": "julia"}'), 404, "Not Found"
    )
    assert len(env.host.kernels) == 2


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"name": 5}',
        b"\xff\xfe{}",
        b"[" * 50_000,  # nesting deep enough for RecursionError in json
    ],
    ids=["garbage", "array", "name-not-str", "not-utf8", "deep-nesting"],
)
def test_a_bad_body_is_a_400_and_starts_nothing(web: tuple[HostEnv, Browser], body: bytes) -> None:
    env, browser = web
    assert_json_error(browser.request("POST", "/api/kernels", body=body), 400, "Bad Request")
    assert env.provisioner.workers == [] and env.host.kernels == {}


def test_max_kernels_is_a_403_resource_limit(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, _, site = make_site_env(tmp_path, monkeypatch, max_kernels=1)
    browser = Browser(site)
    assert browser.request("POST", "/api/kernels").code == 201
    assert_json_error(browser.request("POST", "/api/kernels"), 403, "Resource Limit")
    assert len(env.host.kernels) == 1


def test_interrupt_signals_the_worker_running_a_cell(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    hk = env.start_kernel()
    worker = env.provisioner.workers[0]
    # Nothing running: answered, nothing to signal.
    r = browser.request("POST", f"/api/kernels/{hk.id}/interrupt")
    assert r.code == 204 and worker.signals == []
    hk.kernel.handle("shell", new_message("execute_request", {"code": "1"}, "s"), Requester())
    assert worker.sent[-1]["req"] == "execute"
    r = browser.request("POST", f"/api/kernels/{hk.id}/interrupt")
    assert r.code == 204
    assert worker.signals == [signal.SIGINT]


def restart_and_get_ready(env: HostEnv, browser: Browser) -> tuple[Any, Response | None]:
    hk = env.start_kernel()
    _, transport = browser.send("POST", f"/api/kernels/{hk.id}/restart")
    assert env.provisioner.workers[0].stopped
    assert len(env.provisioner.workers) == 2
    assert b"HTTP/1.1" not in transport.value()  # not before the new interpreter is up
    env.provisioner.report_ready()
    return hk, parse_response(transport.value())


def test_restart_answers_when_the_new_interpreter_is_ready(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    hk, r = restart_and_get_ready(env, browser)
    assert r is not None and r.complete and r.code == 200
    assert r.json()["id"] == hk.id
    assert hk.kernel.execution_state == "idle"


def test_the_restart_reply_shows_the_kernel_idle(web: tuple[HostEnv, Browser]) -> None:
    """The reply's model is taken once the kernel is idle again (during the refactor the
    ready waiters once fired before the state changed, and the reply said 'restarting')."""
    env, browser = web
    _, r = restart_and_get_ready(env, browser)
    assert r is not None and r.json()["execution_state"] == "idle"


@pytest.mark.parametrize(
    "method, path, code",
    [
        ("PUT", "/api/kernels", 405),
        ("PATCH", "/api/kernels/{id}", 405),
        ("GET", "/api/kernels/{id}/interrupt", 405),
        ("GET", "/api/kernels/{id}/restart", 405),
        ("POST", "/api/kernelspecs", 405),
        ("GET", "/api/kernelspecs/ipytwist/more", 404),
        ("GET", "/api/kernelspecs/julia", 404),
        ("GET", "/api/kernels/not-a-uuid", 404),
        ("POST", "/api/kernels/not-a-uuid/interrupt", 404),
        ("GET", f"/api/kernels/{uuid.uuid4()}", 404),
        ("GET", "/api/kernels/{id}/nothing", 404),
        ("GET", "/api/nothing", 404),
        ("POST", "/api/status", 404),
    ],
)
def test_unknown_routes_and_methods_are_json_errors(
    web: tuple[HostEnv, Browser], method: str, path: str, code: int
) -> None:
    env, browser = web
    hk = env.start_kernel()
    r = browser.request(method, path.format(id=hk.id))
    reason = {404: "Not Found", 405: "Method Not Allowed"}[code]
    assert_json_error(r, code, reason)


def test_kernelspecs_version_and_status(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    specs = browser.request("GET", "/api/kernelspecs").json()
    assert specs["default"] == "ipytwist"
    spec = specs["kernelspecs"]["ipytwist"]
    assert spec["spec"]["language"] == "python"
    assert "{connection_file}" in spec["spec"]["argv"]
    assert browser.request("GET", "/api/kernelspecs/ipytwist").json() == spec
    assert isinstance(browser.request("GET", "/api").json()["version"], str)

    status = browser.request("GET", "/api/status").json()
    assert (status["kernels"], status["connections"], status["warm_kernels"]) == (0, 0, 0)
    env.start_kernel()
    env.start_kernel()
    status = browser.request("GET", "/api/status").json()
    assert status["kernels"] == 2
    for key in ("started", "last_activity"):
        assert status[key].endswith("Z") and "T" in status[key]


def test_transcript_endpoints(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    hk = env.start_kernel()
    base = f"/api/kernels/{hk.id}/transcript"
    body = browser.request("GET", base).json()
    assert body["kernel"]["id"] == hk.id
    nb = browser.request("GET", base + ".ipynb")
    assert nb.code == 200 and nb.json()["nbformat"] == 4
    assert f"ipytwist-{hk.id[:8]}.ipynb" in (nb.header("content-disposition") or "")
    assert browser.request("DELETE", base).code == 204
    assert_json_error(browser.request("DELETE", base + ".ipynb"), 405, "Method Not Allowed")
    assert_json_error(browser.request("GET", base + "/cells/nope/output"), 404, "Not Found")


# -- bodies refused from their headers ----------------------------------------------------


def test_a_body_over_the_limit_is_refused_before_anything_starts(
    web: tuple[HostEnv, Browser],
) -> None:
    env, browser = web
    _, transport = browser.send("POST", "/api/kernels", content_length=MAX_BODY_BYTES + 1)
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert transport.disconnecting
    assert env.provisioner.workers == []


def test_a_body_without_credentials_is_refused_with_401(web: tuple[HostEnv, Browser]) -> None:
    env, browser = web
    _, transport = browser.send("POST", "/api/kernels", body=b"{}", token=None)
    assert transport.value().startswith(b"HTTP/1.1 401 ")
    assert env.provisioner.workers == []


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


def login_cookie(response: Any) -> str:
    (cookie,) = [c for c in response.headers.get("set-cookie", []) if c.startswith("ipytwist-")]
    return cookie


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
