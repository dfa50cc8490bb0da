"""HTTPS and WSS: an ssl: endpoint for --listen."""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
import subprocess
import sys
import uuid
from typing import Any

import pexpect
import requests
import websockets
from benchlib.running import running_service
from support.certs import self_signed
from support.console import console_env


def test_ssl_endpoint_serves_https_secure_cookies_and_wss(tmp_path_factory: Any) -> None:
    """With --listen ssl:..., the service announces an https URL, the REST API works over
    TLS, the login cookie is marked Secure, and kernel WebSockets work over wss."""
    certs = tmp_path_factory.mktemp("certs")
    key, cert = self_signed(certs)
    listen = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    with running_service(tmp_path_factory, "tls", "--listen", listen) as svc:
        assert svc.info["url"].startswith("https://127.0.0.1:")
        base = f"https://127.0.0.1:{svc.port}"
        r = requests.get(base + "/api", headers=svc.headers(), verify=str(cert), timeout=30)
        assert r.status_code == 200
        r = requests.get(
            base + f"/?token={svc.token}", verify=str(cert), allow_redirects=False, timeout=30
        )
        assert r.status_code == 302
        cookie = r.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie
        r = requests.post(
            base + "/api/kernels", headers=svc.headers(), json={}, verify=str(cert), timeout=30
        )
        assert r.status_code == 201
        kernel_id = r.json()["id"]
        context = ssl.create_default_context(cafile=str(cert))
        assert asyncio.run(wss_execute(base, kernel_id, svc.token, context)) == "42\n"


async def wss_execute(base: str, kernel_id: str, token: str, context: ssl.SSLContext) -> str:
    url = base.replace("https", "wss") + f"/api/kernels/{kernel_id}/channels?session_id=tls"
    headers = {"Authorization": f"token {token}"}
    async with websockets.connect(url, ssl=context, additional_headers=headers) as ws:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "session": "tls",
            "username": "test",
            "version": "5.4",
            "date": "",
        }
        await ws.send(
            json.dumps(
                {
                    "header": header,
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": "print(6 * 7)"},
                    "channel": "shell",
                }
            )
        )
        text = ""
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if msg["msg_type"] == "stream":
                text += msg["content"]["text"]
            if (
                msg["msg_type"] == "status"
                and msg["parent_header"].get("msg_id") == msg_id
                and msg["content"]["execution_state"] == "idle"
            ):
                return text


def test_console_over_tls_verifies_the_certificate(tmp_path_factory: Any) -> None:
    """`ipytwist kernels/console https://...`: a certificate that does not verify is one
    line and a failure; --insecure goes on with a warning; a trusted one just works."""
    certs = tmp_path_factory.mktemp("certs")
    key, cert = self_signed(certs)
    home = str(tmp_path_factory.mktemp("home"))
    listen = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    with running_service(tmp_path_factory, "tls-console", "--listen", listen) as svc:
        base = f"https://127.0.0.1:{svc.port}/"
        env = console_env(home)
        cli = [sys.executable, "-m", "ipytwist"]
        run = functools.partial(subprocess.run, capture_output=True, text=True, timeout=60)
        out = run([*cli, "kernels", base, "--token", svc.token], env=env)
        assert out.returncode == 1 and out.stdout == ""
        assert len(out.stderr.splitlines()) == 1 and "does not verify" in out.stderr
        out = run([*cli, "kernels", base, "--token", svc.token, "--insecure"], env=env)
        assert out.returncode == 0 and out.stdout.startswith("No kernels")
        assert "not checked" in out.stderr
        c = pexpect.spawn(
            sys.executable,
            ["-m", "ipytwist", "console", "--no-color", base, "--token", svc.token],
            env=dict(env, SSL_CERT_FILE=str(cert)),
            encoding="utf-8",
            timeout=20,
        )
        c.expect(r"In \[1\]:")
        c.send("6*7\r")
        c.expect(r"Out\[1\]: 42")
        c.expect(r"In \[2\]:")
        c.sendeof()
        c.expect("Shut down kernel")
        c.sendline("y")
        c.expect(pexpect.EOF)
