"""What the service says when it listens: where it serves, and how to log in, without
putting its token in a log file or the journal.

The log shows the token masked and names the file that holds it (``server.json``,
readable by its owner alone).  Only an interactive start (standard output is a
terminal) is shown the address with the whole token, as Jupyter's server does; that
line goes to the terminal itself, never through the log (which may be a file even then).
"""

from __future__ import annotations

import ipaddress
import os

from twisted.logger import Logger

log = Logger()

#: How much of the token the log shows.
SHOWN = 4


def masked(token: str) -> str:
    """``token`` as a log may show it: its first characters (a quarter at most), then
    ``...``."""
    return token[: min(SHOWN, len(token) // 4)] + "..."


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def warn_if_exposed(bound: str, everywhere: bool, tls: bool) -> None:
    """The warning of a service other machines reach over plain HTTP."""
    if not tls and (everywhere or not _is_loopback(bound)):
        log.warn(
            "WARNING: ipytwist is reachable from other machines over plain HTTP: the "
            "token and all code and output cross the network unencrypted. Listen on "
            "interface=127.0.0.1, or use an ssl: endpoint."
        )


def announce(url: str, token: str, info_path: str, terminal: int = 1, hub_api: str = "") -> None:
    """Say that the service serves at ``url`` (ending in ``/``): the log gets the token
    masked; a terminal on descriptor ``terminal`` gets the address to open.  Under
    JupyterHub (``hub_api``: its API's URL) the service's own token lets no one in:
    the log says whose logins count instead, and no address with a token is shown."""
    log.info("ipytwist is serving at {url}", url=url)
    if hub_api:
        log.info(
            "logins go through JupyterHub ({api}): its tokens with this server's scope, "
            "and its OAuth for browsers",
            api=hub_api,
        )
        return
    log.info(
        "token {masked} (the whole token is in {path}, readable by you alone)",
        masked=masked(token),
        path=info_path,
    )
    if os.isatty(terminal):
        os.write(terminal, f"\n    Open {url}?token={token}\n\n".encode())
