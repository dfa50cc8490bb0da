"""ipytwist as JupyterHub's single-user server, end to end: a real hub (DummyAuthenticator,
the simple spawner running ``ipytwist singleuser``, the Python configurable-http-proxy)
spawns alice's server; real clients reach it through the hub's proxy."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import requests
from benchlib.procs import pid_alive, wait_for
from support.hub import JupyterHubProcess, UserServer


def test_the_hub_spawns_alices_server_and_sees_it_ready(
    hub: JupyterHubProcess, alice: UserServer
) -> None:
    server = hub.server("alice")
    assert server["ready"] is True and server["url"] == "/user/alice/"
    assert isinstance(server["state"]["pid"], int) and pid_alive(server["state"]["pid"])
    assert "Spawning ipytwist singleuser" in hub.log() or "ipytwist singleuser" in hub.log()


def test_alices_token_reaches_her_kernels_and_no_one_elses_does(
    hub: JupyterHubProcess, alice: UserServer
) -> None:
    ok = alice.api("GET", "api/kernels")
    assert ok.status_code == 200 and isinstance(ok.json(), list)
    # The same token in the URL, as jupyter_server accepts it from API clients.
    assert requests.get(alice.base + "api/kernels", params={"token": alice.token}).ok
    bob = hub.user_token("bob")
    for token in (bob, secrets.token_hex(16)):
        refused = alice.api("GET", "api/kernels", token=token)
        assert refused.status_code in (401, 403), refused.text
        assert refused.json()["reason"] in ("Unauthorized", "Forbidden")
        assert alice.api("POST", "api/kernels", token=token).status_code in (401, 403)
    # The hub's admin service holds access:servers: it is admitted too.
    assert alice.api("GET", "api/kernels", token=hub.admin_token).ok


def test_a_cell_runs_over_the_kernel_websocket_through_the_proxy(
    hub: JupyterHubProcess, alice: UserServer
) -> None:
    started = alice.api("POST", "api/kernels", json={"name": "ipytwist"})
    assert started.status_code == 201, started.text
    kid = started.json()["id"]
    reply, messages = alice.run_cell(kid, "import os; print(os.environ['JUPYTERHUB_USER'], 6 * 7)")
    assert reply["content"]["status"] == "ok"
    text = "".join(m["content"].get("text", "") for m in messages if m["msg_type"] == "stream")
    assert text == "alice 42\n"


def test_the_notebook_page_is_served_under_the_prefix(alice: UserServer) -> None:
    page = requests.get(alice.base, params={"token": alice.token}, allow_redirects=False)
    # ?token= on a page logs the browser in, then the token leaves the address bar
    assert page.status_code == 302 and page.headers["location"] == "/user/alice/"
    cookie = page.cookies.get("ipytwist-login")
    assert cookie and "/user/alice/" in page.headers["set-cookie"]
    home = requests.get(alice.base, cookies={"ipytwist-login": cookie}, allow_redirects=False)
    assert home.status_code == 200 and "<html" in home.text
    assert "/user/alice/static/" in home.text
    scripts = [part.split('"', 1)[0] for part in home.text.split('src="')[1:] if part.endswith("")]
    assert scripts and all(s.startswith("/user/alice/static/") for s in scripts), scripts
    for src in scripts:
        assert requests.get(alice.hub.url + src).ok, src


def test_a_browser_without_credentials_is_sent_to_the_hubs_oauth(alice: UserServer) -> None:
    r = requests.get(alice.base + "kernels/abc", allow_redirects=False)
    assert r.status_code == 302
    target = urlsplit(r.headers["location"])
    assert target.path == "/hub/api/oauth2/authorize"
    query = parse_qs(target.query)
    assert query["client_id"] == ["jupyterhub-user-alice"]
    assert query["response_type"] == ["code"]
    assert query["redirect_uri"] == ["/user/alice/oauth_callback"]
    state = query["state"][0]
    assert r.cookies.get("ipytwist-oauth-state") == state  # checked on the way back (CSRF)
    # The hub answers it: to its login page, for a browser not logged in there either.
    hub_answer = requests.get(alice.hub.url + r.headers["location"], allow_redirects=False)
    assert hub_answer.status_code == 302 and "/hub/login" in hub_answer.headers["location"]
    # A callback with a forged state is refused.
    forged = requests.get(
        alice.base + "oauth_callback",
        params={"code": "x", "state": "forged"},
        cookies={"ipytwist-oauth-state": state},
        allow_redirects=False,
    )
    assert forged.status_code == 400


def test_the_hub_sees_alices_activity(hub: JupyterHubProcess, alice: UserServer) -> None:
    kid = alice.api("POST", "api/kernels", json={}).json()["id"]
    reply, _ = alice.run_cell(kid, "import time; time.sleep(2); 1")
    assert reply["content"]["status"] == "ok"
    # The cell's end, not the kernel's start 2 s before (the clocks are this machine's).
    cell_ended = datetime.now(UTC) - timedelta(seconds=0.5)

    def seen() -> datetime | None:
        stamp = datetime.fromisoformat(hub.server("alice")["last_activity"])
        return stamp if stamp >= cell_ended else None

    wait_for(seen, 15, "the hub to see alice's cell as activity", step=0.2)
