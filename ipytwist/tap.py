"""``twistd ipytwist``: options and the service tree."""

from __future__ import annotations

import gc
import os
import secrets
import stat
from typing import TYPE_CHECKING, Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure

from .announce import announce, warn_if_exposed
from .config import Config
from .host import KernelHost
from .kernel.linkspawn import choose_provisioner
from .kernel.supervisor import Provisioner
from .kernel.transcript import MIN_BYTES as MIN_TRANSCRIPT_BYTES
from .paths import default_state_dir
from .private import write_private_json
from .statedir import ExitStatus as _ExitStatus
from .statedir import StateDirLock, StateDirTree
from .tokenfile import load_or_make_token
from .web.auth import Authenticator
from .web.forwarded import trusted_proxy_option
from .web.prefix import normalise_base_url
from .web.site import make_site
from .web.transport import WebSocketTransport
from .zmq import ZmqTransport

if TYPE_CHECKING:
    # The type Twisted gives its global reactor: time, processes, descriptors, TCP.
    from twisted.internet import _IReactorCommon as Reactor

log = Logger()


_BASE_URL_HELP = "URL prefix everything is served under, e.g. /user/alice/ (a plain path)."
_ORPHAN_HELP = "Seconds a kernel with no service waits for the next, then ends with its children."


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = "Host IPython kernels for Jupyter clients over ZeroMQ, REST and WebSocket."
    optFlags = [
        [
            "allow-client-shutdown",
            None,
            "A client's shutdown_request ends (with restart: restarts) a hosted kernel "
            "for everyone (default: it is answered and the kernel is left as it is).",
        ],
        ["keep-kernels", None, "SIGTERM leaves the kernels running for the next start."],
        ["no-fork-server", None, "Start each kernel in a new Python, not forked from one."],
    ]
    optParameters = [
        [
            "listen",
            "l",
            "tcp:8888:interface=127.0.0.1",
            "Twisted endpoint to listen on (an ssl: endpoint gives HTTPS/WSS).",
        ],
        [
            "token",
            None,
            None,
            "Access token (default: $IPYTWIST_TOKEN, else the one kept in STATE_DIR/token, "
            "made at random on the first start).",
        ],
        [
            "state-dir",
            None,
            None,
            "Where connection files live (default: $XDG_DATA_HOME/ipytwist).",
        ],
        ["max-kernels", None, Config.max_kernels, "Most kernels at once (0: no limit).", int],
        [
            "cull-idle",
            None,
            Config.cull_idle,
            "Shut down kernels idle this many seconds (0: never).",
            float,
        ],
        [
            "prespawn",
            None,
            Config.prespawn,
            "Interpreters kept warm so a new kernel is ready at once.",
            int,
        ],
        [
            "max-starting",
            None,
            Config.max_starting,
            "Interpreters started at once (default: one per CPU; 0: no limit); the "
            "kernels asked for meanwhile are 'starting' until their turn.",
            int,
        ],
        [
            "replay-messages",
            None,
            Config.replay_messages,
            "iopub messages kept per kernel for replay.",
            int,
        ],
        [
            "replay-bytes",
            None,
            Config.replay_bytes,
            "Bytes of iopub kept per kernel for replay.",
            int,
        ],
        [
            "transcript-bytes",
            None,
            Config.transcript_bytes,
            "Bytes of cells and outputs kept per kernel for its notebook page: their "
            f"UTF-8 text plus a fixed overhead each (at least {MIN_TRANSCRIPT_BYTES}).",
            int,
        ],
        [
            "header-timeout",
            None,
            Config.header_timeout,
            "Seconds a client has to send a request's headers.",
            float,
        ],
        ["orphan-timeout", None, Config.orphan_timeout, _ORPHAN_HELP, float],
        ["base-url", None, Config.base_url, _BASE_URL_HELP],
        [
            "max-message-bytes",
            None,
            Config.max_message_bytes,
            "Largest message accepted from a client, in bytes (ZeroMQ and WebSocket).",
            int,
        ],
    ]

    def __init__(self) -> None:
        usage.Options.__init__(self)
        self["allow-origin"] = []
        self["trusted-proxy"] = []

    def opt_allow_origin(self, pattern: str) -> None:
        """Also accept WebSocket Origins matching this glob pattern (repeatable)."""
        self["allow-origin"].append(pattern)

    def opt_trusted_proxy(self, address: str) -> None:
        """Believe X-Forwarded-For/-Proto/-Host (or Forwarded) from this IP address or
        CIDR network only (repeatable; default: from no one)."""
        self["trusted-proxy"].append(trusted_proxy_option(address))

    def postOptions(self) -> None:
        if not self["token"]:
            self["token"] = os.environ.get("IPYTWIST_TOKEN") or None  # (the token file's)
        if not self["state-dir"]:
            self["state-dir"] = default_state_dir()
        for key in ("max-kernels", "prespawn", "cull-idle", "max-starting"):
            if self[key] < 0:
                raise usage.UsageError(f"--{key} must be >= 0")
        for key in ("header-timeout", "orphan-timeout"):
            if self[key] <= 0:
                raise usage.UsageError(f"--{key} must be > 0")
        for key in ("replay-messages", "replay-bytes", "transcript-bytes", "max-message-bytes"):
            if self[key] < 1:
                raise usage.UsageError(f"--{key} must be >= 1")
        if self["transcript-bytes"] < MIN_TRANSCRIPT_BYTES:
            raise usage.UsageError(f"--transcript-bytes must be >= {MIN_TRANSCRIPT_BYTES}")
        check_endpoint(self["listen"])
        try:
            self["base-url"] = normalise_base_url(self["base-url"])
        except ValueError as e:
            raise usage.UsageError(f"--base-url: {e}") from None
        check_state_dir(self["state-dir"])

    def config(self) -> Config:
        """The settings these options give (the one place they are read)."""
        return Config(
            state_dir=self["state-dir"],
            max_kernels=self["max-kernels"],
            cull_idle=self["cull-idle"],
            prespawn=self["prespawn"],
            max_starting=self["max-starting"],
            client_shutdown=bool(self["allow-client-shutdown"]),
            replay_messages=self["replay-messages"],
            replay_bytes=self["replay-bytes"],
            transcript_bytes=self["transcript-bytes"],
            max_message_bytes=self["max-message-bytes"],
            allow_origins=tuple(self["allow-origin"]),
            trusted_proxies=tuple(self["trusted-proxy"]),
            header_timeout=self["header-timeout"],
            keep_kernels=bool(self["keep-kernels"]),
            fork_server=not self["no-fork-server"],
            orphan_timeout=self["orphan-timeout"],
            base_url=self["base-url"],
        )


