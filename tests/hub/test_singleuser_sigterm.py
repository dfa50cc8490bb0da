"""``ipytwist singleuser`` run as a spawner that stops with SIGTERM runs it (KubeSpawner's
pod deletion, BatchSpawner's scancel): with the hub's environment, checking tokens at
the real hub, then SIGTERM: its kernels end and it exits 0.  Without the environment it
says what is missing in one line and exits 1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import requests
from benchlib.procs import keeper_pids, pid_alive, wait_for
from benchlib.servers import free_port
from support.hub import JupyterHubProcess, UserServer


def test_sigterm_ends_the_kernels_and_exits_0(
    hub: JupyterHubProcess, alice: UserServer, tmp_path: object
) -> None:
    home = str(tmp_path)
    port = free_port()
    env = {
        **os.environ,
        "HOME": home,
        "XDG_DATA_HOME": os.path.join(home, "data"),
        "JUPYTERHUB_API_TOKEN": hub.admin_token,  # the server's own calls: none here
        "JUPYTERHUB_API_URL": f"{hub.url}/hub/api",
        "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-alice",
        "JUPYTERHUB_USER": "alice",
        "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/",
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}/user/alice/",
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps(["access:servers!user=alice"]),
    }
    log = open(os.path.join(home, "singleuser.log"), "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ipytwist", "singleuser", "--prespawn", "0"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/user/alice/"
    headers = {"Authorization": f"token {alice.token}"}
    try:

        def listening() -> bool:
            assert proc.poll() is None, "ipytwist singleuser exited early"
            try:
                return requests.get(base + "api", timeout=2).status_code in (200, 401)
            except requests.ConnectionError:
                return False

        wait_for(listening, 60, "ipytwist singleuser to listen", step=0.1)
        r = requests.post(base + "api/kernels", headers=headers, json={}, timeout=30)
        assert r.status_code == 201, r.text
        state = os.path.join(home, "data", "ipytwist")
        keepers = wait_for(lambda: keeper_pids(state), 30, "the kernel's keeper in its record")
        assert keepers and all(pid_alive(p) for p in keepers)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        wait_for(lambda: not any(pid_alive(p) for p in keepers), 30, "the kernels to end")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_without_the_hubs_environment_it_says_what_is_missing() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    done = subprocess.run(
        [sys.executable, "-m", "ipytwist", "singleuser"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "JUPYTERHUB_API_TOKEN" in done.stderr
