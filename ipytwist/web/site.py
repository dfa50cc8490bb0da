"""The twisted.web site: authentication, login, pages, REST and kernel WebSockets."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote_to_bytes, urlsplit

from autobahn.twisted.resource import WebSocketResource
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from ..host import KernelHost
from .assets import StaticFiles
from .auth import STATE_CHANGING, Authenticator, client_address, safe_next
from .forwarded import TrustedProxies
from .guard import GuardedSite
from .pages import Pages
from .prefix import prefix_segments
from .rest import ApiError, KernelsApi, error_body, write_json
from .transport import WebSocketTransport


class ServiceRoot(Resource):
    """Every request comes through here: auth first, then the route."""

    isLeaf = True
    log = Logger()

    def __init__(self, host: KernelHost, auth: Authenticator, sockets: WebSocketTransport) -> None:
        Resource.__init__(self)
        self.host = host
        self.auth = auth
        self.sockets = sockets
        self.api = KernelsApi(host)
        #: Whose X-Forwarded-* are believed (--trusted-proxy): applied to each request first.
        self.proxies = TrustedProxies(host.config.trusted_proxies, auth.clock)
        self.base = host.config.base_url
        self.prefix = prefix_segments(self.base)
        self.static = StaticFiles(base=self.base)
        self.pages = Pages(host, self.static)

    def render(self, request: Any) -> Any:
        """Twisted: answer a request; the root routes every path itself."""
        self.proxies.apply(request)  # behind a trusted proxy: the client's request
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"referrer-policy", b"same-origin")
        n = len(self.prefix)
        if request.postpath[:n] != self.prefix:
            return self._outside(request)
        if n and len(request.postpath) == n:  # the prefix without its last "/"
            query = request.uri.partition(b"?")[2]
            request.redirect(self.base.encode() + (b"?" + query if query else b""))
            return b""
        parts = [p.decode("utf-8", "replace") for p in request.postpath[n:] if p]
        own = self.auth.own_page(request, parts)  # the hub's OAuth callback
        if own is not None:
            return own
        if parts == ["login"]:
            return self._login(request)
        if parts[:1] == ["static"]:  # the bundled scripts and styles: public
            return self.static.render(request, parts[1:])
        via = self.auth.authenticate(request)
        if isinstance(via, Deferred):  # the authenticator asks elsewhere (the hub) first
            via.addCallback(lambda via: self._authorized(request, parts, via))
            via.addBoth(deliver, request)
            return NOT_DONE_YET
        return self._authorized(request, parts, via)

    def _authorized(self, request: Any, parts: list[str], via: str) -> Any:
        """The answer to a request under the prefix, once ``via`` says how (if at all)
        it is authenticated."""
        is_api = parts[:1] == ["api"]
        if not via:
            # Only failures are rate-limited: a valid credential always passes.
            refused = self._rate_limited(request)
            if refused is not None:
                return refused
            if is_api:
                return error_body(
                    request, ApiError(401, "Unauthorized", "a valid token is required")
                )
            return self.auth.send_to_login(request, request.path.decode("utf-8", "replace"))
        if (
            via == "cookie"
            and request.method in STATE_CHANGING
            and not self.auth.same_origin(request)
        ):
            return error_body(request, ApiError(403, "Forbidden", "cross-origin request refused"))
        if via == "param" and not is_api and request.method == b"GET":
            # ?token= logs the browser in, then the token leaves the address bar.
            self.auth.issue_cookie(request)
            request.redirect(safe_next(request.path.decode("utf-8", "replace"), self.base).encode())
            return b""
        if is_api:
            if len(parts) == 4 and parts[1] == "kernels" and parts[3] == "channels":
                return self._websocket(request, parts[2])
            return self.api.dispatch(request, parts[1:])
        if not parts:
            return self.pages.home(request)
        if len(parts) == 2 and parts[0] == "kernels":
            return self.pages.notebook(request, parts[1])
        return self.pages.not_found(request)

    def _outside(self, request: Any) -> Any:
        """A path outside the prefix: never served (a JSON 404 for an API-looking one)."""
        if b"api" in request.postpath:
            return error_body(request, ApiError(404, "Not Found", "not under this base URL"))
        return self.pages.not_found(request, "There is nothing here: ipytwist is elsewhere.")

    def _websocket(self, request: Any, kernel_id: str) -> Any:
        if not self.auth.origin_allowed(request):
            self.log.warn("refused WebSocket from a foreign origin")
            return error_body(request, ApiError(403, "Forbidden", "origin not allowed"))
        hub = self.sockets.hub(kernel_id)
        if hub is None:
            return error_body(request, ApiError(404, "Not Found", "no such kernel"))
        return WebSocketResource(hub.factory).render(request)

    def _rate_limited(self, request: Any) -> bytes | None:
        """A 429 answer while the client's address has too many failed logins."""
        who = client_address(request)
        if not self.auth.limiter.blocked(who):
            return None
        request.setHeader(b"retry-after", str(self.auth.limiter.retry_after(who)).encode())
        return error_body(
            request, ApiError(429, "Too Many Requests", "too many failed logins; try again later")
        )

    def _login(self, request: Any) -> Any:
        if request.method == b"POST":
            who = client_address(request)
            token = (request.args.get(b"token") or [b""])[0].decode("utf-8", "replace")
            nxt = self._next(request)
            if token and self.auth.token_ok(token):
                self.auth.issue_cookie(request)
                if b"json" in (request.getHeader(b"accept") or b""):
                    return write_json(request, 200, {"ok": True})
                request.redirect(nxt.encode())
                return b""
            refused = self._rate_limited(request)
            if refused is not None:
                return refused
            self.auth.limiter.fail(who)
            self.log.info("failed login from {who}", who=who)
            return self.pages.login(request, nxt, "Invalid token.", code=401)
        return self.pages.login(request, self._next(request))

    def _next(self, request: Any) -> str:
        """Where the login form goes next: a path below the prefix."""
        target = (request.args.get(b"next") or [self.base.encode()])[0]
        return safe_next(target.decode("utf-8", "replace"), self.base)


def deliver(result: Any, request: Any) -> None:
    """Write an answer rendered later (``NOT_DONE_YET``: it writes itself) and finish,
    unless the client has gone; a failure is a 500 and one log line."""
    if isinstance(result, Failure):
        ServiceRoot.log.error("request failed: {why}", why=result.getErrorMessage()[:200])
        request.setResponseCode(500)
        result = b""
    if result is NOT_DONE_YET or request.finished or getattr(request, "_disconnected", False):
        return
    request.write(result)
    request.finish()


def credentials_in_headers(auth: Authenticator, base: str = "/") -> Any:
    """Whether a request may send a body, judged before its body is read: the login
    form (below the prefix ``base``), or a valid token (header or URL) or login cookie."""
    login = unquote_to_bytes(base + "login")

    def check(request: Any, path: bytes) -> bool:
        parts = urlsplit(path)
        if unquote_to_bytes(parts.path) == login:
            return True
        token, via = auth.token_from(request, parse_qs(parts.query))
        if token:
            return auth.plausible(token)
        return auth.cookie_ok(request)

    return check


def make_site(
    host: KernelHost, auth: Authenticator, reactor: IReactorTime, sockets: WebSocketTransport
) -> Site:
    """The site serving ``host``'s kernels, their WebSockets through ``sockets`` (one
    of the host's transports)."""
    site = GuardedSite(
        ServiceRoot(host, auth, sockets),
        credentials_in_headers(auth, host.config.base_url),
        reactor,
        header_timeout=host.config.header_timeout,
    )
    site.displayTracebacks = False
    return site
