"""ipytwist behind a real reverse proxy: Debian's nginx, run with docs/nginx.conf over
HTTPS, in front of the real service.  Pages, REST, a cell over the kernel WebSocket and
``ipytwist console`` work through it; its forwarding headers are believed only with
``--trusted-proxy 127.0.0.1``, which the login rate limit (429), the ``Secure`` cookie
and the WebSocket's origin check show.

Clients nginx tells apart connect from different loopback addresses (127.0.0.2,
127.0.0.3); nginx itself reaches the service from 127.0.0.1."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
import websocket
from benchlib.running import running_service
from benchlib.servers import WARM_POOL, Service
from benchlib.wsclient import WSClient
from support.console import console_env
from support.nginx import Nginx, nginx_in_front
from support.service import service_fixture

#: The prefix nginx serves ipytwist under (docs/nginx.conf's own; "/" works too), and
#: the service's --base-url for it.
PREFIX = "/ipytwist/"
BASE_URL: tuple[str, ...] = () if PREFIX == "/" else ("--base-url", PREFIX)

svc = service_fixture("nginx", "--trusted-proxy", "127.0.0.1", *BASE_URL, *WARM_POOL)


@pytest.fixture(scope="module")
def front(svc: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    with nginx_in_front(tmp_path_factory.mktemp("nginx"), svc.port, PREFIX, svc.token) as proxy:
        yield proxy


def auth(svc: Service, token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"token {svc.token if token is None else token}"}


def start_kernel(front: Nginx, svc: Service) -> str:
    code, _, body = front.request("POST", "api/kernels", auth(svc), b"{}")
    assert code == 201, body
    return str(json.loads(body)["id"])


def bad_logins(front: Nginx, svc: Service, source: str, n: int, **headers: str) -> list[int]:
    return [
        front.request("GET", "api/kernels", {**auth(svc, "wrong"), **headers}, source=source)[0]
        for _ in range(n)
    ]


def test_pages_and_rest_through_nginx(svc: Service, front: Nginx) -> None:
    code, _, body = front.request("GET", "login")
    assert code == 200 and b"<form" in body
    code, r, _ = front.request("GET", f"?token={svc.token}")
    assert code == 302 and r.getheader("location") == PREFIX
    cookie = r.getheader("set-cookie") or ""
    assert "; Secure" in cookie  # the client used https, nginx says, and is believed
    code, r, body = front.request("GET", "", {"Cookie": cookie.split(";")[0]})
    assert code == 200 and b"<html" in body
    assert f"wss://127.0.0.1:{front.port}" in (r.getheader("content-security-policy") or "")
    assert front.request("GET", "static/style.css")[0] == 200
    kernel = start_kernel(front, svc)
    code, _, listed = front.request("GET", "api/kernels", auth(svc))
    assert code == 200 and kernel in [k["id"] for k in json.loads(listed)]
    assert front.request("DELETE", f"api/kernels/{kernel}", auth(svc))[0] == 204
    # Nothing the service answers names the address nginx reached it at.
    for path in ("", "kernels/nope", "api/nope"):
        code, r, body = front.request("GET", path)
        assert f":{svc.port}".encode() not in body + str(r.getheaders()).encode()


def test_a_cell_over_the_websocket_through_nginx(svc: Service, front: Nginx) -> None:
    kernel_id = start_kernel(front, svc)
    through: Any = front  # (a Service's WebSocket address, through nginx)
    through.token = svc.token
    ws = WSClient.connect(
        through, kernel_id, origin=front.origin, sslopt={"ca_certs": str(front.cert)}
    )
    try:
        reply, messages = ws.execute("print(6 * 7)")
        assert reply["content"]["status"] == "ok"
        texts = [m["content"]["text"] for m in messages if m["msg_type"] == "stream"]
        assert "".join(texts) == "42\n"
    finally:
        ws.close()
    # A page of another origin may not open it.
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        WSClient.connect(
            through, kernel_id, origin="https://evil.example", sslopt={"ca_certs": str(front.cert)}
        )
    assert refused.value.status_code == 403
    assert front.request("DELETE", f"api/kernels/{kernel_id}", auth(svc))[0] == 204


def test_the_console_through_nginx(svc: Service, front: Nginx, tmp_path: Path) -> None:
    c = pexpect.spawn(
        sys.executable,
        ["-m", "ipytwist", "console", "--no-color", front.url, "--token", svc.token],
        env=dict(console_env(str(tmp_path)), SSL_CERT_FILE=str(front.cert)),
        encoding="utf-8",
        timeout=30,
        dimensions=(50, 200),
    )
    c.expect(r"In \[1\]:")
    c.send("6*7*1000\r")
    c.expect(r"Out\[1\]: 42000")
    c.expect(r"In \[2\]:")
    c.sendeof()
    c.expect("Shut down kernel")
    c.sendline("y")
    c.expect(pexpect.EOF)
    c.close()
    assert c.exitstatus == 0


def test_the_rate_limit_sees_the_client_behind_a_trusted_nginx(svc: Service, front: Nginx) -> None:
    assert bad_logins(front, svc, "127.0.0.2", 10) == [401] * 9 + [429]
    # The same client, whatever it claims in front of what nginx appends.
    for claim in ("192.0.2.9", "not-an-address", "127.0.0.3"):
        assert bad_logins(front, svc, "127.0.0.2", 1, **{"X-Forwarded-For": claim}) == [429]
    # Another client behind the same nginx is not locked out; a valid token always passes.
    assert bad_logins(front, svc, "127.0.0.3", 1) == [401]
    assert front.request("GET", "api/kernels", auth(svc), source="127.0.0.2")[0] == 200
    assert '"127.0.0.2" - - ' in svc.log()  # (the access log names the client too)


def test_without_trusted_proxy_nginx_is_the_client(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with running_service(tmp_path_factory, "nginx-untrusted", *BASE_URL) as alone:
        tmp = tmp_path_factory.mktemp("nginx-untrusted")
        with nginx_in_front(tmp, alone.port, PREFIX, alone.token) as front:
            assert bad_logins(front, alone, "127.0.0.2", 10) == [401] * 9 + [429]
            # Every client behind nginx shares its address, and its lockout.
            assert bad_logins(front, alone, "127.0.0.3", 1) == [429]
            code, r, _ = front.request("GET", f"?token={alone.token}", source="127.0.0.4")
            assert code == 302 and "; Secure" not in (r.getheader("set-cookie") or "")
            kernel = start_kernel(front, alone)
            through: Any = front
            through.token = alone.token
            # The page's origin is not the host and scheme nginx connected with.
            with pytest.raises(websocket.WebSocketBadStatusException) as refused:
                WSClient.connect(
                    through, kernel, origin=front.origin, sslopt={"ca_certs": str(front.cert)}
                )
            assert refused.value.status_code == 403
