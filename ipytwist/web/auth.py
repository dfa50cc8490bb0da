"""Who may use the service: token, login cookie, origin checks, login rate limit."""

from __future__ import annotations

import fnmatch
import hmac
import secrets
from collections import OrderedDict
from typing import Any
from urllib.parse import urlencode, urlsplit

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.web.server import Request

from .prefix import under_prefix

COOKIE_NAME = "ipytwist-login"
COOKIE_MAX_AGE = 30 * 24 * 3600
MAX_FAILURES = 10
FAILURE_WINDOW = 60.0
STATE_CHANGING = {b"POST", b"PUT", b"PATCH", b"DELETE"}


def _header(request: Request, name: bytes) -> str:
    value = request.getHeader(name)
    if value is None:
        return ""
    return value.decode("latin-1") if isinstance(value, bytes) else value


class FailureLimiter:
    """At most ``limit`` failed logins per client address per ``window`` seconds."""

    def __init__(
        self, clock: IReactorTime, limit: int = MAX_FAILURES, window: float = FAILURE_WINDOW
    ):
        self.clock = clock
        self.limit = limit
        self.window = window
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def _recent(self, who: str) -> list[float]:
        now = self.clock.seconds()
        times = [t for t in self._failures.get(who, []) if now - t < self.window]
        if times:
            self._failures[who] = times
        else:
            self._failures.pop(who, None)
        return times

    def blocked(self, who: str) -> bool:
        """Whether ``who`` has used up its failed logins for now."""
        return len(self._recent(who)) >= self.limit

    def retry_after(self, who: str) -> int:
        """Seconds until ``who`` may try again."""
        times = self._recent(who)
        return int(self.window - (self.clock.seconds() - times[0])) + 1 if times else 0

    def fail(self, who: str) -> None:
        """Count one failed login by ``who``."""
        self._recent(who)
        self._failures.setdefault(who, []).append(self.clock.seconds())
        self._failures.move_to_end(who)
        while len(self._failures) > 10_000:
            self._failures.popitem(last=False)


class Authenticator:
    """Checks requests against the service token and issued login cookies."""

    def __init__(
        self,
        token: str,
        clock: IReactorTime,
        allow_origins: list[str] | None = None,
        cookie_path: str = "/",
    ) -> None:
        self.token = token
        #: The login cookie's Path: the service's base URL (services under other
        #: prefixes of the same host never see it).
        self.cookie_path = cookie_path
        self.clock = clock
        self.allow_origins = list(allow_origins or [])
        self.limiter = FailureLimiter(clock)
        self._logins: OrderedDict[str, float] = OrderedDict()

    # -- credentials --------------------------------------------------------

    def token_ok(self, candidate: str) -> bool:
        """Whether ``candidate`` is the service token (compared in constant time)."""
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    def token_from(
        self, request: Request, args: dict[bytes, list[bytes]] | None = None
    ) -> tuple[str, str]:
        """``(token, via)`` presented by the request, ``via`` in header/param/cookie/''.
        ``args``: the query arguments, when the request has not parsed them yet."""
        auth = _header(request, b"authorization")
        if auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() in ("token", "bearer") and value.strip():
                return value.strip(), "header"
        values = (request.args if args is None else args).get(b"token")
        if values:
            return values[0].decode("utf-8", "replace"), "param"
        return "", ""

    def cookie_ok(self, request: Request) -> bool:
        """Whether the request carries an unexpired login cookie issued here."""
        return self.login_of(request) is not None

    def login_of(self, request: Request) -> str | None:
        """The unexpired login cookie issued here that the request carries, or None."""
        value = request.getCookie(COOKIE_NAME.encode())
        if not value:
            return None
        found, expires = None, 0.0
        for known, exp in self._logins.items():  # constant-time per entry
            # bytes: any cookie value compares (str would refuse non-ASCII with a 500)
            if hmac.compare_digest(known.encode(), value):
                found, expires = known, exp
        return found if expires > self.clock.seconds() else None

    def authenticate(self, request: Request) -> str | Deferred[str]:
        """How the request is authenticated ("header", "param", "cookie"), or "" (a
        Deferred of it from an authenticator that must ask elsewhere: the hub's)."""
        token, via = self.token_from(request)
        if token:
            if self.token_ok(token):
                return via
            self.limiter.fail(client_address(request))
            return ""
        return "cookie" if self.cookie_ok(request) else ""

    def plausible(self, candidate: str) -> bool:
        """Whether a request with ``candidate`` may send its body (read before the
        request is whole): here, the token itself."""
        return self.token_ok(candidate)

    def send_to_login(self, request: Request, next_path: str) -> bytes:
        """Send a browser without credentials to log in, then on to ``next_path``."""
        query = urlencode({"next": next_path})
        request.redirect(f"{self.cookie_path}login?{query}".encode())
        return b""

    def own_page(self, request: Request, parts: list[str]) -> Any:
        """The answer to a page this authenticator serves itself (the path's ``parts``
        below the prefix), or None: the standalone one has none (its login page is the
        site's)."""
        return None

    def issue_cookie(self, request: Request) -> str:
        """Log the request's client in: a new login cookie on the response (its value)."""
        value = secrets.token_urlsafe(32)
        self._logins[value] = self.clock.seconds() + COOKIE_MAX_AGE
        while len(self._logins) > 10_000:
            self._logins.popitem(last=False)
        request.addCookie(
            COOKIE_NAME.encode(),
            value.encode(),
            path=self.cookie_path.encode(),
            max_age=str(COOKIE_MAX_AGE).encode(),
            httpOnly=True,
            secure=bool(request.isSecure()),
            sameSite="strict",
        )
        return value

    # -- origins --------------------------------------------------------------

    def origin_allowed(self, request: Request) -> bool:
        """No Origin (a non-browser client), the same origin, or an allowed pattern."""
        origin = _header(request, b"origin")
        if not origin:
            return True
        return self._origin_matches(origin, request)

    def same_origin(self, request: Request) -> bool:
        """For cookie-authenticated state changes: Origin or Referer must match."""
        origin = _header(request, b"origin")
        if not origin:
            referer = _header(request, b"referer")
            if not referer:
                return False
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}"
        return self._origin_matches(origin, request)

    def _origin_matches(self, origin: str, request: Request) -> bool:
        # The scheme and host as the client used them (behind a trusted proxy: as it says).
        host = _header(request, b"host")
        parts = urlsplit(origin)
        scheme = "https" if request.isSecure() else "http"
        if (
            host
            and parts.netloc
            and parts.scheme.lower() == scheme
            and hmac.compare_digest(parts.netloc.lower(), host.lower())
        ):
            return True
        return any(fnmatch.fnmatchcase(origin, pat) for pat in self.allow_origins)


def safe_next(target: str, base: str = "/") -> str:
    """A path below ``base`` (the service's prefix) to go to after login; anything else
    (``//host``, ``/\\host``, a scheme, control characters, another prefix, a dot
    segment climbing out) becomes ``base``."""
    if (
        not target.startswith("/")
        or target[1:2] in ("/", "\\")
        or "\\" in target
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target)
    ):
        return base
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not under_prefix(parts.path, base):
        return base
    return target


def client_address(request: Request) -> str:
    """The request's client address, as the login rate limit counts it."""
    peer = request.getClientAddress()
    return getattr(peer, "host", None) or str(peer)
