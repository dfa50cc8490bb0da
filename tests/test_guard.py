"""The HTTP guard, in process: bodies refused from their headers, a time limit on
headers, tokens kept out of the access log (a real channel on a fake transport)."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.resource import Resource
from twisted.web.test.requesthelper import DummyRequest

from ipytwist.web.auth import Authenticator
from ipytwist.web.guard import HEADER_TIMEOUT, MAX_BODY_BYTES, GuardedSite, access_log_line
from ipytwist.web.site import credentials_in_headers

TOKEN = "s3cret-token"


class Echo(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    def render(self, request: Any) -> bytes:
        self.bodies.append(request.content.read())
        return b"ok"


def connect(resource: Resource | None = None) -> tuple[Any, StringTransport, Any, Echo]:
    clock = MemoryReactorClock()
    echo = resource or Echo()
    auth = Authenticator(TOKEN, clock)
    site = GuardedSite(echo, credentials_in_headers(auth), clock)
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5555))
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport, clock, echo


def post(length: int, *headers: bytes, path: bytes = b"/api/kernels") -> bytes:
    lines = [b"POST " + path + b" HTTP/1.1", b"Host: localhost", *headers]
    lines.append(b"Content-Length: %d" % length)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def test_a_huge_body_without_a_token_is_refused_before_it_is_read() -> None:
    """Content-Length 3,000,000,000 and no token: 413 at once, connection closed, and the
    body that follows is never stored."""
    channel, transport, _, echo = connect()
    channel.dataReceived(post(3_000_000_000))
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert transport.disconnecting
    channel.dataReceived(b"x" * 1_000_000)
    assert echo.bodies == []
    assert channel.requests[-1].content.getvalue() == b""


def test_a_small_body_without_credentials_gets_401_before_reading() -> None:
    channel, transport, _, echo = connect()
    channel.dataReceived(post(100))
    assert transport.value().startswith(b"HTTP/1.1 401 ")
    assert b'"reason": "Unauthorized"' in transport.value()
    assert transport.disconnecting and echo.bodies == []


def test_an_authenticated_body_within_the_limit_is_read() -> None:
    """A token in the header or in the URL lets a body through; the login form needs none."""
    for headers, path in [
        ((b"Authorization: token " + TOKEN.encode(),), b"/api/kernels"),
        ((), b"/api/kernels?token=" + TOKEN.encode()),
        ((), b"/login"),
    ]:
        channel, transport, _, echo = connect()
        channel.dataReceived(post(5, *headers, path=path) + b"hello")
        assert echo.bodies == [b"hello"], (headers, path, transport.value()[:200])


def test_an_authenticated_body_over_the_limit_is_refused() -> None:
    channel, transport, _, echo = connect()
    auth = b"Authorization: token " + TOKEN.encode()
    channel.dataReceived(post(MAX_BODY_BYTES + 1, auth))
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert echo.bodies == []


def test_a_chunked_body_is_cut_off_at_the_limit() -> None:
    """A body without a declared length is counted as it arrives."""
    channel, transport, _, echo = connect()
    head = (
        b"POST /api/kernels HTTP/1.1\r\nHost: localhost\r\nAuthorization: token "
        + TOKEN.encode()
        + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    channel.dataReceived(head)
    chunk = b"x" * 32768
    for _ in range(3):
        channel.dataReceived(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert echo.bodies == []


def test_headers_must_be_complete_within_the_time_limit() -> None:
    """A client trickling header bytes (slowloris) is cut off HEADER_TIMEOUT seconds
    after connecting, however often it sends a byte."""
    channel, transport, clock, _ = connect()
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
    for _ in range(int(HEADER_TIMEOUT) - 1):
        clock.advance(1)
        channel.dataReceived(b"X-Slow: 1\r\n")
        assert not transport.disconnecting
    clock.advance(1.5)
    assert transport.disconnecting


def test_a_prompt_request_is_not_cut_off_and_the_next_one_gets_its_own_limit() -> None:
    channel, transport, clock, echo = connect()
    auth = b"Authorization: token " + TOKEN.encode()
    channel.dataReceived(post(2, auth) + b"hi")
    assert echo.bodies == [b"hi"]
    clock.advance(HEADER_TIMEOUT - 1)
    assert not transport.disconnecting
    channel.dataReceived(post(2, auth) + b"yo")  # kept alive: a new request in time
    assert echo.bodies == [b"hi", b"yo"]
    clock.advance(HEADER_TIMEOUT + 1)
    assert transport.disconnecting  # idle with no new request: closed


def test_the_access_log_never_shows_a_token() -> None:
    request = DummyRequest([b""])
    request.uri = b"/api/kernels?x=1&token=" + TOKEN.encode() + b"&y=2"
    request.method = b"GET"
    request.clientproto = b"HTTP/1.1"
    request.code = 200
    request.sentLength = 0
    request.requestHeaders.setRawHeaders(b"referer", [b"http://h/?token=" + TOKEN.encode()])
    request.requestHeaders.setRawHeaders(b"user-agent", [b"agent-with-token=kept"])
    line = access_log_line("[ts]", request)
    assert TOKEN not in line
    assert "token=[redacted]&y=2" in line and "x=1" in line
    assert '"http://h/?token=[redacted]" "agent-with-token=kept"' in line


def test_login_redirects_stay_on_this_site() -> None:
    """next=//host, next=/\\host, schemes and control characters all go to /."""
    from ipytwist.web.auth import safe_next

    assert safe_next("/kernels/abc?x=1") == "/kernels/abc?x=1"
    for evil in (
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "/a\\b",
        "x",
        "/\r\n",
    ):
        assert safe_next(evil) == "/", evil


def test_a_non_ascii_cookie_is_just_not_a_login() -> None:
    """A login cookie with non-ASCII bytes is refused like any wrong cookie (it was a 500)."""
    auth = Authenticator(TOKEN, MemoryReactorClock())
    request = DummyRequest([b""])
    request.addCookie = lambda *a, **kw: None  # type: ignore[attr-defined]
    request.isSecure = lambda: False  # type: ignore[method-assign]
    auth.issue_cookie(request)
    request.getCookie = lambda name: "caf\u00e9".encode()  # type: ignore[attr-defined]
    assert auth.cookie_ok(request) is False
