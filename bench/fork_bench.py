"""Fork server prototype (issue 20), measured against today's start, in one run:

1. request -> interpreter ready, at the link: a keeper started as ``python -m
   ipytwist.worker`` (today) or forked by a fork server that has loaded IPython; time
   from the request to the interpreter's ``ready`` event on the link, then to the reply
   of ``1``;
2. new kernel -> result of ``1`` through the service (REST ``POST /api/kernels``, then
   the kernel's WebSocket), kernels started one after another, each mode its own
   service (the default, or ``--no-fork-server``);
3. PSS of every process of 10 idle kernels (keeper + interpreter, from
   ``/proc/<pid>/smaps_rollup``), per kernel; the fork server's own PSS beside it.

``python bench/fork_bench.py [--starts 20] [--kernels 10]``; prints a markdown table.
"""

from __future__ import annotations

import argparse
import array
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing

from benchlib.linkclient import LinkClient, event, is_reply  # noqa: E402
from benchlib.procs import descendants, end_keepers, keeper_pids, wait_for  # noqa: E402
from benchlib.servers import Service, checkout_env  # noqa: E402
from benchlib.wsclient import WSClient  # noqa: E402
from kernel_bench_metrics import pss_kib  # noqa: E402

from ipytwist.kernel.forkclient import ENTRY  # noqa: E402
from ipytwist.worker.forkserver import FORK_FD_ENV  # noqa: E402
from ipytwist.worker.keeper import (  # noqa: E402
    KERNEL_ENV,
    LINK_FD_ENV,
    LINK_PATH_ENV,
    ORPHAN_ENV,
    SECRET_FD_ENV,
    prepare_link,
)

SECRET = os.urandom(32)
KERNEL = "kernel-fork-bench"
Spawn = Callable[[dict[str, str], int, int], None]


def _exec(env: dict[str, str], listen: int, r: int) -> None:
    env = {**env, LINK_FD_ENV: str(listen), SECRET_FD_ENV: str(r)}
    subprocess.Popen([sys.executable, "-m", "ipytwist.worker"], env=env, pass_fds=(listen, r))


