"""The hub's parts of a service, for ``makeService`` to put in its tree (it stays the
one composition root): the authenticator and, when the hub wants them, activity reports."""

from __future__ import annotations

from typing import Any

from ..host import KernelHost
from .activity import ActivityReporter
from .api import HubApi, agent_fetch
from .auth import HubAuthenticator
from .env import HubEnv

__all__ = ["hub_parts"]


def hub_parts(
    env: HubEnv, reactor: Any, host: KernelHost, allow_origins: list[str]
) -> tuple[HubAuthenticator, ActivityReporter | None]:
    """The authenticator checking with the hub at ``env.api_url``, and the activity
    reporter (None without ``JUPYTERHUB_ACTIVITY_URL``)."""
    api = HubApi(agent_fetch(reactor), reactor, env.api_url, env.api_token)
    auth = HubAuthenticator(env, api, reactor, allow_origins)
    if not env.activity_url:
        return auth, None
    reporter = ActivityReporter(
        host, api, reactor, env.activity_url, env.server_name, env.activity_interval
    )
    return auth, reporter
