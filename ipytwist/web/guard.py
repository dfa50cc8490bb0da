"""The HTTP layer's defences: what is refused before it costs memory, disk or time.

- A request body is refused (413, or 401 without credentials) from its headers,
  before a byte of it is read: no body is ever spooled to disk.
- Request headers must arrive complete within ``HEADER_TIMEOUT`` seconds of the
  connection (or of the previous response): a slow trickle of header bytes
  (slowloris) cannot hold a connection forever.
- The access log never shows a token given in the URL.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from ..config import HEADER_TIMEOUT as DEFAULT_HEADER_TIMEOUT
from ..loglimit import LimitedLog

#: Largest request body accepted: REST bodies are small JSON, the login form smaller.
MAX_BODY_BYTES = 64 * 1024
#: Seconds a client has to send a request's headers, counted from the connection (or
#: from the previous response on a kept-alive connection): ``--header-timeout``.
HEADER_TIMEOUT = DEFAULT_HEADER_TIMEOUT
TOO_LARGE = (413, "Payload Too Large", f"request bodies are limited to {MAX_BODY_BYTES} bytes")

#: A token in a URL, or the OAuth code JupyterHub sends to ``oauth_callback`` (a
#: credential until it is traded for a token).
_TOKEN_IN_URI = re.compile(rb"((?:^|[?&])(?:token|code)=)[^&#]*", re.IGNORECASE)

log = Logger()


def redact_uri(uri: bytes) -> bytes:
    """``uri`` with the value of every ``token`` and ``code`` query parameter replaced."""
    return _TOKEN_IN_URI.sub(rb"\1[redacted]", uri)


class _Redacted:
    """A request as the access log sees it: the same, but for its URI and Referer."""

    def __init__(self, request: Any) -> None:
        self._request = request
        self.uri = redact_uri(request.uri)

    def getHeader(self, name: bytes) -> bytes | None:
        """The request's header ``name``; a token in a Referer's URL redacted."""
        value: bytes | None = self._request.getHeader(name)
        if value is not None and name.lower() == b"referer":
            return redact_uri(value)
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


def access_log_line(timestamp: str, request: Any) -> str:
    """Twisted's combined log format, with tokens in URLs redacted."""
    line: str = http.combinedLogFormatter(timestamp, _Redacted(request))
    return line


def _guarded_site(channel: object) -> GuardedSite | None:
    """The site that made ``channel``, if it is a :class:`GuardedSite` (Twisted's
    ``Site.buildProtocol`` sets it as an attribute HTTPChannel does not declare)."""
    site = getattr(channel, "site", None)
    return site if isinstance(site, GuardedSite) else None


@runtime_checkable
class _Abortable(Protocol):
    """A transport that can be closed without flushing: TCP's and TLS's (Twisted's own
    HTTPChannel.forceAbortClient relies on it), though ``ITransport`` does not say so."""

    def abortConnection(self) -> None: ...


class GuardedRequest(Request):
    """Refuses an unwanted body from the request's headers, before reading it."""

    refused = False
    _body_bytes = 0

    def gotLength(self, length: int | None) -> None:
        """Twisted: the body's declared length; refuse the body now if it must be."""
        site = _guarded_site(self.channel)
        refusal = site.refuse_body(self, length) if site is not None else None
        if refusal is not None:
            self._refuse(*refusal)
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        """Twisted: part of the body; refused past ``MAX_BODY_BYTES``."""
        if self.refused:
            return
        self._body_bytes += len(data)
        if self._body_bytes > MAX_BODY_BYTES:  # chunked bodies declare no length
            self._refuse(
                413, "Payload Too Large", f"request bodies are limited to {MAX_BODY_BYTES} bytes"
            )
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """Twisted: the whole request is in; handled unless it was refused."""
        if not self.refused:
            super().requestReceived(command, path, version)

    def _refuse(self, code: int, reason: str, message: str) -> None:
        """Answer now and close: the rest of the body is never read."""
        self.refused = True
        self.content = io.BytesIO()
        body = json.dumps({"reason": reason, "message": message}).encode()
        transport = self.channel.transport
        if transport is not None:  # None: the connection is gone already
            transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n%s" % (code, reason.encode(), len(body), body)
            )
            transport.loseConnection()
        site = _guarded_site(self.channel)
        if site is not None:
            site.refusals.warn(
                "refused a request body before reading it: {code} {message}",
                str(code),
                code=code,
                message=message,
            )


class GuardedChannel(http.HTTPChannel):
    """An HTTP channel whose request headers must be complete within a time limit."""

    header_timeout = HEADER_TIMEOUT
    _header_call: IDelayedCall | None = None

    def connectionMade(self) -> None:
        """Twisted: a client connected; its first request's headers are timed."""
        super().connectionMade()
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_call = self.callLater(self.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_call is not None:
            if self._header_call.active():
                self._header_call.cancel()
            self._header_call = None

    def allHeadersReceived(self) -> None:
        """Twisted: the headers are complete in time; stop the timer."""
        self._disarm_header_timer()
        super().allHeadersReceived()

    def requestDone(self, request: http.Request) -> None:
        """Twisted: a response is done; time the next request's headers."""
        super().requestDone(request)
        if self.persistent and not getattr(self.transport, "disconnecting", False):
            self._arm_header_timer()  # the next request's headers, on the same terms

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Twisted: the connection closed; stop the timer."""
        self._disarm_header_timer()
        super().connectionLost(reason)

    def _headers_too_slow(self) -> None:
        self._header_call = None
        site = _guarded_site(self)
        if site is not None:
            site.refusals.warn(
                "closed a connection: request headers not complete within {t:g}s",
                "headers",
                t=self.header_timeout,
            )
        if isinstance(self.transport, _Abortable):
            self.transport.abortConnection()


class GuardedSite(Site):
    """A :class:`Site` with the defences above; ``authenticated(request)`` says whether
    a request's headers (or URL) carry valid credentials."""

    requestFactory = GuardedRequest

    def __init__(
        self,
        resource: IResource,
        authenticated: Callable[[Request, bytes], bool],
        reactor: IReactorTime,
        header_timeout: float = HEADER_TIMEOUT,
    ) -> None:
        super().__init__(resource, logFormatter=access_log_line, reactor=reactor)
        self.authenticated = authenticated
        self.refusals = LimitedLog(log, reactor)
        self.header_timeout = header_timeout

    def protocol(self) -> GuardedChannel:  # type: ignore[override]  # Twisted returns its HTTP/2-negotiating wrapper; ours is the plain channel
        """The channel for a new connection: a GuardedChannel, HTTP/1.1 only."""
        # HTTP/1.1 only (no HTTP/2 negotiation): the channel is ours.
        channel = GuardedChannel()
        channel.header_timeout = self.header_timeout
        return channel

    def refuse_body(self, request: Request, length: int | None) -> tuple[int, str, str] | None:
        """Why a request's body must not be read, from its headers alone (None: read it)."""
        if not length:
            return None
        if length > MAX_BODY_BYTES:
            return TOO_LARGE
        if not self.authenticated(request, getattr(request.channel, "_path", b"")):
            return (401, "Unauthorized", "a valid token is required")
        return None
