"""End-to-end attacks on a real service: missing and wrong credentials on every route,
cross-origin requests, oversized bodies and headers, slowloris, ZeroMQ messages
signed with another key, tokens in URLs, and a flood of failed logins.

Every attack is refused as documented (README, *Authentication*) and the service keeps
serving afterwards.  The service limits failed logins per client address, so requests
meant to see a plain 401 come each from an address of their own in 127.0.0.0/8 (all
of it is this machine; the service listens on 127.0.0.1 only).
"""

from __future__ import annotations

import select
import socket
import time
from urllib.parse import quote, urlencode

import pytest
import websocket
from benchlib.servers import Service
from benchlib.wsclient import WSClient
from support.fuzz.watch import LogWatch
from support.raw_http import (
    Answer,
    closed_by_peer,
    http,
    loopback,
    raw_socket,
    read_answer,
    ws_from,
)
from support.service import service_fixture
from support.zmq_client import ZmqClient, zmq_kernel_info

COOKIE = "ipytwist-login"
FOREIGN = "http://evil.example"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
#: The service's limit on request bodies and on the time to send request headers.
MAX_BODY_BYTES = 64 * 1024
#: The service's header timeout here (the default 10 s is checked in process, on a fake
#: clock, in tests/glue/test_time.py; a real slowloris needs no more than this).
HEADER_TIMEOUT = 3.0
SLOWLORIS_SOCKETS = 50
#: Slowest answer a normal client may get while the slowloris sockets hang on.
SLOWLORIS_MAX_LATENCY = 1.0
FAILED_LOGIN_LIMIT = 10


svc = service_fixture("attacks", "--header-timeout", str(HEADER_TIMEOUT))


def auth(svc: Service) -> dict[str, str]:
    return {"Authorization": f"token {svc.token}"}


def assert_serving(svc: Service, kernel_id: str | None = None) -> None:
    """A normal request works; with a kernel, so does a kernel_info over ZeroMQ."""
    r = http(svc, "GET", "/api/status", auth(svc))
    assert r.status == 200 and "kernels" in r.json(), r
    if kernel_id is not None:
        zk = ZmqClient.from_file(svc.connection_file(kernel_id))
        sock = zk.socket("shell")
        try:
            assert zmq_kernel_info(zk, sock)
        finally:
            sock.close()
            zk.close()


def assert_unauthorized(r: Answer, what: str) -> None:
    assert r.status == 401, (what, r.status, r.body[:200])
    assert r.headers["content-type"].startswith("application/json"), what
    assert r.json()["reason"] == "Unauthorized", what


def routes(kernel_id: str) -> list[tuple[str, str]]:
    """Every route of the API, with each method it answers."""
    k = f"/api/kernels/{kernel_id}"
    return [
        ("GET", "/api"),
        ("GET", "/api/status"),
        ("GET", "/api/kernels"),
        ("POST", "/api/kernels"),
        ("GET", k),
        ("DELETE", k),
        ("POST", k + "/interrupt"),
        ("POST", k + "/restart"),
        ("GET", k + "/transcript"),
        ("DELETE", k + "/transcript"),
        ("GET", k + "/transcript.ipynb"),
        ("GET", "/api/kernelspecs"),
        ("GET", "/api/kernelspecs/ipytwist"),
    ]


#: Wrong credentials: (name, headers, query parameters).
WRONG: list[tuple[str, dict[str, str], dict[str, str]]] = [
    ("none", {}, {}),
    ("wrong-header-token", {"Authorization": "token wrong-token"}, {}),
    ("wrong-bearer", {"Authorization": "Bearer wrong-token"}, {}),
    ("empty-token", {"Authorization": "token "}, {}),
    ("wrong-url-token", {}, {"token": "wrong-token"}),
    ("forged-cookie", {"Cookie": f"{COOKIE}=forged-cookie-value"}, {}),
]