def _provisioner(reactor: Reactor, config: Config) -> Provisioner:
    """Kernels behind keepers (forked by a fork server unless told not to), or pipes."""
    return choose_provisioner(
        reactor, config.state_dir, config.orphan_timeout, fork_server=config.fork_server
    )


def check_state_dir(path: str) -> None:
    """Refuse a state directory others could plant files (a server.json symlink) in."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return  # created 0700 at start
    if not stat.S_ISDIR(st.st_mode):
        raise usage.UsageError(f"--state-dir {path}: not a directory")
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise usage.UsageError(
            f"--state-dir {path}: unsafe (it must belong to you and be writable by you "
            "alone, as the token is written there)"
        )


def check_endpoint(description: str) -> None:
    """Refuse a --listen that can never work (unknown type, bad port) before starting."""
    try:
        endpoint = serverFromString(None, description)  # parses only: no reactor needed
    except (ValueError, KeyError, TypeError) as e:
        raise usage.UsageError(f"--listen {description!r}: {e}") from None
    port = getattr(endpoint, "_port", 0)
    if isinstance(port, int) and not 0 <= port <= 65535:
        raise usage.UsageError(f"--listen {description!r}: port {port} is not in 0-65535")


class _Listening(StreamServerEndpointService):
    """Listens, then logs the address to open (with the token) and writes server.json."""

    def __init__(
        self,
        endpoint: Any,
        factory: Any,
        token: str,
        state_dir: str,
        tls: bool,
        *,
        description: str = "",
        exit_status: _ExitStatus,
        base_url: str = "/",
        hub_api: str = "",
    ):
        StreamServerEndpointService.__init__(self, endpoint, factory)
        self.description = description
        self.exit_status = exit_status
        self.token = token
        self.state_dir = state_dir
        self.tls = tls
        self.base_url = base_url
        self.hub_api = hub_api
        self.info_path = os.path.join(state_dir, "server.json")

    def privilegedStartService(self) -> None:
        # As the base class does, but a failure gets one line and exit 1 (the base
        # class logs a traceback and goes on serving nothing).
        Service.privilegedStartService(self)
        self._waitingForPort = self.endpoint.listen(self.factory)
        self._waitingForPort.addCallbacks(self._announce, self._failed)

    def _failed(self, failure: Failure) -> None:
        """Listening failed (port in use, no permission): one line, then exit 1."""
        if failure.check(CancelledError):
            return
        log.critical(
            "ipytwist cannot listen on {listen}: {why}",
            listen=self.description,
            why=failure.getErrorMessage(),
        )
        self.exit_status.fail(1)

    def _announce(self, port: Any) -> Any:
        addr = port.getHost()
        bound = getattr(addr, "host", "127.0.0.1")
        everywhere = bound in ("0.0.0.0", "::", "")
        host = "127.0.0.1" if everywhere else bound
        if ":" in host:
            host = f"[{host}]"
        base = f"{'https' if self.tls else 'http'}://{host}:{addr.port}{self.base_url[:-1]}"
        log.info(
            "listening on {bound} port {port}{what}",
            bound=bound or "*",
            port=addr.port,
            what=" (every interface)" if everywhere else "",
        )
        warn_if_exposed(bound, everywhere, self.tls)
        log.info("state directory: {dir}", dir=self.state_dir)
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        info = {
            "url": base + "/",
            "port": addr.port,
            "token": self.token,
            "pid": os.getpid(),
            "state_dir": self.state_dir,
        }
        try:
            write_private_json(self.info_path, info)
        except OSError as e:  # (the disk filled up since the start)
            log.critical("ipytwist cannot write {path}: {why}", path=self.info_path, why=e)
            self.exit_status.fail(1)
            return port
        # (the token: masked in the log; under JupyterHub not named at all)
        announce(base + "/", self.token, self.info_path, hub_api=self.hub_api)
        return port

    def stopService(self) -> Deferred[None] | None:
        try:
            os.unlink(self.info_path)
        except FileNotFoundError:
            pass
        stopped: Deferred[None] | None = StreamServerEndpointService.stopService(self)
        return stopped


def _child(service: IService, parent: MultiService) -> None:
    service.setServiceParent(parent)


def _authenticator(
    options: Options, token: str, reactor: Reactor, host: KernelHost, top: MultiService
) -> Authenticator:
    """The service token's authenticator; under JupyterHub (``ipytwist singleuser`` sets
    ``options["hub"]``) the hub's, with its activity reports in the tree."""
    config = host.config
    if options.get("hub") is None:
        return Authenticator(token, reactor, list(config.allow_origins), config.base_url)
    from .hub.compose import hub_parts

    auth, reporter = hub_parts(options["hub"], reactor, host, list(config.allow_origins))
    if reporter is not None:
        _child(reporter, top)
    return auth


