"""SIGTERM to the service in the middle of heavy output."""

from __future__ import annotations

import os
from typing import Any

from benchlib.running import running_service
from benchlib.scenarios.sigterm import sigterm_under_output

#: twistd must have exited within this after SIGTERM.
EXIT_SECONDS = 10.0


def test_sigterm_during_heavy_output_ends_everything(tmp_path_factory: Any) -> None:
    """Two kernels print in a loop, one read by a WebSocket client draining it, one whose
    only client never reads (its worker blocks writing stdout), and each has a ``sleep
    60`` child of user code.  SIGTERM to twistd: it exits 0 within 10 s, no worker or
    child is left alive, and the connection files and server.json are gone."""
    with running_service(tmp_path_factory, "sigterm") as svc:
        r = sigterm_under_output(svc, EXIT_SECONDS)
        log = svc.log()
    assert r.stream_messages >= 50, r
    assert r.worker_blocked, r
    assert len(r.files_before) == 2, r.files_before
    assert r.exit_code == 0, (r, log[-3000:])
    assert r.exit_s < EXIT_SECONDS, r.exit_s
    assert len(r.pids) == 4 and r.left_alive == [], r
    assert r.files_after == []
    assert not r.server_json_after
    assert not os.path.exists(os.path.join(svc.state_dir, "server.json"))
