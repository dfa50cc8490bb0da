"""``twistd ipytwist --base-url /user/alice/`` end to end, with real clients: REST with the
token, a cell over the kernel WebSocket (``websockets``), the pages and their assets,
``ipytwist console`` given the prefixed URL (or reading it from server.json), and
nothing served outside the prefix."""

from __future__ import annotations

import json
import re
import sys
import uuid
from contextlib import closing
from typing import Any

import pexpect
import pytest
import requests
from benchlib.servers import JupyterServer
from benchlib.wsclient import WSClient
from support.console import console_env
from support.prefix import BASE, PrefixedService, prefixed_service_fixture
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

svc = prefixed_service_fixture()


def ws_execute(svc: PrefixedService, kernel_id: str, code: str) -> str:
    """Run ``code`` over the kernel WebSocket below the prefix; its stdout."""
    headers = {"Authorization": f"token {svc.token}"}
    url = svc.ws_url(kernel_id, session_id="prefix")
    with connect(url, additional_headers=headers, open_timeout=30) as ws:
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": "execute_request", "session": "prefix"}
        header.update(username="test", version="5.4", date="")
        content = {"code": code, "silent": False}
        ws.send(json.dumps({"header": header, "parent_header": {}, "metadata": {},
                            "content": content, "channel": "shell"}))  # fmt: skip
        text = ""
        while True:
            msg = json.loads(ws.recv(timeout=60))
            mine = msg["parent_header"].get("msg_id") == msg_id
            if mine and msg["msg_type"] == "stream":
                text += msg["content"]["text"]
            if mine and msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return text


def test_server_json_names_the_prefixed_url(svc: PrefixedService) -> None:
    assert svc.info["url"] == f"{svc.root}{BASE}"
    assert f"ipytwist is serving at {svc.root}{BASE}" in svc.log()


def test_rest_and_a_cell_over_the_websocket_below_the_prefix(svc: PrefixedService) -> None:
    kid = svc.start_kernel()
    r = svc.api("GET", "/api/kernels")
    assert r.status_code == 200 and kid in [k["id"] for k in r.json()]
    assert ws_execute(svc, kid, "print(6 * 7)") == "42\n"
    svc.delete_kernel(kid)


@pytest.mark.parametrize("path", ["/api/kernels", "/", "/static/style.css", "/login",
                                  "/user/bob/api/kernels", "/user/alicex/api/kernels"])  # fmt: skip
def test_nothing_outside_the_prefix_is_served(svc: PrefixedService, path: str) -> None:
    before = svc.api("GET", "/api/kernels").json()
    for method in ("GET", "POST"):
        r = requests.request(
            method, svc.root + path, headers=svc.headers(), json={}, timeout=30,
            allow_redirects=False,
        )  # fmt: skip
        assert r.status_code == 404, (method, path, r.status_code)
        assert "set-cookie" not in r.headers
    assert svc.api("GET", "/api/kernels").json() == before


def test_a_kernel_websocket_outside_the_prefix_is_refused(svc: PrefixedService) -> None:
    kid = svc.start_kernel()
    try:
        for path in (f"/api/kernels/{kid}/channels", f"/user/bob/api/kernels/{kid}/channels"):
            url = f"ws://127.0.0.1:{svc.port}{path}?session_id=out"
            with pytest.raises(InvalidStatus) as refused:
                connect(url, additional_headers=svc.headers(), open_timeout=30)
            assert refused.value.response.status_code == 404, path
        assert ws_execute(svc, kid, "print('inside')") == "inside\n"
    finally:
        svc.delete_kernel(kid)


def test_the_pages_log_in_and_load_their_assets_below_the_prefix(svc: PrefixedService) -> None:
    session = requests.Session()
    bare = session.get(svc.url, allow_redirects=False, timeout=30)
    assert bare.status_code in (301, 302) and bare.headers["location"] == BASE
    r = session.get(f"{svc.url}/kernels/x", allow_redirects=False, timeout=30)
    assert r.status_code == 302 and r.headers["location"].startswith(f"{BASE}login?next=")
    r = session.get(f"{svc.url}/?token={svc.token}", allow_redirects=False, timeout=30)
    assert r.status_code == 302 and r.headers["location"] == BASE
    assert f"Path={BASE}" in r.headers["set-cookie"]
    home = session.get(svc.url + "/", timeout=30)
    assert home.status_code == 200 and f'data-base-url="{BASE}"' in home.text
    assets = re.findall(r'(?:href|src)="([^"]*/static/[^"]+)"', home.text)
    assert len(assets) >= 3, assets
    for asset in assets:
        assert asset.startswith(BASE), asset
        got = requests.get(svc.root + asset.replace("&amp;", "&"), timeout=30)
        assert got.status_code == 200 and got.content, asset


def test_the_console_given_the_prefixed_url(svc: PrefixedService, tmp_path: Any) -> None:
    kid = svc.start_kernel()
    try:
        for args in ([f"{svc.url}/", "--token", svc.token], ["--state-dir", svc.state_dir]):
            c = pexpect.spawn(
                sys.executable,
                ["-m", "ipytwist", "console", "--no-color", *args, "--kernel", kid],
                env=console_env(str(tmp_path)),
                encoding="utf-8",
                timeout=30,
                dimensions=(50, 200),
            )
            c.expect(r"In \[\d+\]:")
            c.send("print('from', 'the console')\r")
            c.expect("from the console")
            c.expect(r"In \[\d+\]:")
            c.sendeof()
            c.expect(pexpect.EOF)
            c.close()
            assert c.exitstatus == 0, args
    finally:
        svc.delete_kernel(kid)


def test_jupyter_servers_gateway_client_at_the_prefixed_url(
    svc: PrefixedService, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """JupyterLab's back end with ``--gateway-url`` naming the prefix: its kernels are
    ours, and a cell runs through its kernel WebSocket."""
    js = JupyterServer(
        str(tmp_path_factory.mktemp("prefix-gateway")),
        f"--gateway-url={svc.url}/",
        f"--GatewayClient.auth_token={svc.token}",
    )
    try:
        js.start()
        r = js.api("POST", "/api/kernels", json={"name": "ipytwist"}, timeout=60)
        assert r.status_code == 201, r.text
        kid = r.json()["id"]
        assert kid in [k["id"] for k in svc.api("GET", "/api/kernels").json()]
        with closing(WSClient.connect(js, kid, timeout=30)) as chan:
            reply, got = chan.execute("print(6 * 7)", timeout=60)
        assert reply["content"]["status"] == "ok"
        streams = [m["content"]["text"] for m in got if m["msg_type"] == "stream"]
        assert "".join(streams) == "42\n"
        assert js.api("DELETE", f"/api/kernels/{kid}", timeout=60).status_code == 204
    finally:
        js.stop()
