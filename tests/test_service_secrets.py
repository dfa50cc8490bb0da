"""No secret in a log file or the journal: the real service, driven with good and bad
tokens in every place a client puts one, never writes its token to its log; only a
terminal it was started on is shown the address with the token."""

from __future__ import annotations

import os
import re
import signal

import pexpect
import pytest
import requests
import websocket
from benchlib.running import running_service
from benchlib.servers import WARM_POOL, Service, twistd_command
from benchlib.wsclient import WSClient

from ipytwist.announce import masked


def drive_logins(svc: Service, kernel: str) -> None:
    """Every way a client presents a token, right and wrong (wrong ones that contain
    the right one, too), through REST, the pages, the login form and the WebSocket."""
    base, token = svc.url, svc.token
    get = {"timeout": 30, "allow_redirects": False}
    for good in (token, f"{token}x", f"x{token}"):
        requests.get(f"{base}/api/kernels", headers={"Authorization": f"token {good}"}, **get)
        requests.get(f"{base}/api/kernels", headers={"Authorization": f"Bearer {good}"}, **get)
        requests.get(f"{base}/api/kernels?token={good}", **get)
        requests.get(f"{base}/?token={good}", **get)
        requests.get(f"{base}/kernels/{kernel}?a=1&token={good}", **get)
        requests.post(f"{base}/login", data={"token": good, "next": "/"}, **get)
        requests.get(f"{base}/static/style.css", headers={"Referer": f"{base}/?token={good}"})
    ws = WSClient.connect(svc, kernel, auth="param")
    reply, _ = ws.execute("print('hello')")
    assert reply["content"]["status"] == "ok"
    ws.close()
    with pytest.raises(websocket.WebSocketBadStatusException):
        WSClient.connect(svc, kernel, auth="param", token=token + "x").close()


def test_the_log_never_holds_the_token(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running_service(tmp_path_factory, "secrets", *WARM_POOL) as svc:
        kernel = svc.start_kernel()
        drive_logins(svc, kernel)
        svc.delete_kernel(kernel)
    log = svc.log()
    assert "failed login" in log and "GET /api/kernels?token=[redacted]" in log  # (it logs)
    assert svc.token not in log
    # It says where the token is, and shows enough of it to tell two services apart.
    path = os.path.join(svc.state_dir, "server.json")
    assert f"token {masked(svc.token)} (the whole token is in {path}" in log


def test_a_terminal_is_shown_the_address_with_the_token_and_the_log_file_is_not(
    tmp_path: object,
) -> None:
    state, logfile = f"{tmp_path}/state", f"{tmp_path}/ipytwist.log"
    token = "a-token-of-thirty-two-characters"
    argv = twistd_command() + ["-n", "--pidfile=", f"--logfile={logfile}", "ipytwist"]
    argv += ["--listen", "tcp:0:interface=127.0.0.1", "--state-dir", state, "--token", token]
    p = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", timeout=60, cwd=str(tmp_path))
    try:
        p.expect(r"Open (http://127\.0\.0\.1:\d+/)\?token=(\S+)")
        url, shown = p.match.group(1), p.match.group(2)
        assert shown == token
        assert requests.get(f"{url}api/kernels?token={shown}", timeout=30).status_code == 200
    finally:
        p.kill(signal.SIGTERM)
        p.expect(pexpect.EOF)
        p.close()
    with open(logfile, encoding="utf-8") as f:
        log = f.read()
    assert re.search(r"ipytwist is serving at http://127\.0\.0\.1:\d+/", log)
    assert masked(token) == "a-to..." and "token a-to..." in log
    assert token not in log
