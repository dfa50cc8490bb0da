"""The ``JUPYTERHUB_*`` environment a hub's spawner gives its single-user server."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["HubEnv", "HubEnvError"]


class HubEnvError(ValueError):
    """The environment lacks what a single-user server needs, or holds nonsense."""


def _with_slash(path: str) -> str:
    path = "/" + path.strip("/")
    return path if path == "/" else path + "/"


@dataclass(frozen=True)
class HubEnv:
    """What ``jupyterhub-singleuser`` reads from its environment, read the same way."""

    api_token: str
    api_url: str  # e.g. http://127.0.0.1:8081/hub/api (no trailing slash)
    client_id: str
    redirect_uri: str  # JUPYTERHUB_OAUTH_CALLBACK_URL as the hub registered it
    prefix: str  # /user/alice/
    user: str
    server_name: str = ""
    activity_url: str = ""
    activity_interval: float = 300.0
    hub_prefix: str = "/hub/"  # where the browser finds the hub: JUPYTERHUB_BASE_URL + hub/
    #: The hub's host for browsers when it is not this server's (subdomains):
    #: ``https://hub.example.org``, from JUPYTERHUB_HOST; "" (the same host) by default.
    hub_host: str = ""
    access_scopes: frozenset[str] = frozenset()
    #: Where to listen, from JUPYTERHUB_SERVICE_URL (a Twisted endpoint description).
    listen: str = "tcp:8888:interface=127.0.0.1"

    @property
    def authorize_url(self) -> str:
        """The hub's OAuth authorization page, as the browser reaches it (a path, or a
        URL on the hub's own host)."""
        return self.hub_host + self.hub_prefix + "api/oauth2/authorize"

    @property
    def callback_path(self) -> str:
        """The path of our OAuth callback (``/user/alice/oauth_callback``)."""
        return urlsplit(self.redirect_uri).path

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> HubEnv:
        """Read ``environ``; :class:`HubEnvError` names what is missing or wrong."""
        missing = [
            name
            for name in ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_CLIENT_ID", "JUPYTERHUB_USER")
            if not environ.get(name)
        ]
        if missing:
            raise HubEnvError(
                f"{', '.join(missing)} not set: `ipytwist singleuser` is started by JupyterHub"
            )
        prefix = _with_slash(environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/")
        base = _with_slash(environ.get("JUPYTERHUB_BASE_URL") or "/")
        api_url = (environ.get("JUPYTERHUB_API_URL") or "http://127.0.0.1:8081/hub/api").rstrip("/")
        if urlsplit(api_url).scheme not in ("http", "https"):
            raise HubEnvError(f"JUPYTERHUB_API_URL is not an http(s) URL: {api_url!r}")
        callback = environ.get("JUPYTERHUB_OAUTH_CALLBACK_URL") or prefix + "oauth_callback"
        scopes_text = (
            environ.get("JUPYTERHUB_OAUTH_ACCESS_SCOPES")
            or environ.get("JUPYTERHUB_OAUTH_SCOPES")
            or "[]"
        )
        try:
            scopes = json.loads(scopes_text)
            if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                raise ValueError("not a list of strings")
        except ValueError as e:
            raise HubEnvError(f"JUPYTERHUB_OAUTH_ACCESS_SCOPES: {e}") from None
        try:
            interval = float(environ.get("JUPYTERHUB_ACTIVITY_INTERVAL") or 300)
        except ValueError:
            raise HubEnvError("JUPYTERHUB_ACTIVITY_INTERVAL is not a number") from None
        return cls(
            api_token=environ["JUPYTERHUB_API_TOKEN"],
            api_url=api_url,
            client_id=environ["JUPYTERHUB_CLIENT_ID"],
            redirect_uri=callback,
            prefix=prefix,
            user=environ["JUPYTERHUB_USER"],
            server_name=environ.get("JUPYTERHUB_SERVER_NAME", ""),
            activity_url=environ.get("JUPYTERHUB_ACTIVITY_URL", ""),
            activity_interval=max(1.0, interval),
            hub_prefix=base + "hub/",
            hub_host=(environ.get("JUPYTERHUB_HOST") or "").rstrip("/"),
            access_scopes=frozenset(scopes),
            listen=listen_endpoint(environ.get("JUPYTERHUB_SERVICE_URL", "")),
        )


def listen_endpoint(service_url: str) -> str:
    """The Twisted endpoint for ``JUPYTERHUB_SERVICE_URL`` (``http://127.0.0.1:PORT/...``);
    the address jupyterhub-singleuser would listen on without it: 127.0.0.1:8888."""
    if not service_url:
        return "tcp:8888:interface=127.0.0.1"
    parts = urlsplit(service_url)
    if parts.scheme != "http":  # https: the hub's internal_ssl, not supported yet
        raise HubEnvError(f"JUPYTERHUB_SERVICE_URL is not an http URL: {service_url!r}")
    try:
        port = parts.port or 80
    except ValueError:
        raise HubEnvError(f"JUPYTERHUB_SERVICE_URL has a bad port: {service_url!r}") from None
    host = parts.hostname or "127.0.0.1"
    if host in ("", "*"):
        host = "0.0.0.0"
    interface = host.replace(":", r"\:")
    return f"tcp:{port}:interface={interface}"
