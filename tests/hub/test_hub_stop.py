"""The hub stops alice's server (its module runs after the others of tests/hub/, which
use the server): the process exits, its kernels end, it leaves no server.json."""

from __future__ import annotations

import os

from benchlib.procs import keeper_pids, pid_alive, wait_for
from support.hub import JupyterHubProcess, UserServer


def test_the_hub_stops_the_server_cleanly(hub: JupyterHubProcess, alice: UserServer) -> None:
    kid = alice.api("POST", "api/kernels", json={}).json()["id"]
    assert kid
    pid = hub.server("alice")["state"]["pid"]
    state_dir = hub.state_dir("alice")
    keepers = wait_for(lambda: keeper_pids(state_dir), 30, "the kernel's keeper in its record")
    assert keepers and all(pid_alive(p) for p in keepers)
    r = hub.hub_api("DELETE", "/users/alice/server")
    assert r.status_code in (202, 204), r.text
    wait_for(lambda: not hub.server("alice"), 30, "the hub to forget alice's server", step=0.2)
    wait_for(lambda: not pid_alive(pid), 30, "alice's server to exit", step=0.1)
    wait_for(lambda: not any(pid_alive(p) for p in keepers), 30, "her kernels to end", step=0.1)
    assert not os.path.exists(os.path.join(state_dir, "server.json"))
    assert "Traceback" not in hub.log()
