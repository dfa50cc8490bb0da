"""JupyterHub as the authenticator of the site: the hub's API tokens, checked against
the hub with a short cache, and its OAuth for browsers, ending in our login cookie.

The same interface as the standalone :class:`~ipytwist.web.auth.Authenticator` (this
is a subclass): the composition chooses one.  Only holders of the scope for *this*
server are admitted (see :mod:`.scopes`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from typing import Any
from urllib.parse import urlencode

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request

from ..loglimit import LimitedLog
from ..web.auth import Authenticator, client_address, safe_next
from ..web.site import deliver
from .api import HubApi, HubError
from .env import HubEnv
from .scopes import grants_access

__all__ = ["CACHE_SECONDS", "CACHE_SIZE", "STATE_COOKIE", "HubAuthenticator", "TokenCache"]

#: Seconds a token's answer from the hub is believed.
CACHE_SECONDS = 60.0
#: Tokens remembered at most (the oldest are forgotten first).
CACHE_SIZE = 1024
#: Lookups at the hub at once; more unknown tokens meanwhile are refused.
MAX_LOOKUPS = 64
#: The cookie holding a browser's OAuth state between the redirect and the callback.
STATE_COOKIE = "ipytwist-oauth-state"
#: Seconds a browser has to come back from the hub's login with its code.
STATE_SECONDS = 600.0
#: OAuth states kept at most (each browser sent to the hub makes one).
STATE_SIZE = 1024

log = Logger()


def _key(token: str) -> str:
    """What the cache keeps of a token: its digest, never the token."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class TokenCache:
    """Whether a token was admitted, for ``ttl`` seconds, at most ``size`` tokens."""

    def __init__(self, clock: IReactorTime, ttl: float = CACHE_SECONDS, size: int = CACHE_SIZE):
        self.clock = clock
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[str, tuple[float, bool]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> bool | None:
        """True/False as the hub last said within ``ttl``; None: ask the hub."""
        key = _key(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, admitted = entry
        if expires <= self.clock.seconds():
            del self._entries[key]
            return None
        return admitted

    def put(self, token: str, admitted: bool) -> None:
        """Remember the hub's answer for ``token``."""
        key = _key(token)
        self._entries.pop(key, None)
        self._entries[key] = (self.clock.seconds() + self.ttl, admitted)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


class HubAuthenticator(Authenticator):
    """Admits the hub's tokens holding this server's scope, and browsers through the
    hub's OAuth; the service's own token is not accepted under a hub."""

    def __init__(
        self,
        env: HubEnv,
        api: HubApi,
        clock: IReactorTime,
        allow_origins: list[str] | None = None,
    ) -> None:
        # No token of our own: none compares equal to this one, made and forgotten.
        super().__init__(secrets.token_hex(32), clock, allow_origins, env.prefix)
        self.env = env
        self.api = api
        self.cache = TokenCache(clock)
        self.refusals = LimitedLog(log, clock)
        self._lookups: dict[str, Deferred[bool | None]] = {}
        self._states: OrderedDict[str, tuple[float, str]] = OrderedDict()
        #: Each login cookie's hub token, checked again once the cache forgets it.
        self._login_tokens: OrderedDict[str, str] = OrderedDict()

    # -- tokens ---------------------------------------------------------------

    def token_ok(self, candidate: str) -> bool:
        """Whether the hub admitted ``candidate`` within the cache's time."""
        return self.cache.get(candidate) is True

    def plausible(self, candidate: str) -> bool:
        """Whether a request with ``candidate`` may send its (small) body: not refused
        by the hub lately (an unknown token is looked up when the request is whole)."""
        return self.cache.get(candidate) is not False

    def authenticate(self, request: Request) -> str | Deferred[str]:
        """As the standalone's, but an unknown token is looked up at the hub first, and
        a login cookie holds only while the hub token it was issued for does."""
        token, via = self.token_from(request)
        if not token:
            return self._login(request)
        known = self.cache.get(token)
        who = client_address(request)
        if known is None and not self.limiter.blocked(who):
            return self.lookup(token).addCallback(lambda ok: self._counted(ok, via, who))
        return self._counted(bool(known), via, who)

    def _login(self, request: Request) -> str | Deferred[str]:
        """A login cookie's verdict: its token's, asked again of the hub once the cache
        forgets it; while the hub cannot answer, a login it admitted stays."""
        login = self.login_of(request)
        token = self._login_tokens.get(login) if login is not None else None
        if token is None:
            return ""
        known = self.cache.get(token)
        if known is not None:
            return "cookie" if known else ""
        return self.lookup(token).addCallback(lambda ok: "cookie" if ok is not False else "")

    def issue_cookie(self, request: Request, token: str = "") -> str:
        """A login cookie, tied to the hub token (``token``, else the request's) that
        logged the browser in."""
        value = super().issue_cookie(request)
        self._login_tokens[value] = token or self.token_from(request)[0]
        while len(self._login_tokens) > 10_000:  # as many as logins are kept
            self._login_tokens.popitem(last=False)
        return value

    def _counted(self, admitted: bool | None, via: str, who: str) -> str:
        """``via`` if admitted; a refusal counts against the client's address (not the
        hub's failure to answer: None)."""
        if admitted:
            return via
        if admitted is False:
            self.limiter.fail(who)
        return ""

    def lookup(self, token: str) -> Deferred[bool | None]:
        """Ask the hub whether ``token`` holds this server's scope (one lookup per
        token at a time); None: the hub could not say (nothing is cached)."""
        key = _key(token)
        pending = self._lookups.get(key)
        if pending is None:
            if len(self._lookups) >= MAX_LOOKUPS:
                self.refusals.warn("could not check a token: too many lookups at the hub", "busy")
                return succeed(None)
            pending = self.api.user_for_token(token).addCallbacks(
                lambda user: self._judged(token, user), self._hub_failed
            )
            self._lookups[key] = pending
            pending.addBoth(self._forget_lookup, key)
        relay: Deferred[bool | None] = Deferred()
        pending.addBoth(_relay, relay)
        return relay

    def _forget_lookup(self, result: object, key: str) -> object:
        self._lookups.pop(key, None)
        return result

    def _judged(self, token: str, user: dict[str, Any]) -> bool:
        admitted = self.admits(user)
        self.cache.put(token, admitted)
        if user and not admitted:
            name = str(user.get("name", "?"))[:64]
            self.refusals.warn("refused a hub token of {name}: no access scope", "scope", name=name)
        return admitted

    def admits(self, user: dict[str, Any]) -> bool:
        """Whether the hub's model of a token's holder has this server's scope."""
        scopes = user.get("scopes")
        if not isinstance(scopes, list):
            return False
        return grants_access(scopes, self.env.user, self.env.server_name, self.env.access_scopes)

    def _hub_failed(self, failure: Failure) -> None:
        failure.trap(HubError)
        why = failure.getErrorMessage()[:200]
        self.refusals.warn("could not check a token at the hub: {why}", "hub", why=why)

    # -- browsers: the hub's OAuth --------------------------------------------------

    def send_to_login(self, request: Request, next_path: str) -> bytes:
        """Redirect a browser without credentials to the hub's OAuth, remembering where
        it was going under a state that its cookie must match on the way back."""
        now = self.clock.seconds()
        state = secrets.token_urlsafe(24)
        self._states[state] = (now + STATE_SECONDS, safe_next(next_path, self.env.prefix))
        while len(self._states) > STATE_SIZE:
            self._states.popitem(last=False)
        request.addCookie(
            STATE_COOKIE.encode(),
            state.encode(),
            path=self.env.prefix.encode(),
            max_age=str(int(STATE_SECONDS)).encode(),
            httpOnly=True,
            secure=bool(request.isSecure()),
            sameSite="lax",  # sent on the hub's redirect back to the callback
        )
        query = urlencode(
            {
                "client_id": self.env.client_id,
                "redirect_uri": self.env.redirect_uri,
                "response_type": "code",
                "state": state,
            }
        )
        request.redirect(f"{self.env.authorize_url}?{query}".encode())
        return b""

    def own_page(self, request: Request, parts: list[str]) -> Any:
        """The OAuth callback, and ``login``: the hub's login (through its OAuth)."""
        if "/".join(parts) == self.env.callback_path[len(self.env.prefix) :].strip("/"):
            return self.oauth_callback(request)
        if parts == ["login"]:
            target = (request.args.get(b"next") or [self.env.prefix.encode()])[0]
            return self.send_to_login(request, target.decode("utf-8", "replace"))
        return None

    def _holder(self, token: str) -> Deferred[tuple[str, dict[str, Any]]]:
        """``(token, the hub's model of its holder)``."""
        return self.api.user_for_token(token).addCallback(lambda user: (token, user))

    def take_state(self, request: Request) -> str | None:
        """The next path of the callback's state, if it is known, unexpired and the
        browser's state cookie matches it (else None: a forged or replayed callback)."""
        given = (request.args.get(b"state") or [b""])[0].decode("utf-8", "replace")
        cookie = (request.getCookie(STATE_COOKIE.encode()) or b"").decode("utf-8", "replace")
        if not given or not cookie or not hmac.compare_digest(given.encode(), cookie.encode()):
            return None
        entry = self._states.pop(given, None)
        if entry is None or entry[0] <= self.clock.seconds():
            return None
        return entry[1]

    def oauth_callback(self, request: Request) -> Any:
        """``<prefix>oauth_callback``: check the state, trade the code for a token,
        check its scope, then log the browser in and send it where it was going."""
        nxt = self.take_state(request)
        code = (request.args.get(b"code") or [b""])[0].decode("utf-8", "replace")
        if nxt is None or not code:
            self.refusals.warn("refused an OAuth callback: state or code missing or wrong", "oauth")
            return _plain(request, 400, "OAuth state mismatch: log in again.")
        d = self.api.token_for_code(code, self.env.client_id, self.env.redirect_uri)
        d.addCallback(self._holder)

        def finish(answer: tuple[str, dict[str, Any]]) -> bytes:
            token, user = answer
            admitted = self.admits(user)
            self.cache.put(token, admitted)
            if not admitted:
                name = str(user.get("name", "?"))[:64]
                self.refusals.warn(
                    "refused an OAuth login of {name}: no access", "scope", name=name
                )
                return _plain(request, 403, "You have no access to this server.")
            request.addCookie(
                STATE_COOKIE.encode(), b"", path=self.env.prefix.encode(), max_age=b"0"
            )
            self.issue_cookie(request, token)
            request.redirect(nxt.encode())
            return b""

        def failed(failure: Failure) -> bytes:
            failure.trap(HubError)
            self.refusals.warn(
                "OAuth login failed: {why}", "hub", why=failure.getErrorMessage()[:200]
            )
            return _plain(request, 502, "The hub did not complete the login.")

        d.addCallbacks(finish, failed).addBoth(deliver, request)
        return NOT_DONE_YET


def _relay(result: object, relay: Deferred[bool | None]) -> object:
    if isinstance(result, Failure):
        relay.errback(result)
    else:
        relay.callback(result if isinstance(result, bool) else None)
    return result


def _plain(request: Request, code: int, text: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return text.encode() + b"\n"
