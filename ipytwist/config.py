"""The service's settings: one frozen object, built by ``makeService`` from the options
and passed down, so no default is written twice and every limit reaches every kernel."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .kernel.outputlog import DEFAULT_LOG_BYTES, DEFAULT_LOG_MESSAGES
from .kernel.transcript import DEFAULT_MAX_BYTES as DEFAULT_TRANSCRIPT_BYTES
from .wire import DEFAULT_MAX_MESSAGE_BYTES

__all__ = ["HEADER_TIMEOUT", "MAX_STARTING", "ORPHAN_TIMEOUT", "Config"]

#: Seconds a client has to send a request's headers (slowloris defence).
HEADER_TIMEOUT = 10.0
#: Interpreters started at once: one per core this process may run on.  Each spends
#: its start importing IPython on a whole core; more at once only slow the service.
MAX_STARTING = max(1, len(os.sched_getaffinity(0)))
#: An hour: a supervised service is back within seconds; one that is not back within
#: an hour is not coming.
ORPHAN_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Config:
    """Every setting of one service (``twistd ipytwist --help`` documents them)."""

    state_dir: str
    max_kernels: int = 0
    cull_idle: float = 0.0
    prespawn: int = 0
    #: Interpreters started at once (0: no limit); the others wait their turn.
    max_starting: int = MAX_STARTING
    #: A client's shutdown_request ends (or restarts) a hosted kernel for everyone.
    client_shutdown: bool = False
    replay_messages: int = DEFAULT_LOG_MESSAGES
    replay_bytes: int = DEFAULT_LOG_BYTES
    transcript_bytes: int = DEFAULT_TRANSCRIPT_BYTES
    #: The largest message accepted from a client, on ZeroMQ and WebSocket alike.
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    allow_origins: tuple[str, ...] = ()
    #: Reverse proxies (addresses, CIDR networks) whose X-Forwarded-* are believed.
    trusted_proxies: tuple[str, ...] = ()
    #: Seconds a client has to send a request's headers (slowloris defence).
    header_timeout: float = HEADER_TIMEOUT
    #: SIGTERM leaves the kernels' interpreters running for the next service.
    keep_kernels: bool = False
    #: New kernels, restarts and recoveries are forked by a fork server that has
    #: imported IPython (docs/fork-server.md), where this system can fork.
    fork_server: bool = True
    #: Seconds a kernel's keeper waits for a service before it ends its interpreter.
    orphan_timeout: float = ORPHAN_TIMEOUT
    #: The URL prefix every page, asset, API route and cookie lives under ("/" or
    #: "/user/alice/": starts and ends with "/", see ``web.prefix``).
    base_url: str = "/"