def test_every_route_refuses_missing_or_wrong_credentials(
    svc: Service, module_kernel_id: str
) -> None:
    """Each API route and method, with no token, a wrong token (header, bearer, empty,
    ?token=) or a forged login cookie, answers 401 JSON and does nothing (no kernel
    created, deleted, restarted or interrupted); pages redirect to /login; the
    WebSocket upgrade is refused with 401."""
    before = http(svc, "GET", "/api/kernels", auth(svc)).json()
    n = 0
    for name, headers, params in WRONG:
        query = "?" + urlencode(params) if params else ""
        for method, path in routes(module_kernel_id):
            n += 1
            r = http(svc, method, path + query, headers, source=loopback(n))
            assert_unauthorized(r, f"{method} {path} {name}")
        for page in ("/", "/kernels/x"):
            n += 1
            r = http(svc, "GET", page + query, headers, source=loopback(n))
            assert r.status in (302, 303), (page, name, r.status)
            assert r.headers["location"].startswith("/login"), (page, name, r.headers)
        n += 1
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            header = [f"{k}: {v}" for k, v in headers.items()]
            ws_from(svc, module_kernel_id, loopback(n), params, header=header, suppress_origin=True)
        assert refused.value.status_code == 401, name
    r = http(svc, "POST", "/login", FORM, b"token=wrong-token", source=loopback(n + 1))
    assert r.status == 401 and b"Invalid token" in r.body
    assert http(svc, "GET", "/login", source=loopback(n + 2)).status == 200  # the form
    after = http(svc, "GET", "/api/kernels", auth(svc)).json()
    assert [(k["id"], k["execution_state"]) for k in after] == [
        (k["id"], k["execution_state"]) for k in before
    ]
    assert_serving(svc, module_kernel_id)


def login_cookie(svc: Service) -> str:
    """A login cookie, as a browser gets it from ``/?token=``."""
    r = http(svc, "GET", f"/?token={svc.token}")
    assert r.status in (302, 303), r
    return r.headers["set-cookie"].split(";")[0].split("=", 1)[1]


def test_cross_origin_requests_are_refused(svc: Service, module_kernel_id: str) -> None:
    """A WebSocket with a foreign Origin is refused 403 even with the right token; a
    POST authenticated by the login cookie is refused 403 with a foreign Origin (or
    none) and starts nothing; the same POST from the service's own origin works."""
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        WSClient.connect(svc, module_kernel_id, origin=FOREIGN)
    assert refused.value.status_code == 403
    WSClient.connect(svc, module_kernel_id, origin=svc.origin).close()  # the same origin is fine

    cookie = {"Cookie": f"{COOKIE}={login_cookie(svc)}"}
    count = len(http(svc, "GET", "/api/kernels", cookie).json())  # the cookie works
    for origin in ({"Origin": FOREIGN}, {"Referer": FOREIGN + "/page"}, {}):
        r = http(svc, "POST", "/api/kernels", cookie | origin)
        assert r.status == 403, (origin, r)
        assert r.json()["reason"] == "Forbidden"
        r = http(svc, "DELETE", f"/api/kernels/{module_kernel_id}", cookie | origin)
        assert r.status == 403, (origin, r)
    assert len(http(svc, "GET", "/api/kernels", auth(svc)).json()) == count
    r = http(svc, "POST", "/api/kernels", cookie | {"Origin": svc.origin})
    assert r.status == 201, r
    svc.delete_kernel(r.json()["id"])
    assert_serving(svc, module_kernel_id)


def send_headers_only(svc: Service, head: bytes) -> tuple[bytes, float]:
    """Send request headers and no body; what the server answers, and how fast."""
    sock = raw_socket(svc)
    try:
        start = time.monotonic()
        sock.sendall(head)
        answer = read_answer(sock, timeout=10)
        return answer, time.monotonic() - start
    finally:
        sock.close()


