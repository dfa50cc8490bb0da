"""The host's scenarios of ``bench/reliability.py``: spawn and restart storms, a ZeroMQ
client's restart, and the state directory (its lock; read-only and full)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from benchlib.results import Rows
from benchlib.running import TempDirs, running_service
from benchlib.scenarios.client_restart import zmq_client_restart
from benchlib.scenarios.statedir import (
    full_later_service,
    killed_service_lock,
    second_service,
    unwritable_at_start,
)
from benchlib.scenarios.storms import restart_storm, spawn_storm


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--storm", type=int, default=50, help="kernels per spawn storm (50)")
    ap.add_argument("--storms", type=int, default=3, help="spawn storms in a row (3)")


def _ms(s: float) -> str:
    return f"{s * 1000:.0f} ms"


def _storm_rows(label: str, storms: list[Any]) -> Rows:
    gets = [max(r.get_s) for r in storms]
    return [
        (
            "storms",
            f"{storms[0].kernels} concurrent POST /api/kernels{label}: slowest GET "
            f"/api/kernels meanwhile, per storm",
            " / ".join(_ms(g) for g in gets),
        ),
        (
            "storms",
            f"… every kernel idle after{label}",
            " / ".join(f"{r.all_idle_s:.1f} s" for r in storms),
        ),
    ]


def run_storms(tmp: TempDirs, args: argparse.Namespace, out: dict[str, Any]) -> Rows:
    with running_service(tmp, "storms") as svc:
        storms = [spawn_storm(svc, args.storm) for _ in range(args.storms)]
        restarts = restart_storm(svc, args.storm)
    with running_service(tmp, "storms-unlimited", "--max-starting", "0") as svc:
        unlimited = [spawn_storm(svc, args.storm)]
    out["storms"] = [dataclasses.asdict(r) for r in storms + unlimited]
    out["restart_storm"] = dataclasses.asdict(restarts)
    rss = [storms[0].rss_before_mib] + [r.rss_after_mib for r in storms]
    return [
        *_storm_rows("", storms),
        *_storm_rows(" (`--max-starting 0`: no limit)", unlimited),
        (
            "storms",
            f"service RSS before → after each storm (kernels deleted); with "
            f"{args.storm} kernels idle",
            " → ".join(f"{x:.1f}" for x in rss) + f" MiB; {storms[-1].rss_idle_mib:.1f} MiB",
        ),
        (
            "storms",
            f"{args.storm} concurrent restarts of one kernel: interpreters started, "
            "answers 200, last answer after",
            f"{restarts.interpreters_started}, {restarts.answers.get(200, 0)}, "
            f"{restarts.answered_s:.2f} s",
        ),
    ]


def run_client_restart(tmp: TempDirs, args: argparse.Namespace, out: dict[str, Any]) -> Rows:
    with running_service(tmp, "client-restart") as svc:
        refused = zmq_client_restart(svc)
    with running_service(tmp, "client-restart-allowed", "--allow-client-shutdown") as svc:
        allowed = zmq_client_restart(svc)
    out["client_restart"] = [dataclasses.asdict(refused), dataclasses.asdict(allowed)]

    def outcome(r: Any) -> str:
        kept = "variables kept" if r.variable_kept else "variables gone"
        return f"{kept}, {r.interpreters_started} interpreter started"

    return [
        ("client restart", "ZeroMQ `shutdown(restart=True)`, default", outcome(refused)),
        ("client restart", "… with `--allow-client-shutdown`", outcome(allowed)),
    ]


def run_state_dir(tmp: TempDirs, args: argparse.Namespace, out: dict[str, Any]) -> Rows:
    with running_service(tmp, "state-first") as first:
        second = second_service(tmp, first)
    killed = killed_service_lock(tmp)
    rows: Rows = [
        (
            "state dir",
            "a second service on it: exit status, lines logged, time to exit",
            f"{second.refused.exit_code}, {len(second.refused.lines)}, "
            f"{second.refused.seconds:.2f} s (the first kept serving: {second.first_serves})",
        ),
        (
            "state dir",
            "a service on the directory of a SIGKILLed one: serves after",
            f"{killed.serves_after_s:.2f} s",
        ),
    ]
    out["state_dir"] = {"second": dataclasses.asdict(second), "killed": dataclasses.asdict(killed)}
    if os.geteuid() != 0:
        return rows + [("state dir", "read-only and full (a tmpfs)", "not run: needs root")]
    for state in ("read-only", "full"):
        r = unwritable_at_start(tmp, state)
        rows.append(
            (
                "state dir",
                f"{state} at the start: exit status, lines logged, time to exit",
                f"{r.exit_code}, {len(r.lines)}, {r.seconds:.2f} s",
            )
        )
    later, _, _ = full_later_service(tmp)
    out["state_dir"]["full_later"] = dataclasses.asdict(later)
    codes = sorted({code for code, _ in later.posts})
    return rows + [
        (
            "state dir",
            f"full later: {len(later.posts)} POST /api/kernels → status, kernels listed, "
            "interpreters left",
            f"{codes}, {later.kernels_listed}, {later.workers_after} (the one started before)",
        )
    ]


RUNNERS = {"storms": run_storms, "client-restart": run_client_restart, "state-dir": run_state_dir}
