"""Activity reports to the hub, so that ``jupyterhub-idle-culler`` sees a running cell
as activity and an idle server as idle."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..host import KernelHost, iso_time
from ..loglimit import LimitedLog
from .api import HubApi, HubError

__all__ = ["ActivityReporter", "last_activity"]

log = Logger()


def last_activity(host: KernelHost, now: float) -> float | None:
    """When a kernel of ``host`` was last active: ``now`` while one runs a cell, else
    the latest request or output of any kernel (None: no kernel yet)."""
    latest: float | None = None
    for hosted in host.kernels.values():
        kernel = hosted.kernel
        seen = now if kernel.execution_state == "busy" else kernel.last_activity
        latest = seen if latest is None else max(latest, seen)
    return latest


class ActivityReporter(Service):
    """Every ``interval`` seconds, POSTs the latest activity to the hub's activity URL
    when there was any since the last report (one report in flight at a time)."""

    def __init__(
        self,
        host: KernelHost,
        api: HubApi,
        clock: IReactorTime,
        url: str,
        server_name: str,
        interval: float,
    ) -> None:
        self.host = host
        self.api = api
        self.clock = clock
        self.url = url
        self.server_name = server_name
        self.interval = interval
        self.sent: float | None = None
        self.pending: Deferred[Any] | None = None
        self.failures = LimitedLog(log, clock)
        self._loop = LoopingCall(self.report)
        self._loop.clock = clock

    def startService(self) -> None:
        """Twisted: report every ``interval`` seconds."""
        Service.startService(self)
        self._loop.start(self.interval, now=False)

    def stopService(self) -> None:
        """Twisted: stop reporting."""
        Service.stopService(self)
        if self._loop.running:
            self._loop.stop()

    def report(self) -> Deferred[Any] | None:
        """Send the latest activity if it is newer than the last one sent."""
        latest = last_activity(self.host, self.clock.seconds())
        if self.pending is not None or latest is None:
            return None
        if self.sent is not None and latest <= self.sent:
            return None
        stamp = iso_time(latest)
        body = {"servers": {self.server_name: {"last_activity": stamp}}, "last_activity": stamp}
        self.pending = self.api.post_activity(self.url, body)

        def sent(_: object) -> None:
            self.sent = latest

        def failed(failure: Failure) -> None:
            failure.trap(HubError)
            self.failures.warn(
                "could not report activity to the hub: {why}",
                "activity",
                why=failure.getErrorMessage()[:200],
            )

        def done(result: object) -> object:
            self.pending = None
            return result

        self.pending.addCallbacks(sent, failed).addBoth(done)
        return self.pending
