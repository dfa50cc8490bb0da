"""The transcript under its worst outputs, with a REST client timed meanwhile: a
``display()`` larger than the transcript's bound, a storm of ``update_display_data``
over a full transcript, and "Show all" after a storm of carriage returns."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

from ..messages import parent_id
from ..procs import rss_mib
from ..servers import Service
from ..wsclient import WSClient
from .common import median

MIB = 1024 * 1024
#: A random image of ``{mib}`` MiB, base64 (4/3 of it), displayed raw.
LARGE_DISPLAY_CODE = (
    "import base64, os\n"
    "from IPython.display import display\n"
    "display({{'image/png': base64.b64encode(os.urandom({mib} << 20)).decode(),"
    " 'text/plain': '<random image>'}}, raw=True)"
)
#: ``{displays}`` displays without an id, in one cell.
FILL_CODE = "from IPython.display import display\nfor _ in range({displays}): display('x')"
#: ``{updates}`` updates of display ids nobody shows.
UPDATE_STORM_CODE = (
    "from IPython.display import update_display\n"
    "for i in range({updates}):\n"
    "    update_display({{'text/plain': 'x'}}, raw=True, display_id=f'unknown-{{i}}')"
)
#: A line of ``{mib}`` MiB, then ``{returns}`` carriage returns each followed by a ``y``.
CARRIAGE_STORM_CODE = (
    "import sys\n"
    "sys.stdout.write('x' * ({mib} << 20))\n"
    "for _ in range({returns}):\n"
    "    sys.stdout.write('\\ry')\n"
    "sys.stdout.write('\\n')\n"
    "sys.stdout.flush()"
)
#: The pause between two timed REST calls.
POLL_PAUSE = 0.02


class RestProbe:
    """``GET /api/kernels`` over and over in a thread while it runs, each call timed:
    how long another client waits for the service meanwhile."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.seconds: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RestProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(60)

    def times(self) -> RestTimes:
        return RestTimes(self.seconds, self.failures)

    def _run(self) -> None:
        with requests.Session() as session:
            session.headers.update(self.svc.headers())
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    r = session.get(self.svc.url + "/api/kernels", timeout=60)
                    if r.status_code != 200:
                        self.failures.append(f"status {r.status_code}")
                except requests.RequestException as e:
                    self.failures.append(type(e).__name__)
                self.seconds.append(time.monotonic() - started)
                self._stop.wait(POLL_PAUSE)


@dataclass
class RestTimes:
    """What a :class:`RestProbe` measured."""

    seconds: list[float]
    failures: list[str]

    @property
    def longest(self) -> float:
        return max(self.seconds, default=float("nan"))

    @property
    def typical(self) -> float:
        return median(self.seconds)


@dataclass
class LargeDisplay:
    """A display larger than the transcript's bound, and the transcript after it."""

    image_bytes: int  # the base64 of the image
    cell_s: float
    transcript_json_bytes: int  # GET .../transcript, the body
    transcript_bytes: int | None  # what the transcript says it holds (None: not said)
    bound: int  # --transcript-bytes, as its JSON says
    note: str  # the text/plain kept for the output
    kept_mime_types: list[str]
    rss_growth_mib: float


