"""What the flood benchmark measures besides its readers: the server's memory (and a
guard on it), and kernel B's round trips."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from typing import Any

import websocket
from benchlib.messages import execute_content, legacy_text, make_message
from benchlib.procs import cpu_seconds, descendants, kill_leftovers, rss_kib, start_time
from flood_readers import kernel_info


class RssSampler(threading.Thread):
    """Samples VmRSS of a process and of it plus its descendants every ``interval`` s.

    ``over`` is set once the total passes ``limit`` bytes; once it passes
    ``hard_limit`` the server and its descendants are killed at once (``over_hard``).
    Remembers every descendant seen, so they can be killed at the end.
    """

    def __init__(self, pid: int, limit: int, hard_limit: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.limit = limit
        self.hard_limit = hard_limit
        self.interval = interval
        #: (monotonic time, server RSS, server + descendants RSS, server CPU seconds)
        self.samples: list[tuple[float, int, int, float]] = []
        self.peak_server = 0
        self.peak_total = 0
        self.seen: dict[int, str | None] = {}
        self.over = threading.Event()
        self.over_hard = threading.Event()
        self.over_at: float | None = None
        self._halt = threading.Event()

    def sample(self) -> None:
        own = rss_kib(self.pid) * 1024
        total = own
        for kid in descendants(self.pid):
            if kid not in self.seen:
                self.seen[kid] = start_time(kid)
            total += rss_kib(kid) * 1024
        now = time.monotonic()
        self.samples.append((now, own, total, cpu_seconds(self.pid) or 0.0))
        self.peak_server = max(self.peak_server, own)
        self.peak_total = max(self.peak_total, total)
        if total > self.limit and not self.over.is_set():
            self.over_at = now
            self.over.set()
        if total > self.hard_limit and not self.over_hard.is_set():
            self.over_hard.set()
            try:
                os.killpg(self.pid, signal.SIGKILL)  # the server leads its own session
            except OSError:
                pass
            kill_leftovers(self.seen)

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def peaks_between(self, t0: float, t1: float) -> tuple[int, int]:
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        return max((s[1] for s in inside), default=0), max((s[2] for s in inside), default=0)

    def cpu_share(self, t0: float, t1: float) -> float | None:
        """The server's CPU time between two samples near t0 and t1, per second."""
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        return (inside[-1][3] - inside[0][3]) / (inside[-1][0] - inside[0][0])


class Prober:
    """Round trips of ``1`` on kernel B over its own WebSocket."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float) -> None:
        self.session = uuid.uuid4().hex
        self.ws = websocket.create_connection(
            f"{url}?session_id={self.session}",
            timeout=30,
            header=[f"{k}: {v}" for k, v in headers.items()],
            skip_utf8_validation=True,
            enable_multithread=False,
        )
        self.timeout = timeout

    def ready(self) -> bool:
        return kernel_info(self.ws, self.session)

    def round_trip(self) -> float | None:
        """Seconds from sending ``1`` to its idle; None after ``timeout``."""
        msg_id = uuid.uuid4().hex
        t0 = time.monotonic()
        request = legacy_text(
            make_message("execute_request", execute_content("1"), self.session, msg_id), "shell"
        )
        self.ws.send(request)
        deadline = t0 + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.ws.settimeout(left)
            try:
                raw = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                return None
            if not raw:
                continue
            msg = json.loads(raw)
            if (
                msg.get("channel") == "iopub"
                and msg["header"]["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
                and msg["parent_header"].get("msg_id") == msg_id
            ):
                return time.monotonic() - t0

    def close(self) -> None:
        try:
            self.ws.shutdown()
        except Exception:
            pass


def probe_until(
    prober: Prober,
    interval: float,
    rtts: list[float | None],
    count: int = 0,
    until: Any = None,
) -> None:
    """Append round trips to ``rtts``, one started every ``interval`` s (or right after
    a slower one), until there are ``count`` or ``until()`` is true."""
    next_at = time.monotonic()
    while (count and len(rtts) < count) or (until is not None and not until()):
        now = time.monotonic()
        if now < next_at:
            time.sleep(min(next_at - now, 0.05))
            continue
        next_at = max(next_at + interval, now)
        try:
            rtts.append(prober.round_trip())
        except Exception:  # connection to kernel B lost: a timeout, then stop probing
            rtts.append(None)
            return
