"""A client's hostile input in ``bench/reliability.py``: legacy frames whose offsets go
back and forth, floods of large requests and of one msg_id behind a running cell, and
request storms nobody reads (WebSocket and ZeroMQ), the reactor's stalls timed."""

from __future__ import annotations

import argparse
from typing import Any

from benchlib.results import Rows, dur, jsonable
from benchlib.running import TempDirs, running_service
from benchlib.scenarios.request_storms import ws_storm, zmq_storm
from benchlib.scenarios.wsinput import MiB, hostile_legacy_frames, one_id_flood, request_flood


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--request-storms", type=int, default=3, help="request storms in a row (3)")


def run_wsinput(tmp: TempDirs, args: argparse.Namespace, out: dict[str, Any]) -> Rows:
    with running_service(tmp, "wsinput") as svc:
        frames = hostile_legacy_frames(svc)
        flood = request_flood(svc, requests=300, size=MiB)
        one_id = one_id_flood(svc, requests=4000)
        zmq = zmq_storm(svc, clients=10, requests=10, size=MiB)
    with running_service(tmp, "storm") as svc:
        storm = ws_storm(svc, rounds=args.request_storms)
    out["wsinput"] = jsonable(
        {"frames": frames, "flood": flood, "one_id": one_id, "zmq": zmq, "storm": storm}
    )
    rows: Rows = [
        (
            "input",
            f"{frames.hostile} legacy frames of {frames.hostile_bytes // 1024} KiB, "
            f"{frames.offsets} offsets going back and forth: peak memory",
            f"+{frames.hostile_peak_mib:.1f} MiB (refused, {frames.log_lines} log lines)",
        ),
        (
            "input",
            f"a legacy frame with a {frames.valid_bytes // MiB} MiB buffer: peak memory",
            f"+{frames.valid_peak_mib:.1f} MiB "
            f"({frames.valid_peak_mib * MiB / frames.valid_bytes:.1f}x its size)",
        ),
        (
            "input",
            f"{flood.requests} execute_requests of 1 MiB behind a running cell: taken in, "
            "peak memory",
            f"{flood.taken}, +{flood.peak_mib:.1f} MiB; all {sum(flood.statuses.values())} "
            f"answered after the interrupt ({dict(flood.statuses)})",
        ),
        (
            "input",
            f"{one_id.requests} execute_requests with one msg_id behind a running cell: "
            "read before the interrupt",
            f"{one_id.statuses['aborted']} (then the rest: {dict(one_id.statuses)})",
        ),
        (
            "input",
            f"ZeroMQ: {zmq.clients * zmq.requests} execute_requests of 1 MiB at once: "
            "longest stall",
            f"{dur(zmq.stalls.longest())} ({zmq.stalls.count()} round trips timed)",
        ),
    ]
    for i, rd in enumerate(storm.rounds, 1):
        took = f"busy {rd.seconds:.0f} s" if rd.seconds is not None else "busy past 600 s"
        rows.append(
            (
                "input",
                f"storm {i}: {storm.sessions} sessions x {storm.requests} requests nobody "
                "reads: longest stall; RSS after (before the first)",
                f"{dur(rd.stalls.longest())} ({rd.stalls.count()} round trips, {took}); "
                f"{rd.rss_after:.0f} MiB ({storm.rss_before:.0f})",
            )
        )
    return rows


RUNNERS = {"wsinput": run_wsinput}
