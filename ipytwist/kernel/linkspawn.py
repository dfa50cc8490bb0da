"""Starting a worker behind a keeper: its socket bound here, its keeper this service's
child, the link connected at once (docs/durable-kernels.md)."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable

from twisted.internet.endpoints import connectProtocol
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from ..link.endpoint import LinkClientEndpoint
from ..worker.keeper import (
    DIE_WITH_PARENT_ENV,
    KERNEL_ENV,
    LINK_FD_ENV,
    LINK_PATH_ENV,
    ORPHAN_ENV,
    SECRET_FD_ENV,
    prepare_link,
)
from .forkclient import ForkedKeeper, ForkServer, fork_server_usable
from .linked import Keeper, LinkedWorker
from .process import TOKEN_ENV, LocalProvisioner, ProcessReactor
from .supervisor import Provisioner, WorkerListener

__all__ = ["DEFAULT_ORPHAN_TIMEOUT", "LINK_ENV", "KeeperProcess", "LinkProvisioner"]
__all__ += ["choose_provisioner"]

#: ``socket`` starts workers behind keepers (the service's default), ``pipes`` as before.
LINK_ENV = "IPYTWIST_WORKER_LINK"
#: Seconds a keeper with no service waits for one before it ends its interpreter.
DEFAULT_ORPHAN_TIMEOUT = 3600.0


class KeeperProcess(ProcessProtocol):
    """The keeper as the service's child (while the service that started it lives)."""

    reports_end = True

    def __init__(self, worker: LinkedWorker) -> None:
        self.worker = worker

    def connectionMade(self) -> None:
        """Twisted: started; its stdin is not used."""
        if self.transport is not None:
            self.transport.closeStdin()

    @property
    def pid(self) -> int | None:
        """The keeper's pid (None once it has ended)."""
        return getattr(self.transport, "pid", None)

    def kill(self) -> None:
        """SIGTERM to the keeper: it SIGKILLs the interpreter's group, then exits."""
        try:
            if self.transport is not None:
                self.transport.signalProcess("TERM")
        except Exception:  # gone already: nothing to kill
            pass

    def processEnded(self, reason: Failure) -> None:
        """Twisted: the keeper is gone."""
        self.worker.keeper_ended(reason)


class LinkProvisioner:
    """Start workers behind keepers, each on a socket in ``directory``."""

    def __init__(
        self,
        reactor: ProcessReactor,
        directory: str,
        orphan_timeout: float = DEFAULT_ORPHAN_TIMEOUT,
        durable: bool = True,
        forks: ForkServer | None = None,
    ) -> None:
        self.reactor = reactor
        #: Keepers are forked by this server when it takes them (docs/fork-server.md).
        self.forks = forks
        self.directory = directory
        self.orphan_timeout = orphan_timeout
        #: False: each keeper ends with this process (PDEATHSIG), no orphan timeout.
        self.durable = durable

    def start(self, listener: WorkerListener) -> LinkedWorker:
        """A worker of its own (a fresh id, socket and secret), not recorded."""
        kernel_id = secrets.token_hex(8)
        path = os.path.join(self.directory, kernel_id, "link.sock")
        os.makedirs(os.path.dirname(path), mode=0o700)
        return self.spawn(listener, path, secrets.token_bytes(32), kernel_id)

    def spawn(
        self,
        listener: WorkerListener,
        path: str,
        secret: bytes,
        kernel_id: str,
        told: Callable[[Keeper], None] = lambda keeper: None,
    ) -> LinkedWorker:
        """Bind the socket (a stale one goes first), start the keeper on it (through the
        fork server, if there is one), connect; ``told(keeper)`` once it is known."""
        try:
            os.unlink(path)  # a keeper before this one (a restart), gone or going
        except FileNotFoundError:
            pass
        listen, r = prepare_link(path, secret)
        worker = LinkedWorker(listener, secret, kernel_id, self.reactor)
        worker.linked.addErrback(lambda _: None)  # its keeper's end reports it
        env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
        env.update({KERNEL_ENV: kernel_id, LINK_PATH_ENV: path})
        env.setdefault("PYTHONIOENCODING", "utf-8")
        env[ORPHAN_ENV] = str(self.orphan_timeout)
        if not self.durable:
            env[DIE_WITH_PARENT_ENV] = "1"

        def forked(keeper: ForkedKeeper) -> None:
            worker.keeper = keeper
            keeper.watch(self.reactor, worker.keeper_gone)
            told(keeper)

        def refused(listen_fd: int, secret_fd: int) -> None:
            told(self._exec(worker, env, listen_fd, secret_fd))

        fds = (listen.fileno(), r)
        if self.forks is None or not self.forks.fork(env, fds, forked, refused):
            refused(*fds)
        os.close(r)
        listen.close()
        connectProtocol(LinkClientEndpoint(self.reactor, path), worker)
        return worker

    def _exec(
        self, worker: LinkedWorker, env: dict[str, str], listen: int, r: int
    ) -> KeeperProcess:
        """The keeper as this service's child, in a new Python (not forked)."""
        keeper = worker.keeper = KeeperProcess(worker)
        env = {**env, LINK_FD_ENV: str(listen), SECRET_FD_ENV: str(r)}
        self.reactor.spawnProcess(
            keeper,
            sys.executable,
            [sys.executable, "-m", "ipytwist.worker"],
            env=env,
            childFDs={0: "w", 1: 1, 2: 2, listen: listen, r: r},
        )
        return keeper


def choose_provisioner(
    reactor: ProcessReactor,
    state_dir: str,
    orphan_timeout: float = DEFAULT_ORPHAN_TIMEOUT,
    durable: bool = True,
    default: str = "socket",
    fork_server: bool = False,
) -> Provisioner:
    """Keepers on sockets in ``STATE/kernels`` (``IPYTWIST_WORKER_LINK=socket``) or
    today's pipes (``pipes``, :class:`~ipytwist.kernel.process.LocalProvisioner`); unset,
    ``default``.  Not ``durable``: the keepers end with this process.  ``fork_server``:
    durable keepers are forked by a fork server, started now, where this system can."""
    if os.environ.get(LINK_ENV, default) == "socket":
        wanted = fork_server and durable and fork_server_usable()
        forks = ForkServer(reactor) if wanted else None
        if forks is not None:
            reactor.callWhenRunning(forks.prestart)
        directory = os.path.join(state_dir, "kernels")
        return LinkProvisioner(reactor, directory, orphan_timeout, durable, forks)
    return LocalProvisioner(reactor)
