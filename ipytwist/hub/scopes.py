"""Who may use this server: the hub's ``access:servers`` scopes, read as the hub does."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["required_scopes", "grants_access"]


def required_scopes(user: str, server_name: str) -> frozenset[str]:
    """The scopes that give access to ``user``'s server ``server_name`` ('' the default)."""
    return frozenset(
        {
            "access:servers",
            f"access:servers!user={user}",
            f"access:servers!server={user}/{server_name}",
        }
    )


def grants_access(
    held: Iterable[object], user: str, server_name: str, extra: Iterable[str] = ()
) -> bool:
    """Whether a token holding ``held`` scopes may use this server.

    Only the scope for *this* server counts: unfiltered ``access:servers``, or filtered
    to its user or to the server itself (``extra``: the hub's
    ``JUPYTERHUB_OAUTH_ACCESS_SCOPES``, which names the same).  A scope filtered by
    group is not resolved (the hub expands those in the token's scopes itself).
    """
    wanted = required_scopes(user, server_name) | {
        s for s in extra if s.startswith("access:servers")
    }
    return any(isinstance(s, str) and s in wanted for s in held)
