"""Service options that change kernel lifecycles: --prespawn and --cull-idle."""

from __future__ import annotations

import os
import time
from typing import Any

from service_proc import WSClient, running_service, wait_for


def test_prespawned_kernel_is_ready_at_once_and_the_pool_refills(tmp_path_factory: Any) -> None:
    """With --prespawn 1 a warm interpreter waits before anyone asks; POST /api/kernels hands
    it out already idle, its first cell runs without a start-up wait, and the pool refills."""
    with running_service(tmp_path_factory, "prespawn", "--prespawn", "1") as svc:

        def warm() -> int:
            return svc.api("GET", "/api/status").json()["warm_kernels"]

        wait_for(lambda: warm() == 1, 30, "a warm kernel")
        r = svc.api("POST", "/api/kernels", json={"name": "ipytwist"})
        assert r.status_code == 201
        model = r.json()
        assert model["execution_state"] == "idle"
        assert os.path.exists(svc.connection_file(model["id"]))
        ws = WSClient.connect(svc, model["id"])
        try:
            t0 = time.monotonic()
            reply, _ = ws.execute("1 + 1")
            assert reply["content"]["status"] == "ok"
            assert time.monotonic() - t0 < 0.5
        finally:
            ws.close()
        wait_for(lambda: warm() == 1, 30, "the pool to refill")
        assert len(svc.api("GET", "/api/kernels").json()) == 1


def test_idle_kernels_without_connections_are_culled(tmp_path_factory: Any) -> None:
    """With --cull-idle 2 a kernel idle with no connection is shut down (404 afterwards,
    connection file removed) while one with an open WebSocket stays."""
    with running_service(tmp_path_factory, "cull", "--cull-idle", "2") as svc:
        lonely = svc.start_kernel()
        watched = svc.start_kernel()
        ws = WSClient.connect(svc, watched)
        try:
            reply, _ = ws.execute("x = 1")
            assert reply["content"]["status"] == "ok"
            lonely_file = svc.connection_file(lonely)
            wait_for(
                lambda: svc.api("GET", f"/api/kernels/{lonely}").status_code == 404,
                30,
                "the idle kernel to be culled",
                step=0.2,
            )
            wait_for(lambda: not os.path.exists(lonely_file), 10, "its connection file to go")
            r = svc.api("GET", f"/api/kernels/{watched}")
            assert r.status_code == 200
            assert r.json()["connections"] == 1
            reply, _ = ws.execute("x")
            assert reply["content"]["status"] == "ok"
        finally:
            ws.close()