def test_oversized_bodies_are_refused_before_they_are_read(svc: Service) -> None:
    """A POST declaring a body far over 64 KiB gets 413 with or without a token, and a
    small body without a token 401, before a single body byte is sent (the answer
    comes while the client sends nothing) and the connection is closed."""
    token = f"Authorization: token {svc.token}\r\n".encode()
    cases = [
        (token, 3_000_000_000, b"413"),
        (token, MAX_BODY_BYTES + 1, b"413"),
        (b"", 3_000_000_000, b"413"),
        (b"Authorization: token wrong\r\n", 1_000_000, b"413"),
        (b"", 1_000, b"401"),
    ]
    for credentials, length, code in cases:
        head = b"POST /api/kernels HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: %d\r\n\r\n"
        answer, seconds = send_headers_only(svc, head % (credentials, length))
        assert answer.startswith(b"HTTP/1.1 " + code), (length, credentials, answer[:200])
        assert b"connection: close" in answer.lower()
        assert seconds < 5, seconds  # answered, and closed, with no body sent
    assert_serving(svc)


def test_oversized_headers_are_refused(svc: Service) -> None:
    """A 100 KB header line, a 100 KB URL and 1,100 headers get 400/431 or a closed
    connection, never a 200; the service keeps serving."""
    token = f"Authorization: token {svc.token}\r\n".encode()
    heads = [
        b"GET /api/status HTTP/1.1\r\nHost: x\r\n" + token + b"X-Big: " + b"a" * 100_000,
        b"GET /api/status?" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n" + token,
        b"GET /api/status HTTP/1.1\r\nHost: x\r\n"
        + token
        + b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 90) for i in range(1_100)),
    ]
    for head in heads:
        sock = raw_socket(svc)
        try:
            try:
                sock.sendall(head + b"\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed while we were still sending: refused
            answer = read_answer(sock, timeout=10)
        finally:
            sock.close()
        assert answer == b"" or answer.split(b" ")[1] in (b"400", b"431"), answer[:200]
    assert_serving(svc)


def test_slowloris_is_cut_off_and_others_are_served(svc: Service) -> None:
    """50 connections each send a header line about every second and never finish.
    Meanwhile a client asking GET /api/status every 0.2 s gets every answer, each
    within SLOWLORIS_MAX_LATENCY; the server closes every slow connection about
    HEADER_TIMEOUT seconds after it connected (polled for EOF, bounded)."""
    socks: dict[socket.socket, float] = {}
    closed_after: dict[socket.socket, float] = {}
    latencies: list[float] = []
    try:
        for _ in range(SLOWLORIS_SOCKETS):
            sock = raw_socket(svc)
            sock.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            socks[sock] = time.monotonic()
        deadline = time.monotonic() + HEADER_TIMEOUT + 5
        next_trickle = next_request = time.monotonic()
        line = 0
        while len(closed_after) < len(socks) and time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_request:
                r = http(svc, "GET", "/api/status", auth(svc), timeout=5)
                latencies.append(time.monotonic() - now)
                assert r.status == 200, r
                next_request = now + 0.2
            if now >= next_trickle:
                line += 1
                for sock in socks.keys() - closed_after.keys():
                    try:
                        sock.sendall(b"X-Slow-%d: %d\r\n" % (line, line))
                    except (BrokenPipeError, ConnectionResetError):
                        closed_after[sock] = time.monotonic() - socks[sock]
                next_trickle = now + 1.0
            wait = max(0.0, min(next_request, next_trickle) - time.monotonic())
            open_socks = list(socks.keys() - closed_after.keys())
            readable = select.select(open_socks, [], [], wait)[0] if open_socks else []
            for sock in readable:
                if closed_by_peer(sock):
                    closed_after.setdefault(sock, time.monotonic() - socks[sock])
    finally:
        for sock in socks:
            sock.close()
    times = sorted(closed_after.values())
    print(
        f"\nslowloris: {len(times)}/{len(socks)} closed after {times[0]:.1f}-{times[-1]:.1f}s; "
        f"{len(latencies)} status requests, max latency {max(latencies) * 1000:.0f} ms"
    )
    assert len(closed_after) == SLOWLORIS_SOCKETS, "slow connections still open"
    assert HEADER_TIMEOUT - 0.5 <= times[0] and times[-1] <= HEADER_TIMEOUT + 2.5, times
    # A status request every 0.2 s for the whole attack (most of them, under load).
    assert len(latencies) >= int(HEADER_TIMEOUT / 0.2 * 0.8), latencies
    assert max(latencies) < SLOWLORIS_MAX_LATENCY, latencies
    assert_serving(svc)


def test_zmq_messages_signed_with_another_key_are_dropped(
    svc: Service, module_kernel_id: str
) -> None:
    """kernel_info and execute requests signed with another key get no reply: the first
    reply on the socket is to the correctly signed kernel_info sent right after them."""
    zk = ZmqClient.from_file(svc.connection_file(module_kernel_id))
    for channel in ("shell", "control"):
        sock = zk.socket(channel)
        try:
            for i in range(20):
                msg_type = "execute_request" if i % 2 else "kernel_info_request"
                content = {"code": "1"} if i % 2 else {}
                _, frames = zk.request(msg_type, content)
                sock.send_multipart(zk.signed(frames[2:], key=b"another-key-%d" % i))
            good_id, good = zk.request("kernel_info_request")
            sock.send_multipart(good)
            assert sock.poll(10_000), "no reply to the correctly signed request"
            frames = sock.recv_multipart()
            assert good_id.encode() in frames[frames.index(b"<IDS|MSG>") + 3], frames[:6]
        finally:
            sock.close()
    zk.close()
    assert_serving(svc, module_kernel_id)


def test_a_token_in_the_url_never_reaches_the_log(svc: Service, module_kernel_id: str) -> None:
    """The token given as ?token= to the API, a page, the login form and the kernel
    WebSocket, and a wrong one, are never written to the log (the access log shows
    token=[redacted]); the requests themselves are logged."""
    watch = LogWatch(svc)
    wrong = "wrong-token-7d5e"
    for token in (svc.token, wrong):
        q = quote(token)
        http(svc, "GET", f"/api/kernels?token={q}", source=loopback(2000))
        http(svc, "GET", f"/api/status?x=1&token={q}&y=2", source=loopback(2000))
        http(svc, "GET", f"/?token={q}", source=loopback(2000))
        http(svc, "GET", f"/login?token={q}&next=/", source=loopback(2000))
    http(svc, "POST", "/login", FORM, f"token={svc.token}".encode(), source=loopback(2000))
    WSClient.connect(svc, module_kernel_id, auth="param").close()
    text = watch.new()
    assert "token=[redacted]" in text, text[-2000:]
    watch.assert_clean(svc.token, wrong)
    assert_serving(svc, module_kernel_id)


def test_failed_logins_never_lock_out_the_right_token(svc: Service) -> None:
    """From one address, wrong tokens get 401 until 10 failures are counted (the 10th
    already gets 429), then 429 with Retry-After, as do requests with no token; the
    right token still works from that very address, in a header, in the URL and
    through POST /login; other addresses are not affected."""
    me = loopback(3000)
    bad = {"Authorization": "token wrong-token"}
    codes = [http(svc, "GET", "/api/status", bad, source=me).status for _ in range(15)]
    assert codes == [401] * (FAILED_LOGIN_LIMIT - 1) + [429] * 6, codes
    r = http(svc, "GET", "/api/kernels", source=me)
    assert r.status == 429 and int(r.headers["retry-after"]) > 0, r
    assert http(svc, "GET", "/api/status", auth(svc), source=me).status == 200
    assert http(svc, "GET", f"/api/status?token={svc.token}", source=me).status == 200
    form = FORM | {"Accept": "application/json"}
    r = http(svc, "POST", "/login", form, f"token={svc.token}".encode(), source=me)
    assert r.status == 200 and COOKIE in r.headers["set-cookie"], r
    assert http(svc, "GET", "/api/status", bad, source=loopback(3001)).status == 401
    assert_serving(svc)
