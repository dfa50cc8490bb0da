"""``twistd ipytwist``: options and the service tree."""

from __future__ import annotations

import json
import os
import secrets
import signal
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python import usage

from .host import KernelHost
from .web.auth import Authenticator
from .web.site import make_site

log = Logger()


def default_state_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "ipytwist")


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = "Host IPython kernels for Jupyter clients over ZeroMQ, REST and WebSocket."
    optParameters = [
        [
            "listen",
            "l",
            "tcp:8888:interface=127.0.0.1",
            "Twisted endpoint to listen on (an ssl: endpoint gives HTTPS/WSS).",
        ],
        ["token", None, None, "Access token (default: $IPYTWIST_TOKEN, else random)."],
        [
            "state-dir",
            None,
            None,
            "Where connection files live (default: $XDG_DATA_HOME/ipytwist).",
        ],
        ["max-kernels", None, 0, "Most kernels at once (0: no limit).", int],
        ["cull-idle", None, 0.0, "Shut down kernels idle this many seconds (0: never).", float],
        ["prespawn", None, 0, "Interpreters kept warm so a new kernel is ready at once.", int],
        ["replay-messages", None, 10_000, "iopub messages kept per kernel for replay.", int],
        ["replay-bytes", None, 64 * 1024 * 1024, "Bytes of iopub kept per kernel for replay.", int],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["allow-origin"] = []

    def opt_allow_origin(self, pattern: str) -> None:
        """Also accept WebSocket Origins matching this glob pattern (repeatable)."""
        self["allow-origin"].append(pattern)

    def postOptions(self) -> None:
        if not self["token"]:
            self["token"] = os.environ.get("IPYTWIST_TOKEN") or secrets.token_hex(32)
        if not self["state-dir"]:
            self["state-dir"] = default_state_dir()
        for key in ("max-kernels", "prespawn"):
            if self[key] < 0:
                raise usage.UsageError(f"--{key} must be >= 0")


class _Listening(StreamServerEndpointService):
    """Listens, then logs the address to open (with the token) and writes server.json."""

    def __init__(self, endpoint: Any, factory: Any, token: str, state_dir: str, tls: bool):
        super().__init__(endpoint, factory)
        self.token = token
        self.state_dir = state_dir
        self.tls = tls
        self.info_path = os.path.join(state_dir, "server.json")

    def startService(self) -> None:
        super().startService()
        self._waitingForPort.addCallback(self._announce)

    def _announce(self, port: Any) -> Any:
        addr = port.getHost()
        host = getattr(addr, "host", "127.0.0.1")
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        base = f"{'https' if self.tls else 'http'}://{host}:{addr.port}"
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        fd = os.open(self.info_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(
                {
                    "url": base + "/",
                    "port": addr.port,
                    "token": self.token,
                    "pid": os.getpid(),
                    "state_dir": self.state_dir,
                },
                f,
            )
        log.info("ipytwist is serving at {base}/", base=base)
        log.info("Open {base}/?token={token}", base=base, token=self.token)
        return port

    def stopService(self) -> Any:
        try:
            os.unlink(self.info_path)
        except FileNotFoundError:
            pass
        return super().stopService()


class _ExitStatus(Service):
    """A clean shutdown on SIGTERM exits 0, as supervisors expect of a stopped service.

    twistd re-raises the signal that stopped the reactor (the process would end
    "killed by SIGTERM"); once every service has stopped, forget it.
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def startService(self) -> None:
        super().startService()
        self.reactor.addSystemEventTrigger("after", "shutdown", self._clear)

    def _clear(self) -> None:
        if getattr(self.reactor, "_exitSignal", None) == signal.SIGTERM:
            self.reactor._exitSignal = None


def makeService(options: Options, reactor: Any = None) -> MultiService:
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    import txaio

    txaio.use_twisted()
    txaio.set_global_log_level("warn")  # autobahn's per-frame debug lines are noise here
    top = MultiService()
    _ExitStatus(reactor).setServiceParent(top)
    host = KernelHost(
        reactor,
        options["state-dir"],
        max_kernels=options["max-kernels"],
        cull_idle=options["cull-idle"],
        prespawn=options["prespawn"],
        log_messages=options["replay-messages"],
        log_bytes=options["replay-bytes"],
    )
    host.setServiceParent(top)  # started first, stopped last
    auth = Authenticator(options["token"], reactor, options["allow-origin"])
    site = make_site(host, auth, reactor)
    listen = options["listen"]
    endpoint = serverFromString(reactor, listen)
    _Listening(
        endpoint,
        site,
        options["token"],
        options["state-dir"],
        tls=listen.startswith(("ssl:", "tls:")),
    ).setServiceParent(top)
    return top
