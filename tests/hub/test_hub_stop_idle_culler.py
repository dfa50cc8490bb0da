"""jupyterhub-idle-culler against ipytwist's activity reports: a server whose kernel
runs a long cell is not culled while the cell runs (a running cell is activity), then,
idle, it is.  (It runs after test_hub_stop.py, by its name: the culler looks at every
server, alice's too.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from benchlib.procs import pid_alive, wait_for
from support.hub import JupyterHubProcess, UserServer

#: The culler's idle timeout and period, in seconds (its least: whole seconds).
TIMEOUT = 6
EVERY = 1


def test_a_running_cell_keeps_the_server_and_idle_gets_it_culled(hub: JupyterHubProcess) -> None:
    hub.spawn("bob")
    bob = UserServer(hub, "bob", hub.user_token("bob"))
    pid = hub.server("bob")["state"]["pid"]
    kid = bob.api("POST", "api/kernels", json={}).json()["id"]
    ws = bob.connect(kid)
    cell = 3 * TIMEOUT  # seconds of a silent cell: only "busy" says it is active
    asked = ws.execute_request(f"import time; time.sleep({cell})")
    culler = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--url={hub.url}/hub/api",
            f"--timeout={TIMEOUT}",
            f"--cull-every={EVERY}",
        ],
        env={**os.environ, "JUPYTERHUB_API_TOKEN": hub.admin_token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        reply, _ = ws.finish(asked, timeout=cell + 30)  # the culler ran all along
        assert reply["content"]["status"] == "ok"
        ws.ws.close()
        assert hub.server("bob").get("ready"), "culled while a cell ran"
        idle_since = time.monotonic()
        wait_for(lambda: not hub.server("bob"), TIMEOUT + 20, "the culler to stop bob's server")
        assert time.monotonic() - idle_since >= TIMEOUT - 2  # not before it was idle
        wait_for(lambda: not pid_alive(pid), 30, "bob's server to exit")
    finally:
        culler.terminate()
        culler.wait(10)
