"""The state directory against the real service: a second service on it is refused and
leaves the first serving; a SIGKILLed service's lock does not stay; a read-only or full
directory stops the start with one line; a directory that fills up later refuses new
kernels cleanly.  Read-only and full are a small tmpfs mounted on the state directory
(benchlib.scenarios.statedir), which needs root, as CI runs."""

from __future__ import annotations

import os
from typing import Any

import pytest
from benchlib.running import running_service
from benchlib.scenarios.statedir import (
    full_later_service,
    killed_service_lock,
    second_service,
    unwritable_at_start,
)

#: A refused service has exited within this (most of it is importing Twisted).
EXIT_SECONDS = 15.0
#: A service on the state directory of a SIGKILLed one serves within this.
SERVES_SECONDS = 15.0

needs_mount = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


def assert_refused(r: Any, why: str) -> None:
    assert r.exit_code == 1, r
    assert r.one_clear_line, r
    assert why in r.lines[0], r
    assert r.seconds < EXIT_SECONDS, r


def test_a_second_service_on_a_state_dir_is_refused(tmp_path_factory: Any) -> None:
    """It exits 1 with one line naming the first one's pid; the first one's server.json
    is left as it was, and the first one still serves."""
    with running_service(tmp_path_factory, "first") as first:
        r = second_service(tmp_path_factory, first)
    assert_refused(r.refused, f"is in use by another ipytwist service (pid {first.pid})")
    assert r.server_json_kept and r.first_serves, r


def test_a_killed_services_lock_does_not_stay(tmp_path_factory: Any) -> None:
    """SIGKILL to a service with a kernel; a new service on its state directory serves at
    once (its interpreter, which may still be exiting, holds no lock)."""
    r = killed_service_lock(tmp_path_factory)
    assert r.serves_after_s < SERVES_SECONDS and r.new_pid_in_server_json, r


@needs_mount
@pytest.mark.parametrize("state", ["read-only", "full"])
def test_an_unwritable_state_dir_stops_the_start(tmp_path_factory: Any, state: str) -> None:
    r = unwritable_at_start(tmp_path_factory, state)
    reason = "Read-only file system" if state == "read-only" else "No space left on device"
    assert_refused(r, f"cannot be written: {reason}")


@needs_mount
def test_a_state_dir_that_fills_up_refuses_kernels_cleanly(tmp_path_factory: Any) -> None:
    """The tmpfs fills up while a kernel runs: each POST /api/kernels is a 500 that says
    why, no kernel is registered, no interpreter is left running, no file is left
    behind; with room again, a POST works."""
    r, log, left = full_later_service(tmp_path_factory)
    assert [code for code, _ in r.posts] == [500] * len(r.posts), r
    assert all("No space left on device" in text for _, text in r.posts), r
    assert r.kernels_listed == 1 and r.workers_after == 1, r
    # kernels/ holds the running kernel's directory (its journal and link), nothing more.
    link = [f for f in r.files_after if f.startswith("kernels")]
    top = [f for f in r.files_after if not f.startswith("kernels")]
    assert [f for f in top if f.startswith("kernel-")] and len(top) == 3, r
    assert len(link) == 2 and link[0] == "kernels", r
    assert r.after_freeing == 201, r
    assert log.count("kernel not started:") == len(r.posts)
    assert "Traceback" not in log and left in (["ipytwist.lock"], ["ipytwist.lock", "kernels"])
