"""Finding the service, its token and a kernel: the console's REST side.

Every failure is a :class:`ConsoleError` whose text is the one line the user
sees (a wrong URL, a refused token, an unknown kernel, a certificate that does
not verify); nothing here prints a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from ..paths import data_dir
from ..private import touch_private, write_private_json

__all__ = ["ConsoleError", "Server", "TokenStore", "console_dir", "local_server"]

TIMEOUT = 10.0


class ConsoleError(Exception):
    """A failure the console reports in one line, exiting non-zero."""


class Unauthorized(ConsoleError):
    """The server refused the token."""


def console_dir() -> str:
    """Where the console keeps tokens and history (created 0700)."""
    path = os.path.join(data_dir(), "console")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def private_path(name: str) -> str:
    """A file in :func:`console_dir` only the user can read (created 0600 if absent)."""
    return touch_private(os.path.join(console_dir(), name))


def local_server(state_dir: str) -> tuple[str, str]:
    """The URL and token of the service that wrote ``STATE_DIR/server.json``."""
    path = os.path.join(state_dir, "server.json")
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
        return str(info["url"]), str(info["token"])
    except FileNotFoundError:
        raise ConsoleError(
            f"no local ipytwist service ({path} is missing): start one with "
            "`twistd -n ipytwist`, or give its URL"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConsoleError(f"cannot read {path}: {e}") from None


def normalise_url(url: str) -> str:
    """``http(s)://host[:port][/prefix]/`` or a ConsoleError."""
    if "://" not in url:
        url = "http://" + url
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConsoleError(f"not an http(s) URL: {url}")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConsoleError(f"bad port in URL: {url}") from None
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class TokenStore:
    """Tokens remembered per server URL, in a file only the user can read."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or private_path("tokens.json")

    def _load(self) -> dict[str, str]:
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def get(self, url: str) -> str | None:
        return self._load().get(url)

    def put(self, url: str, token: str | None) -> None:
        data = self._load()
        if token is None:
            data.pop(url, None)
        else:
            data[url] = token
        write_private_json(self.path, data)


def history_path(url: str) -> str:
    """The input history file of one server."""
    return private_path(f"history-{hashlib.sha256(url.encode()).hexdigest()[:16]}")


@dataclass
class Server:
    """One service's REST API, with its token."""

    url: str  # normalised, ends with /
    token: str
    insecure: bool = False

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.url.startswith("https:"):
            return None
        ctx = ssl.create_default_context()
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def ws_url(self, kernel_id: str) -> str:
        base = "ws" + self.url[len("http") :]
        return f"{base}api/kernels/{urllib.parse.quote(kernel_id, safe='')}/channels"

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One REST call; the decoded JSON answer (None for an empty one)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"token {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT, context=self.ssl_context()) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            raise self._http_error(e, path) from None
        except urllib.error.URLError as e:
            raise ConsoleError(self._unreachable(e.reason)) from None
        except (OSError, ValueError) as e:
            raise ConsoleError(self._unreachable(e)) from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise self._not_ipytwist() from None

    def _not_ipytwist(self) -> ConsoleError:
        return ConsoleError(f"{self.url} did not answer like an ipytwist service")

    def _object(self, answer: object) -> dict[str, Any]:
        """A JSON object answer (a kernel's model); anything else is not our service's."""
        if not isinstance(answer, dict):
            raise self._not_ipytwist()
        return answer

    def _unreachable(self, reason: object) -> str:
        if isinstance(reason, ssl.SSLCertVerificationError):
            return (
                f"the TLS certificate of {self.url} does not verify ({reason.verify_message}); "
                "--insecure skips the check"
            )
        text = getattr(reason, "strerror", None) or str(reason)
        return f"cannot reach {self.url}: {text}"

    def _http_error(self, e: urllib.error.HTTPError, path: str) -> ConsoleError:
        if e.code in (401, 403):
            return Unauthorized(f"{self.url} refused the token ({e.code} {e.reason})")
        if e.code == 404 and path.startswith("api/kernels/"):
            kernel = path.split("/")[2]
            return ConsoleError(f"no kernel {kernel} at {self.url}")
        if e.code == 404:
            return ConsoleError(f"{self.url} is not an ipytwist service (404 for /{path})")
        return ConsoleError(f"{self.url}: {e.code} {e.reason}")

    # -- the API the console uses ---------------------------------------------------------

    def kernels(self) -> list[dict[str, Any]]:
        answer = self.call("GET", "api/kernels")
        if not isinstance(answer, list):
            raise self._not_ipytwist()
        return [k for k in answer if isinstance(k, dict)]

    def kernel(self, kernel_id: str) -> dict[str, Any]:
        return self._object(
            self.call("GET", f"api/kernels/{urllib.parse.quote(kernel_id, safe='')}")
        )

    def start_kernel(self) -> dict[str, Any]:
        return self._object(self.call("POST", "api/kernels", {}))

    def interrupt(self, kernel_id: str) -> None:
        self.call("POST", f"api/kernels/{urllib.parse.quote(kernel_id, safe='')}/interrupt")

    def shutdown(self, kernel_id: str) -> None:
        self.call("DELETE", f"api/kernels/{urllib.parse.quote(kernel_id, safe='')}")