def _fork_server(base: str) -> tuple[Spawn, subprocess.Popen[bytes]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    # The kernels' IPython directory (at_the_link's requests): the shell the server makes
    # is reused only by kernels of the same IPython directory and home.
    env = {**os.environ, FORK_FD_ENV: str(theirs.fileno())}
    env["IPYTHONDIR"] = os.path.join(base, "ipython")
    proc = subprocess.Popen([sys.executable, "-c", ENTRY], env=env, pass_fds=(theirs.fileno(),))
    theirs.close()
    import json

    from ipytwist.kernel.forkclient import _rights, _rlimits, _umask

    def spawn(env: dict[str, str], listen: int, r: int) -> None:
        req = {"env": env, "cwd": base, "umask": _umask(), "rlimits": _rlimits()}
        ours.sendmsg([json.dumps(req).encode()], [_rights(array.array("i", [listen, r]))])

    return spawn, proc


def at_the_link(spawn: Spawn, base: str, n: int, name: str) -> tuple[list[float], list[float]]:
    """Seconds from request to ``ready``, and to the reply of ``1``, for ``n`` keepers."""
    ready, result = [], []
    for i in range(n):
        path = os.path.join(base, f"{name}{i}.sock")
        listen, r = prepare_link(path, SECRET)
        env = {**os.environ, KERNEL_ENV: KERNEL, ORPHAN_ENV: "30", LINK_PATH_ENV: path}
        env["IPYTHONDIR"] = os.path.join(base, "ipython")
        t0 = time.perf_counter()
        spawn(env, listen.fileno(), r)
        os.close(r)
        listen.close()
        svc = LinkClient(path, SECRET, KERNEL)
        svc.until(lambda f: event(f).get("ev") == "ready")
        ready.append(time.perf_counter() - t0)
        svc.execute("1")
        svc.until(is_reply)
        result.append(time.perf_counter() - t0)
        svc.execute("import os, signal; os.killpg(os.getpgid(0), signal.SIGKILL)")
        svc.sock.close()
    return ready, result


def through_the_service(fork: bool, starts: int, idle: int) -> dict[str, float]:
    """New kernel -> result of ``1`` (``starts`` in a row), then PSS of ``idle`` kernels."""
    base = tempfile.mkdtemp(prefix="fs", dir="/tmp")  # short: a socket's path <= 107 bytes
    env = {**checkout_env(os.path.join(base, "ipython")), "IPYTWIST_WORKER_LINK": "socket"}
    svc = Service(base, *(() if fork else ("--no-fork-server",)), env=env)
    svc.start()
    try:
        _first_result(svc)  # a warm service (and fork server) for every mode
        times = [_first_result(svc) for _ in range(starts)]
        kid = svc.request("GET", "/api/kernels")[0]["id"]
        restarts = [_restart_result(svc, kid) for _ in range(starts)]
        for kid in [m["id"] for m in svc.request("GET", "/api/kernels")]:
            svc.delete_kernel(kid)
        for _ in range(idle):
            _first_result(svc)
        time.sleep(1.0)  # idle: what the kernels hold once they have settled
        restart = {f"restart_{k}": v for k, v in _stats(restarts).items()}
        return {**_stats(times), **restart, **_pss(svc, idle)}
    finally:
        svc.stop()
        end_keepers(svc.state_dir)
        shutil.rmtree(base, ignore_errors=True)


def _restart_result(svc: Service, kid: str) -> float:
    """``POST .../restart`` -> the result of ``1`` on a new WebSocket."""
    t0 = time.perf_counter()
    svc.request("POST", f"/api/kernels/{kid}/restart")
    return _result_of_1(svc, kid, t0)


def _first_result(svc: Service) -> float:
    t0 = time.perf_counter()
    return _result_of_1(svc, svc.start_kernel(), t0)


def _result_of_1(svc: Service, kid: str, t0: float) -> float:
    ws = WSClient.connect(svc, kid, "A")
    ws.kernel_info()
    reply, _ = ws.execute("1")
    assert reply["content"]["status"] == "ok"
    took = time.perf_counter() - t0
    ws.close()
    return took


def _pss(svc: Service, idle: int) -> dict[str, float]:
    keepers = wait_for(lambda: len(keeper_pids(svc.state_dir)) >= idle or None, 30, "keepers")
    assert keepers
    pids = [p for k in keeper_pids(svc.state_dir) for p in (k, *descendants(k))]
    kernels = sum(pss_kib(p) for p in pids) / 1024
    assert svc.proc is not None
    servers = [p for p in descendants(svc.proc.pid) if p not in pids]
    others = sum(pss_kib(p) for p in servers) / 1024
    return {"pss_per_kernel": kernels / idle, "pss_server": others}


def _stats(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def _ms(m: dict[str, float], prefix: str) -> str:
    low, high = m[prefix + "min"] * 1e3, m[prefix + "max"] * 1e3
    return f"{m[prefix + 'median'] * 1e3:.0f} ({low:.0f}-{high:.0f})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--starts", type=int, default=20)
    p.add_argument("--kernels", type=int, default=10)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="fb", dir="/tmp") as base:
        spawn, proc = _fork_server(base)
        try:
            rows = {"today": at_the_link(_exec, base, args.starts, "e")}
            at_the_link(spawn, base, 1, "w")  # the server has loaded IPython
            rows["fork server"] = at_the_link(spawn, base, args.starts, "f")
        finally:
            proc.kill()
            proc.wait()
    print("| at the link | ready: median (min-max) ms | result of `1` ms |\n|---|---:|---:|")
    for name, (ready, result) in rows.items():
        r, s = _stats(ready), _stats(result)
        print(
            f"| {name} | {r['median'] * 1e3:.1f} ({r['min'] * 1e3:.1f}-{r['max'] * 1e3:.1f})"
            f" | {s['median'] * 1e3:.1f} |"
        )
    print(
        "\n| through the service | new kernel -> `1`: median (min-max) ms | restart -> `1` "
        f"| PSS per idle kernel ({args.kernels}) MiB | other PSS MiB |\n|---|---:|---:|---:|---:|"
    )
    for name, fork in (("today", False), ("fork server", True)):
        m = through_the_service(fork, args.starts, args.kernels)
        print(f"| {name} | {_ms(m, '')} | {_ms(m, 'restart_')}", end="")
        print(f" | {m['pss_per_kernel']:.1f} | {m['pss_server']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
