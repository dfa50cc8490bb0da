"""``python -m ipytwist.kernel -f CONNECTION_FILE``: one kernel, as Jupyter launches it.

The composition root of a standalone kernel (as ``tap.makeService`` is the
service's): a :class:`~ipytwist.kernel.Kernel` with a local worker, served on
the ZeroMQ channels the launching client's connection file describes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ipytwist.kernel", description=__doc__)
    p.add_argument(
        "-f",
        "--connection-file",
        required=True,
        help="JSON connection file written by the launching client",
    )
    p.add_argument("--log-level", default="warn", choices=["debug", "info", "warn", "error"])
    return p.parse_args(argv)


def max_message_bytes() -> int:
    """The largest accepted incoming message: ``IPYTWIST_MAX_MESSAGE_BYTES`` or the default."""
    from .wire import DEFAULT_MAX_MESSAGE_BYTES

    value = os.environ.get("IPYTWIST_MAX_MESSAGE_BYTES", "").strip()
    try:
        return int(value) if value and int(value) > 0 else DEFAULT_MAX_MESSAGE_BYTES
    except ValueError:
        return DEFAULT_MAX_MESSAGE_BYTES


def watch_parent(reactor: Any, stop: Any, interval: float = 1.0) -> Any:
    """Launched by a Jupyter client (JPY_PARENT_PID set): end when it is gone, so a client
    killed outright never leaves an orphaned kernel behind."""
    if not os.environ.get("JPY_PARENT_PID"):
        return None
    from twisted.internet.task import LoopingCall
    from twisted.logger import Logger

    parent = os.getppid()

    def check() -> None:
        if os.getppid() != parent:
            Logger().warn("the process that started this kernel is gone; shutting down")
            loop.stop()
            stop()

    loop = LoopingCall(check)
    loop.clock = reactor
    loop.start(interval, now=False)
    return loop


def _link_dir() -> str:
    """Where the keepers' sockets go (with ``IPYTWIST_WORKER_LINK=socket``)."""
    return os.path.join(tempfile.gettempdir(), f"ipytwist-{os.getpid()}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with open(args.connection_file) as f:
        connection: dict[str, Any] = json.load(f)

    # ZeroMQ only: keep Twisted from loading pyOpenSSL (about 100 ms and 9 MiB) when it
    # happens to be installed for the service's ssl: endpoints.
    sys.modules.setdefault("OpenSSL", None)  # type: ignore[arg-type]  # None: import fails at once

    from twisted.internet import reactor
    from twisted.internet.interfaces import IReactorThreads
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    from .kernel import Kernel
    from .kernel.linkspawn import choose_provisioner

    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(args.log_level))
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(sys.stderr), [predicate])],
        redirectStandardIO=False,
    )

    from .zmq.channels import ZmqChannels

    def stop(*_: object) -> None:
        d = kernel.shutdown()
        d.addBoth(lambda _: channels.close())
        d.addBoth(lambda _: reactor.stop() if reactor.running else None)

    kernel = Kernel(
        reactor,
        # Pipes, or keepers (IPYTWIST_WORKER_LINK=socket) that end with this process.
        choose_provisioner(reactor, _link_dir(), durable=False, default="pipes"),
        name=connection.get("kernel_name") or "ipytwist",
        requests_in_flight=lambda: [channels.requests_in_flight()],
        # One client, the one that launched it: its restart restarts, its shutdown ends.
        on_shutdown_request=lambda restart: (
            kernel.restart() if restart else reactor.callLater(0.05, stop)
        ),
    )
    kernel.start()  # the interpreter boots while this process binds its sockets
    channels = ZmqChannels(kernel, connection, reactor, max_message_bytes=max_message_bytes())

    threads = IReactorThreads(reactor)

    def install_signals() -> None:
        # SIGINT is how Jupyter interrupts a kernel: pass it on to the interpreter.
        signal.signal(signal.SIGINT, lambda *_: threads.callFromThread(kernel.interrupt))
        signal.signal(signal.SIGTERM, lambda *_: threads.callFromThread(stop))

    reactor.callWhenRunning(install_signals)
    reactor.callWhenRunning(watch_parent, reactor, stop)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
