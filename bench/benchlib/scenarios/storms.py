"""Storms of kernel starts and restarts: many ``POST /api/kernels`` at once while
``GET /api/kernels`` is timed, many concurrent restarts of one kernel (counting the
interpreters they start), and the service's memory after repeated storms."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from ..procs import cpu_seconds, kernel_children, rss_mib, settle, start_time
from ..servers import Service

#: How long every kernel of a storm may take to be idle.
STORM_TIMEOUT = 120.0
#: How often the restart storm looks for new interpreters (each lives for far longer).
WATCH_STEP = 0.01
#: The pace of the timed ``GET /api/kernels`` (a page listing kernels polls far slower).
GET_EVERY = 0.05


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def workers(svc: Service) -> dict[tuple[int, str], None]:
    """The service's interpreters now (or their keepers), as (pid, start time) keys."""
    found: dict[tuple[int, str], None] = {}
    for pid in kernel_children(svc.pid):
        started = start_time(pid)
        if started is not None and "ipytwist.worker" in _cmdline(pid):
            found[(pid, started)] = None
    return found


class WorkerWatch:
    """Every interpreter the service starts while it runs (looked for every 10 ms), and
    the most that were alive at once."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.seen: dict[tuple[int, str], None] = dict(workers(svc))
        self.before = set(self.seen)
        self.most_alive = len(self.seen)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WorkerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(WATCH_STEP):
            now = workers(self.svc)
            self.seen.update(now)
            self.most_alive = max(self.most_alive, len(now))

    @property
    def started(self) -> int:
        """Interpreters started since the watch began."""
        return len(set(self.seen) - self.before)


@dataclass
class SpawnStorm:
    """One storm of ``kernels`` concurrent ``POST /api/kernels``."""

    kernels: int
    created: int  # POSTs answered 201
    errors: list[str]
    get_s: list[float]  # every GET /api/kernels from the storm's start to all idle
    all_idle_s: float  # storm start -> every kernel idle
    most_alive: int  # most interpreters alive at once (the warm pool's included)
    service_cpu_s: float
    rss_before_mib: float
    rss_idle_mib: float  # with every kernel of the storm idle
    rss_after_mib: float  # once every kernel of the storm was deleted
    workers_left: int  # interpreters of the storm still alive 60 s after the deletes


def _post_kernel(svc: Service) -> str:
    r = requests.post(
        svc.url + "/api/kernels", headers=svc.headers(), json={"name": "ipytwist"}, timeout=60
    )
    if r.status_code != 201:
        raise AssertionError(f"POST /api/kernels: {r.status_code} {r.text[:200]}")
    return str(r.json()["id"])


def _time_gets(svc: Service, ids: set[str], n: int, t0: float, out: list[float]) -> float:
    """GET /api/kernels one after another until the ``n`` kernels of ``ids`` (filled in
    as their POSTs are answered) are all idle; each GET's time into ``out``.  Returns
    the time from ``t0`` until they were."""
    deadline = t0 + STORM_TIMEOUT
    pace = threading.Event()  # never set: its wait() paces the GETs
    while time.monotonic() < deadline:
        t = time.monotonic()
        r = requests.get(svc.url + "/api/kernels", headers=svc.headers(), timeout=60)
        out.append(time.monotonic() - t)
        r.raise_for_status()
        idle = {k["id"] for k in r.json() if k["execution_state"] == "idle"}
        if len(ids) == n and ids <= idle:
            return time.monotonic() - t0
        pace.wait(max(0.0, GET_EVERY - (time.monotonic() - t)))
    raise AssertionError(f"the storm's kernels were not idle within {STORM_TIMEOUT} s")


def spawn_storm(svc: Service, kernels: int = 50) -> SpawnStorm:
    """``kernels`` POSTs at once, GET /api/kernels timed until all are idle, then every
    kernel of the storm deleted and the service's RSS taken."""
    rss_before = rss_mib(svc.pid)
    cpu0 = cpu_seconds(svc.pid) or 0.0
    ids: set[str] = set()
    errors: list[str] = []
    gets: list[float] = []
    with WorkerWatch(svc) as watch, ThreadPoolExecutor(kernels + 1) as pool:
        t0 = time.monotonic()
        timing = pool.submit(_time_gets, svc, ids, kernels, t0, gets)
        for future in [pool.submit(_post_kernel, svc) for _ in range(kernels)]:
            try:
                ids.add(future.result())
            except Exception as e:
                errors.append(f"{type(e).__name__}: {e}")
        all_idle = timing.result() if not errors else float("nan")
    cpu = (cpu_seconds(svc.pid) or 0.0) - cpu0
    rss_idle = rss_mib(svc.pid)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(svc.delete_kernel, ids))
    settle(lambda: len(workers(svc)) <= len(watch.before), 60)
    return SpawnStorm(
        kernels=kernels,
        created=len(ids),
        errors=errors,
        get_s=gets,
        all_idle_s=all_idle,
        most_alive=watch.most_alive,
        service_cpu_s=cpu,
        rss_before_mib=rss_before,
        rss_idle_mib=rss_idle,
        rss_after_mib=rss_mib(svc.pid),
        workers_left=max(0, len(workers(svc)) - len(watch.before)),
    )


@dataclass
class RestartStorm:
    """``restarts`` concurrent ``POST /api/kernels/{id}/restart`` of one kernel."""

    restarts: int
    answers: dict[int, int] = field(default_factory=dict)  # HTTP status: how many
    interpreters_started: int = 0
    answered_s: float = 0.0  # storm start -> the last answer
    variable_gone: bool = False  # the restart did restart: a variable set before is gone


def _restarts_at_once(svc: Service, kernel_id: str, restarts: int) -> list[int]:
    """``restarts`` connections opened first, then a ``POST .../restart`` written on each
    in one go (a restart through the fork server is over before 50 threads have each
    connected and sent): the status of each answer."""
    url = urlsplit(svc.url)
    head = f"POST {url.path.rstrip('/')}/api/kernels/{kernel_id}/restart HTTP/1.1\r\n"
    head += f"Host: {url.netloc}\r\nContent-Length: 0\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in svc.headers().items()) + "\r\n"
    socks = [
        socket.create_connection((url.hostname, url.port), timeout=120) for _ in range(restarts)
    ]
    try:
        for sock in socks:
            sock.sendall(head.encode())
        return [int(sock.makefile("rb").readline().split()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def restart_storm(svc: Service, restarts: int = 50) -> RestartStorm:
    """One idle kernel with a variable set, then ``restarts`` restarts of it at once."""
    from ..wsclient import WSClient

    kid = svc.start_kernel()
    try:
        ws = WSClient.connect(svc, kid)
        try:
            reply, _ = ws.execute("before_the_storm = 1")
            assert reply["content"]["status"] == "ok", reply["content"]
            out = RestartStorm(restarts)
            with WorkerWatch(svc) as watch:
                t0 = time.monotonic()
                for code in _restarts_at_once(svc, kid, restarts):
                    out.answers[code] = out.answers.get(code, 0) + 1
                out.answered_s = time.monotonic() - t0
            reply, _ = ws.execute("'before_the_storm' in globals()")
            out.variable_gone = reply["content"]["status"] == "ok" and _result(ws) == "False"
            out.interpreters_started = watch.started
            return out
        finally:
            ws.close()
    finally:
        svc.delete_kernel(kid)


def _result(ws: Any) -> str:
    for m in reversed(ws.received):
        if m["msg_type"] == "execute_result":
            return str(m["content"]["data"]["text/plain"])
    return ""
