"""Debian's nginx in front of a service, run as our own process with the example
configuration of docs/nginx.conf (its ports, certificate and prefix substituted)."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from benchlib.procs import wait_for
from benchlib.servers import REPO, free_port

from .certs import self_signed

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
DOC = os.path.join(REPO, "docs", "nginx.conf")
#: The prefix the example serves under, as it is written in the file.
DOC_PREFIX = "/ipytwist/"

_WRAPPER = """\
worker_processes 1;
{user}pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/ipytwist.conf;
}}
"""


def need_nginx() -> None:
    """Skip without nginx (``apt-get install nginx-light``), except in CI."""
    if not os.path.exists(NGINX):
        if os.environ.get("CI") == "true":
            raise AssertionError("nginx is not installed (.ci/run installs nginx-light)")
        pytest.skip("nginx is not installed: apt-get install nginx-light")


def site_config(port: int, upstream: int, cert: Path, key: Path, prefix: str) -> str:
    """docs/nginx.conf, listening on ``port`` with ``cert``, in front of ``upstream``,
    serving ``prefix``: each place substituted must be in the file."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    for old, new in [
        ("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
        ("server 127.0.0.1:8888;", f"server 127.0.0.1:{upstream};"),
        ("/etc/ssl/certs/lab.example.org.pem", str(cert)),
        ("/etc/ssl/private/lab.example.org.key", str(key)),
        ("/var/log/nginx/ipytwist.access.log", str(cert.parent / "ipytwist.access.log")),
        (f"location {DOC_PREFIX} ", f"location {prefix} "),
    ]:
        assert old in text, f"docs/nginx.conf no longer has {old!r}"
        text = text.replace(old, new)
    return text


@dataclass
class Nginx:
    """An nginx listening for HTTPS on :attr:`port`, serving ``prefix``."""

    port: int
    prefix: str
    cert: Path
    tmp: Path

    @property
    def url(self) -> str:
        """The address a client opens: ``https://127.0.0.1:PORT/PREFIX/``."""
        return f"https://127.0.0.1:{self.port}{self.prefix}"

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        source: str = "127.0.0.1",
    ) -> tuple[int, http.client.HTTPResponse, bytes]:
        """One request to ``prefix + path`` from the local address ``source`` (any of
        127.0.0.0/8: clients nginx tells apart)."""
        context = ssl.create_default_context(cafile=str(self.cert))
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=context, source_address=(source, 0), timeout=30
        )
        try:
            conn.request(method, self.prefix + path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response, response.read()
        finally:
            conn.close()

    def ws_url(self, kernel_id: str, **params: str | None) -> str:
        """The kernel WebSocket through nginx (as ``Service.ws_url``)."""
        query = "&".join(f"{k}={v}" for k, v in params.items() if v is not None)
        path = f"{self.prefix}api/kernels/{kernel_id}/channels"
        return f"wss://127.0.0.1:{self.port}{path}" + ("?" + query if query else "")


def _listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"nginx exited ({proc.returncode}): {log.read_text()[-2000:]}")
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def nginx_in_front(tmp: Path, upstream: int, prefix: str, secret: str) -> Iterator[Nginx]:
    """nginx (no daemon, everything under ``tmp``) in front of 127.0.0.1:``upstream``;
    stopped after (SIGQUIT, then SIGKILL to its process group), when its logs must
    have seen requests and hold no ``secret``."""
    need_nginx()
    key, cert = self_signed(tmp)
    port = free_port()
    (tmp / "ipytwist.conf").write_text(site_config(port, upstream, cert, key, prefix))
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers that can use tmp
    (tmp / "nginx.conf").write_text(_WRAPPER.format(tmp=tmp, user=user))
    out = tmp / "nginx.out"
    with open(out, "wb") as f:
        argv = [NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")]
        proc = subprocess.Popen(
            [*argv, "-g", "daemon off;"], stdout=f, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for(lambda: _listening(port, proc, out), 30, "nginx to listen")
        yield Nginx(port, prefix, cert, tmp)
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    logged = (tmp / "ipytwist.access.log").read_text()
    assert logged.count("\n") > 1 and "?" not in logged, logged[-2000:]
    for name in ("ipytwist.access.log", "access.log", "error.log", "nginx.out"):
        path = tmp / name
        assert not path.exists() or secret not in path.read_text(), f"{secret!r} in {path}"
