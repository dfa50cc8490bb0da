"""Raw HTTP and sockets to the service from any loopback address (the service limits
failed logins per client address)."""

from __future__ import annotations

import json
import select
import socket
import uuid
from dataclasses import dataclass
from http.client import HTTPConnection
from typing import Any

import websocket
from benchlib.servers import Service


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    svc: Service,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    source: str = "127.0.0.1",
    timeout: float = 10.0,
) -> Answer:
    """One request from the loopback address ``source`` (the service limits failed
    logins per client address) to the service on 127.0.0.1."""
    conn = HTTPConnection("127.0.0.1", svc.port, timeout, (source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def loopback(n: int) -> str:
    """The ``n``-th address of 127.0.0.0/8 after 127.0.0.1 (all are this machine)."""
    return f"127.0.{(n + 2) // 250}.{(n + 2) % 250 or 1}"


def raw_socket(svc: Service, source: str = "127.0.0.1", timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", svc.port), timeout, (source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_answer(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (or ``timeout``)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (EOF or reset), without blocking."""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(65536, socket.MSG_PEEK) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def ws_from(
    svc: Service, kernel_id: str, source: str, params: dict[str, str] | None = None, **kw: Any
) -> websocket.WebSocket:
    """``websocket.create_connection`` to a kernel's channels from ``source``."""
    sock = raw_socket(svc, source)
    url = svc.ws_url(kernel_id, session_id=uuid.uuid4().hex, **(params or {}))
    try:
        return websocket.create_connection(url, socket=sock, timeout=10, **kw)
    except BaseException:
        sock.close()
        raise
