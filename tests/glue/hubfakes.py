"""A fake JupyterHub API for the hub glue tests: answers as the hub documents them, or
as a test tells it to (errors, nonsense, silence)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from twisted.internet.defer import Deferred, succeed

from ipytwist.hub.env import HubEnv

API = "http://127.0.0.1:8081/hub/api"
ENVIRON = {
    "JUPYTERHUB_API_TOKEN": "server-api-token",
    "JUPYTERHUB_API_URL": API,
    "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-alice",
    "JUPYTERHUB_OAUTH_CALLBACK_URL": "/user/alice/oauth_callback",
    "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/",
    "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:50123/user/alice/",
    "JUPYTERHUB_USER": "alice",
    "JUPYTERHUB_SERVER_NAME": "",
    "JUPYTERHUB_ACTIVITY_URL": API + "/users/alice/activity",
    "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps(
        ["access:servers!server=alice/", "access:servers!user=alice"]
    ),
    "JUPYTERHUB_BASE_URL": "/",
}
ALICE = "alice-token"
BOB = "bob-token"
ADMIN = "admin-token"
USERS: dict[str, dict[str, Any]] = {
    ALICE: {"kind": "user", "name": "alice", "scopes": ["access:servers!user=alice", "self"]},
    BOB: {"kind": "user", "name": "bob", "scopes": ["access:servers!user=bob"]},
    ADMIN: {"kind": "user", "name": "admin", "scopes": ["access:servers", "admin:users"]},
}

Answer = tuple[int, bytes]


def hub_env(**changes: str) -> HubEnv:
    return HubEnv.from_environ({**ENVIRON, **changes})


@dataclass
class FakeHub:
    """The hub's API: ``/user`` by token, ``oauth2/token`` by code, activity recorded.
    ``override(method, url)`` may answer instead (a Deferred, or an ``Answer``)."""

    users: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(USERS))
    codes: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, str, dict[bytes, bytes], bytes | None]] = field(default_factory=list)
    activity: list[Any] = field(default_factory=list)
    override: Callable[[str, str], Deferred[Answer] | Answer | None] | None = None

    def user_calls(self) -> int:
        return sum(1 for _, url, _, _ in self.calls if url.endswith("/user"))

    def fetch(
        self, method: bytes, url: str, headers: dict[bytes, bytes], body: bytes | None
    ) -> Deferred[Answer]:
        self.calls.append((method.decode(), url, headers, body))
        if self.override is not None:
            answer = self.override(method.decode(), url)
            if isinstance(answer, Deferred):
                return answer
            if answer is not None:
                return succeed(answer)
        return succeed(self._answer(method, url, headers, body))

    def _answer(
        self, method: bytes, url: str, headers: dict[bytes, bytes], body: bytes | None
    ) -> Answer:
        token = headers.get(b"authorization", b"").decode().partition(" ")[2]
        if url == API + "/user":
            user = self.users.get(token)
            if user is None:
                return 403, b'{"status": 403, "message": "Forbidden"}'
            return 200, json.dumps(user).encode()
        if url == API + "/oauth2/token" and method == b"POST":
            form = parse_qs((body or b"").decode())
            if form.get("client_secret") != [ENVIRON["JUPYTERHUB_API_TOKEN"]]:
                return 403, b"{}"
            access = self.codes.pop(form.get("code", [""])[0], None)
            if access is None:
                return 400, b'{"error": "invalid_grant"}'
            return 200, json.dumps({"access_token": access, "token_type": "Bearer"}).encode()
        if url == ENVIRON["JUPYTERHUB_ACTIVITY_URL"] and method == b"POST":
            self.activity.append(json.loads(body or b"null"))
            return 200, b""
        return 404, b"{}"