def large_display(svc: Service, mib: int = 30) -> LargeDisplay:
    """Display ``mib`` MiB of random PNG in a fresh kernel; read its transcript back."""
    kid = svc.start_kernel()
    ws = WSClient.connect(svc, kid, skip_utf8_validation=True)
    try:
        ws.execute("1")
        before = rss_mib(svc.pid)
        started = time.monotonic()
        reply, _ = ws.execute(LARGE_DISPLAY_CODE.format(mib=mib), timeout=300)
        cell_s = time.monotonic() - started
        assert reply["content"]["status"] == "ok", reply["content"]
        ws.received.clear()
        r = svc.api("GET", f"/api/kernels/{kid}/transcript", timeout=120)
        r.raise_for_status()
        growth = rss_mib(svc.pid) - before
        body = r.json()
        (cell,) = [c for c in body["cells"] if c["id"] == parent_id(reply)]
        (output,) = cell["outputs"]
        return LargeDisplay(
            image_bytes=4 * (((mib << 20) + 2) // 3),
            cell_s=cell_s,
            transcript_json_bytes=len(r.content),
            transcript_bytes=body.get("bytes"),
            bound=body["limits"]["max_bytes"],
            note=str(output["data"].get("text/plain", "")),
            kept_mime_types=sorted(output["data"]),
            rss_growth_mib=growth,
        )
    finally:
        ws.close()
        svc.delete_kernel(kid)


@dataclass
class UpdateStorm:
    """A transcript filled with displays, then updates of display ids nobody shows."""

    cells: int
    displays: int
    updates: int
    fill_s: float
    outputs_kept: int
    storm_s: float  # the updating cell, request to idle
    empty_storm_s: float  # the same cell on an empty transcript
    rest: RestTimes


def _storm(svc: Service, ws: WSClient, updates: int) -> tuple[float, RestTimes]:
    with RestProbe(svc) as rest:
        started = time.monotonic()
        reply, _ = ws.execute(UPDATE_STORM_CODE.format(updates=updates), timeout=300)
        took = time.monotonic() - started
    assert reply["content"]["status"] == "ok", reply["content"]
    return took, rest.times()


def update_storm(
    svc: Service, cells: int = 200, displays: int = 200, updates: int = 500
) -> UpdateStorm:
    """Time the storm on an empty transcript, fill it with ``cells`` x ``displays``
    displays (the requests sent at once), then time the storm again, with REST timed."""
    kid = svc.start_kernel()
    ws = WSClient.connect(svc, kid)
    try:
        ws.execute("1")
        empty_s, _ = _storm(svc, ws, updates)
        started = time.monotonic()
        sent = [ws.execute_request(FILL_CODE.format(displays=displays)) for _ in range(cells)]
        ws.finish(sent[-1], timeout=600)
        fill_s = time.monotonic() - started
        ws.received.clear()
        body = svc.request("GET", f"/api/kernels/{kid}/transcript", timeout=120)
        kept = sum(len(c["outputs"]) for c in body["cells"])
        storm_s, rest = _storm(svc, ws, updates)
        return UpdateStorm(cells, displays, updates, fill_s, kept, storm_s, empty_s, rest)
    finally:
        ws.close()
        svc.delete_kernel(kid)


@dataclass
class CarriageStorm:
    """A line, carriage returns over it, then "Show all" of the cell."""

    line_bytes: int
    returns: int
    cell_s: float
    show_all_s: float
    show_all_bytes: int
    shown_right: bool  # the text is what a terminal shows
    rest: RestTimes


def carriage_storm(svc: Service, mib: int = 1, returns: int = 100_000) -> CarriageStorm:
    """Write a ``mib`` MiB line and ``returns`` times ``'\\ry'``; then GET the cell's
    whole output with REST timed meanwhile."""
    kid = svc.start_kernel()
    ws = WSClient.connect(svc, kid)
    try:
        ws.execute("1")
        started = time.monotonic()
        reply, _ = ws.execute(CARRIAGE_STORM_CODE.format(mib=mib, returns=returns), timeout=300)
        cell_s = time.monotonic() - started
        assert reply["content"]["status"] == "ok", reply["content"]
        ws.received.clear()
        path = f"/api/kernels/{kid}/transcript/cells/{parent_id(reply)}/output"
        with RestProbe(svc) as rest:
            started = time.monotonic()
            r = svc.api("GET", path, timeout=300)
            show_all_s = time.monotonic() - started
        r.raise_for_status()
        expected = "y" + "x" * ((mib << 20) - 1) + "\n"
        return CarriageStorm(
            mib << 20,
            returns,
            cell_s,
            show_all_s,
            len(r.content),
            r.text == expected,
            rest.times(),
        )
    finally:
        ws.close()
        svc.delete_kernel(kid)
