"""Fakes shared by the in-process glue tests: workers that start without processes,
a KernelHost on a fake reactor, and a real HTTP channel of the site over a
``StringTransport`` (no sockets, no subprocess, no sleeps)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from support.fakes import FakeProvisioner
from support.fakes import Requester as Requester  # (re-exported for the glue tests)
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock, StringTransport

import ipytwist.zmq.transport as zmq_transport
from ipytwist.config import Config
from ipytwist.host import KernelHost
from ipytwist.web.auth import Authenticator
from ipytwist.web.site import make_site
from ipytwist.web.transport import WebSocketTransport
from ipytwist.zmq import ZmqTransport

TOKEN = "glue-test-token"


class FakeChannels:
    """Stands in for a kernel's ZeroMQ channels, so no socket is bound."""

    def __init__(
        self,
        kernel: Any,
        connection: dict[str, Any],
        reactor: Any,
        factory: Any = None,
        max_message_bytes: int = 0,
    ) -> None:
        self.kernel = kernel
        self.connection = connection
        self.max_message_bytes = max_message_bytes
        self.closed = False
        self.clients = 0
        #: What the next ask for requests in flight is answered with.
        self.in_flight: list[Any] = []

    def connection_count(self) -> int:
        return self.clients

    def requests_in_flight(self) -> Deferred[list[Any]]:
        return succeed(self.in_flight)

    def close(self) -> None:
        self.closed = True


class _FakeContext:
    def set(self, option: int, value: int) -> None:
        pass


class FakeZmqFactory:
    """Stands in for txzmq's factory, so no ZeroMQ context is left behind."""

    def __init__(self) -> None:
        self.context = _FakeContext()
        self.reactor: Any = None

    def shutdown(self) -> None:
        pass


def no_zmq_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's real ZeroMQ transport, but its kernels get FakeChannels instead of
    five bound sockets, and no ZeroMQ context is made."""
    monkeypatch.setattr(zmq_transport, "ZmqChannels", FakeChannels)
    monkeypatch.setattr(zmq_transport, "ZmqFactory", FakeZmqFactory)


@dataclass
class HostEnv:
    host: KernelHost
    provisioner: FakeProvisioner
    clock: MemoryReactorClock
    state_dir: str
    sockets: WebSocketTransport

    def start_kernel(self) -> Any:
        """A hosted kernel whose fake worker has said it is ready."""
        hk = self.host.start_kernel()
        self.provisioner.report_ready()
        return hk


def make_host(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> HostEnv:
    no_zmq_sockets(monkeypatch)
    clock = MemoryReactorClock()
    provisioner = FakeProvisioner()
    state_dir = str(tmp_path / "state")
    config = Config(state_dir, **kw)
    sockets = WebSocketTransport(clock, config)
    transports = [ZmqTransport(clock, config), sockets]
    host = KernelHost(clock, config, provisioner=provisioner, transports=transports)
    host.startService()
    return HostEnv(host, provisioner, clock, state_dir, sockets)


# -- HTTP over a real channel of the site, on a StringTransport --------------------


@dataclass
class Response:
    code: int
    headers: dict[str, list[str]]
    body: bytes
    complete: bool

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[-1] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


def parse_response(raw: bytes) -> Response | None:
    """The first HTTP response in ``raw`` (None if its headers are not complete)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    code = int(lines[0].split(" ", 2)[1])
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    if "chunked" in ",".join(headers.get("transfer-encoding", [])):
        body, complete = b"", False
        while True:
            size_line, sep, rest = rest.partition(b"\r\n")
            if not sep:
                break
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                complete = True
                break
            body, rest = body + rest[:size], rest[size + 2 :]
        return Response(code, headers, body, complete)
    length = int((headers.get("content-length") or ["0"])[-1])
    return Response(code, headers, rest[:length], len(rest) >= length)


def login_cookie(response: Response) -> str:
    """The login cookie a response sets (its Set-Cookie header, attributes and all)."""
    (cookie,) = [c for c in response.headers.get("set-cookie", []) if c.startswith("ipytwist-")]
    return cookie


class Browser:
    """Sends requests to a site over fresh in-memory connections, one per request."""

    def __init__(self, site: Any, peer: str = "127.0.0.1") -> None:
        self.site = site
        self.peer = peer
        self.transports: list[StringTransport] = []

    def send(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        token: str | None = TOKEN,
        content_length: int | None = None,
    ) -> tuple[Any, StringTransport]:
        peer = IPv4Address("TCP", self.peer, 40000 + len(self.transports))
        channel = self.site.buildProtocol(peer)
        transport = StringTransport(peerAddress=peer)
        transport.protocol = channel  # as on a real TCP transport (autobahn swaps it)
        channel.makeConnection(transport)
        self.transports.append(transport)
        all_headers = {"Host": "localhost:8888"}
        if token is not None:
            all_headers["Authorization"] = f"token {token}"
        all_headers.update(headers or {})
        if body is not None or content_length is not None:
            n = len(body or b"") if content_length is None else content_length
            all_headers["Content-Length"] = str(n)
        lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in all_headers.items()]
        channel.dataReceived("\r\n".join(lines).encode() + b"\r\n\r\n" + (body or b""))
        return channel, transport

    def request(self, method: str, path: str, **kw: Any) -> Response:
        """Send, and return the response (which may still be incomplete)."""
        _, transport = self.send(method, path, **kw)
        response = parse_response(transport.value())
        assert response is not None, f"no response to {method} {path}: {transport.value()!r}"
        return response


def make_site_env(
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    *,
    allow_origins: list[str] | None = None,
    **kw: Any,
) -> tuple[HostEnv, Authenticator, Any]:
    env = make_host(tmp_path, monkeypatch, **kw)
    auth = Authenticator(TOKEN, env.clock, allow_origins, env.host.config.base_url)
    site = make_site(env.host, auth, env.clock, env.sockets)
    return env, auth, site
