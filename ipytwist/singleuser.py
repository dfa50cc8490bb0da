"""``ipytwist singleuser``: the service as JupyterHub's single-user server.

A hub's spawner runs it (``c.Spawner.cmd = ["ipytwist", "singleuser"]``) with the
``JUPYTERHUB_*`` environment; it runs ``twistd -n ipytwist`` listening where
``JUPYTERHUB_SERVICE_URL`` says, under ``JUPYTERHUB_SERVICE_PREFIX``, with the hub as
its authenticator (``makeService`` composes it: see :mod:`ipytwist.hub`).  Arguments
after ``singleuser`` (``c.Spawner.args``) are the service's options.
"""

from __future__ import annotations

import os
import sys

from twisted.python import usage

from .hub.env import HubEnv, HubEnvError

__all__ = ["run", "twistd_args"]


def twistd_args(env: HubEnv, args: list[str]) -> list[str]:
    """twistd's arguments for ``env``: in the foreground, no pid file, logging to
    standard output (the spawner's log), the service's own options after ``ipytwist``."""
    return [
        "--nodaemon",
        "--pidfile=",
        "ipytwist",
        "--listen",
        env.listen,
        "--base-url",
        env.prefix,
        *args,
    ]


def run(args: list[str]) -> int:
    """Run the single-user server until the hub stops it; its exit status."""
    try:
        env = HubEnv.from_environ(os.environ)
    except HubEnvError as e:
        print(f"ipytwist singleuser: {e}", file=sys.stderr)
        return 1
    from twisted.scripts._twistd_unix import ServerOptions
    from twisted.scripts.twistd import runApp

    config = ServerOptions()
    try:
        config.parseOptions(twistd_args(env, args))
    except usage.UsageError as e:
        print(f"ipytwist singleuser: {e}", file=sys.stderr)
        return 2
    config.subOptions["hub"] = env  # makeService chooses the hub's authenticator
    runApp(config)
    return 0