def makeService(options: Options, reactor: Reactor | None = None) -> MultiService:
    """The service tree of ``twistd ipytwist``: the one place that composes it."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    import txaio
    from txaio.tx import set_global_log_level

    txaio.use_twisted()
    set_global_log_level("warn")  # autobahn's per-frame debug lines are noise here
    exit_status = _ExitStatus(reactor)

    def refused(why: str) -> None:
        log.critical("ipytwist cannot start: {why}", why=why)
        exit_status.fail(1)

    given: str | None = options["token"]

    def kept_token() -> None:
        """Once the state directory is held: the token kept there, unless one is given."""
        if given is None:
            auth.token = listening.token = load_or_make_token(options["state-dir"])

    # Nothing starts unless this service alone holds its state directory.
    top = StateDirTree(StateDirLock(options["state-dir"], kept_token), refused, exit_status)
    _child(exit_status, top)
    config = options.config()
    sockets = WebSocketTransport(reactor, config)
    transports = (ZmqTransport(reactor, config), sockets)
    host = KernelHost(
        reactor, config, provisioner=_provisioner(reactor, config), transports=transports
    )
    _child(host, top)  # started first, stopped last
    # Until the token file is read, a token no one knows (nothing listens before).
    token = given or secrets.token_hex(32)
    auth = _authenticator(options, token, reactor, host, top)
    site = make_site(host, auth, reactor, sockets)
    listen = options["listen"]
    endpoint = serverFromString(reactor, listen)
    listening = _Listening(
        endpoint,
        site,
        token,
        options["state-dir"],
        tls=listen.startswith(("ssl:", "tls:")),
        description=listen,
        exit_status=exit_status,
        base_url=config.base_url,
        hub_api=options["hub"].api_url if options.get("hub") is not None else "",
    )
    _child(listening, top)
    # What is made so far lives as long as the service (modules, classes, the service
    # tree): the garbage collector's full passes, which a storm of requests brings
    # about, need not look at it again (they take a third less time).
    gc.freeze()
    return top
