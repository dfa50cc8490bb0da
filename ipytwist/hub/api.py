"""The hub's REST API as this server uses it: who holds a token, a code's token, activity.

Each call is bounded: an answer must come within ``TIMEOUT`` seconds and hold at most
``MAX_ANSWER_BYTES``; anything else (no answer, an error status, a body that is not a
JSON object) fails the call with :class:`HubError`, whose message is one line that
names no token.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

__all__ = ["MAX_ANSWER_BYTES", "TIMEOUT", "HubApi", "HubError", "Fetch", "agent_fetch"]

#: Seconds the hub has to answer one call.
TIMEOUT = 10.0
#: The largest answer read from the hub (a user model is a few KiB).
MAX_ANSWER_BYTES = 1024 * 1024

#: ``fetch(method, url, headers, body)`` fires with ``(status, body)``.
Fetch = Callable[[bytes, str, dict[bytes, bytes], bytes | None], "Deferred[tuple[int, bytes]]"]


class HubError(Exception):
    """The hub did not answer as documented (its message is one line, with no token)."""


class _Bounded(Protocol):
    """Collects a response body up to a limit, then gives up on the connection."""

    def __init__(self, done: Deferred[bytes], limit: int) -> None:
        self.done = done
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0

    def dataReceived(self, data: bytes) -> None:
        """Twisted: part of the body."""
        self.size += len(data)
        if self.size > self.limit:
            if not self.done.called:
                self.done.errback(HubError(f"answer longer than {self.limit} bytes"))
            producer: Any = self.transport  # the response's body: an IPushProducer
            if producer is not None:
                producer.stopProducing()
            return
        self.parts.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Twisted: the body is complete (or cut off)."""
        if self.done.called:
            return
        if reason.check(ResponseDone):
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(HubError(f"answer cut off: {reason.getErrorMessage()}"))


def agent_fetch(reactor: Any, limit: int = MAX_ANSWER_BYTES) -> Fetch:
    """A :data:`Fetch` over Twisted's HTTP client, with persistent connections."""
    agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=True))

    def fetch(
        method: bytes, url: str, headers: dict[bytes, bytes], body: bytes | None
    ) -> Deferred[tuple[int, bytes]]:
        producer = FileBodyProducer(io.BytesIO(body)) if body is not None else None
        d = agent.request(
            method, url.encode(), Headers({k: [v] for k, v in headers.items()}), producer
        )

        def read(response: IResponse) -> Deferred[tuple[int, bytes]]:
            got: Deferred[bytes] = Deferred()
            response.deliverBody(_Bounded(got, limit))
            return got.addCallback(lambda data: (response.code, data))

        return d.addCallback(read)

    return fetch


class HubApi:
    """Calls to the hub's API at ``api_url`` (``…/hub/api``) with this server's token."""

    def __init__(
        self,
        fetch: Fetch,
        clock: IReactorTime,
        api_url: str,
        api_token: str,
        timeout: float = TIMEOUT,
    ) -> None:
        self.fetch = fetch
        self.clock = clock
        self.api_url = api_url.rstrip("/")
        self.api_token = api_token
        self.timeout = timeout

    def _call(
        self, method: bytes, url: str, token: str, body: bytes | None = None, form: bool = False
    ) -> Deferred[dict[str, Any]]:
        headers = {b"authorization": b"token " + token.encode(), b"accept": b"application/json"}
        if body is not None:
            headers[b"content-type"] = (
                b"application/x-www-form-urlencoded" if form else b"application/json"
            )
        d = self.fetch(method, url, headers, body)
        d.addTimeout(self.timeout, self.clock)
        return d.addCallbacks(_json_object, _as_hub_error)

    def user_for_token(self, token: str) -> Deferred[dict[str, Any]]:
        """The hub's model of the user (or service) holding ``token``, with its ``scopes``;
        ``{}`` when the hub says the token is not valid (401/403)."""
        return self._call(b"GET", self.api_url + "/user", token).addErrback(_unknown_is_empty)

    def token_for_code(self, code: str, client_id: str, redirect_uri: str) -> Deferred[str]:
        """Exchange an OAuth ``code`` for an access token (the hub's ``oauth2/token``)."""
        form = urlencode(
            {
                "client_id": client_id,
                "client_secret": self.api_token,
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
            }
        ).encode()
        d = self._call(b"POST", self.api_url + "/oauth2/token", self.api_token, form, form=True)

        def access_token(answer: dict[str, Any]) -> str:
            token = answer.get("access_token")
            if not isinstance(token, str) or not token:
                raise HubError("the hub's token answer has no access_token")
            return token

        return d.addCallback(access_token)

    def post_activity(self, url: str, body: dict[str, Any]) -> Deferred[dict[str, Any]]:
        """POST ``body`` to the hub's activity URL (its answer is empty)."""
        return self._call(b"POST", url, self.api_token, json.dumps(body).encode())


class _Refused(HubError):
    """The hub answered 401 or 403: the token is not (or no longer) valid."""


def _json_object(answer: tuple[int, bytes]) -> dict[str, Any]:
    status, body = answer
    if status in (401, 403):
        raise _Refused(f"the hub refused the token ({status})")
    if not 200 <= status < 300:
        raise HubError(f"the hub answered {status}")
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except ValueError:
        raise HubError("the hub's answer is not JSON") from None
    if not isinstance(value, dict):
        raise HubError("the hub's answer is not a JSON object")
    return value


def _as_hub_error(failure: Failure) -> Failure:
    if failure.check(HubError):
        return failure
    if failure.check(TimeoutError):
        return Failure(HubError("the hub did not answer in time"))
    return Failure(HubError(f"the hub is unreachable: {failure.getErrorMessage()[:200]}"))


def _unknown_is_empty(failure: Failure) -> dict[str, Any]:
    failure.trap(_Refused)
    return {}
