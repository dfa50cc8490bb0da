"""Rate-limited logging of rejected input: a flood of bad messages is a few lines.

Sans-IO: :meth:`LogLimiter.allow` says whether one more line may be written
now; lines beyond ``burst`` per ``window`` seconds are counted instead, and
the count is handed back (to be logged as one summary line) with the first
line allowed after the window.
"""

from __future__ import annotations

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

DEFAULT_BURST = 10
DEFAULT_WINDOW = 10.0


class LogLimiter:
    def __init__(
        self, clock: IReactorTime, burst: int = DEFAULT_BURST, window: float = DEFAULT_WINDOW
    ) -> None:
        self.clock = clock
        self.burst = burst
        self.window = window
        self._start = -window
        self._count = 0
        self.suppressed = 0

    def allow(self) -> tuple[bool, int]:
        """``(log this one?, lines suppressed since the last one logged)``."""
        now = self.clock.seconds()
        if now - self._start >= self.window:
            self._start, self._count = now, 0
        if self._count >= self.burst:
            self.suppressed += 1
            return False, 0
        self._count += 1
        suppressed, self.suppressed = self.suppressed, 0
        return True, suppressed


class LimitedLog:
    """A twisted Logger's ``warn`` behind one :class:`LogLimiter` per kind of line;
    what was suppressed is summarised in one line once the window has passed."""

    MAX_KINDS = 64

    def __init__(
        self,
        logger: Logger,
        clock: IReactorTime,
        burst: int = DEFAULT_BURST,
        window: float = DEFAULT_WINDOW,
    ) -> None:
        self.logger = logger
        self.clock = clock
        self.burst = burst
        self.window = window
        self._limiters: dict[str, LogLimiter] = {}
        self._summaries: dict[str, IDelayedCall] = {}

    def warn(self, fmt: str, kind: str = "", **kw: object) -> None:
        limiter = self._limiters.get(kind)
        if limiter is None:
            if len(self._limiters) >= self.MAX_KINDS:
                kind = "(other)"
            limiter = self._limiters.setdefault(
                kind, LogLimiter(self.clock, self.burst, self.window)
            )
        ok, suppressed = limiter.allow()
        if not ok:
            if kind not in self._summaries:
                self._summaries[kind] = self.clock.callLater(limiter.window, self._summary, kind)
            return
        self._log_suppressed(limiter, suppressed)
        self.logger.warn(fmt, **kw)

    def _summary(self, kind: str) -> None:
        del self._summaries[kind]
        limiter = self._limiters[kind]
        suppressed, limiter.suppressed = limiter.suppressed, 0
        self._log_suppressed(limiter, suppressed)

    def _log_suppressed(self, limiter: LogLimiter, n: int) -> None:
        if n:
            self.logger.warn(
                "{n} more similar line(s) suppressed (at most {b} per {w:g}s)",
                n=n,
                b=limiter.burst,
                w=limiter.window,
            )
