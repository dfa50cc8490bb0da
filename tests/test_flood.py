r"""Flow control: one kernel floods three WebSocket readers of different speeds.

The acceptance test of the service's flow control, against the real ``twistd ipytwist``
(default options).  Kernel A prints ``"<i> xxx…"`` (1000 x's) in an endless loop for
15 s, watched by three WebSocket clients, each in its own process (support/flood/reader.py):
a fast reader, a slow one (50 ms pause after every message) and a stalled one (4 KiB
receive buffer, reads nothing until the flood has been interrupted).  Meanwhile the test
process probes kernel B's round trip every 0.2 s and samples the service's RSS.  Then
the flood is interrupted over REST.

The test asserts (support/flood/judge.py holds the bounds and the checks) that

1. the service's RSS stays under ``RSS_BOUND_MIB`` (flood and drain);
2. the fast reader gets every line, contiguous and in order, and no drop notice;
3. the slow reader's gaps are each announced by a notice that is exact: the messages it
   stands for, counted and sized from the fast reader's complete record, are the ones
   missing between the messages before and after it (and it sees at least one gap);
4. the stalled reader, once it reads, gets what was in flight, a notice, then the
   retained messages (same exactness) through the flood's idle, within 60 s;
5. no reader is closed or dropped, and the kernel counts 3 connections before the
   interrupt;
6. kernel B's round trip during the flood stays under 3x its idle median (median), and
   under 5x at the 90th percentile (see ``TAIL_FACTOR``);
7. the interrupt brings kernel A to idle, as seen by the fast reader, within 1 s, and the
   flood's execute_reply is a KeyboardInterrupt error.

A drop notice is an iopub ``stream`` message on stderr whose text matches
``^\[ipytwist\] (\d+) output messages? \((\d+) bytes\) dropped`` (messages, bytes); the
size of a message is the UTF-8 byte length of every string value in its ``content``.  Every
problem found is reported together, after a summary of the measured figures.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from benchlib.procs import kernel_descendants, rss_mib, wait_for
from benchlib.running import running_service
from benchlib.servers import Service
from benchlib.wsclient import WSClient
from support.flood.judge import Run, judge
from support.flood.meters import CpuMeter, RssSampler
from support.flood.readers import Reader

FLOOD_SECONDS = 15.0
PROBE_INTERVAL = 0.2
IDLE_PROBES = 25
PROBE_TIMEOUT = 10.0
SLOW_PAUSE = 0.05
STALLED_RCVBUF = 4096
STALLED_READ_TIMEOUT = 60.0
FLOOD_CODE = "i = 0\nwhile True:\n    print(i, 'x' * 1000)\n    i += 1"
#: Each reader's options besides where and what to read.
READER_OPTIONS = {
    "fast": ("--code", FLOOD_CODE),
    "slow": ("--pause", str(SLOW_PAUSE)),
    "stalled": ("--rcvbuf", str(STALLED_RCVBUF), "--timeout", str(STALLED_READ_TIMEOUT)),
}
FAST = {"skip_utf8_validation": True}


def probe(client: WSClient) -> float:
    """Round trip of ``1`` on kernel B: request sent to its idle status received (s)."""
    start = time.perf_counter()
    msg_id = client.execute_request("1")
    try:
        client.until_idle(msg_id, timeout=PROBE_TIMEOUT)
    except AssertionError:
        return float("inf")
    return time.perf_counter() - start


def probe_paced(client: WSClient, samples: list[float], done: Callable[[], bool]) -> None:
    """Probe every ``PROBE_INTERVAL`` seconds until ``done()``."""
    while not done():
        started = time.monotonic()
        samples.append(probe(client))
        wait = started + PROBE_INTERVAL - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # the probe interval, part of the scenario


def run_flood(svc: Service, tmp: str) -> Run:
    run = Run(flood_id=uuid.uuid4().hex)
    kernels: list[str] = []
    readers: dict[str, Reader] = {}
    clients: list[WSClient] = []
    sampler = RssSampler(svc.pid)
    try:
        kernels += [svc.start_kernel(), svc.start_kernel()]
        kernel_a, kernel_b = kernels
        prober = WSClient.connect(svc, kernel_b, "prober", **FAST)
        clients.append(prober)
        reply, _ = prober.execute("1", timeout=60)
        assert reply["content"]["status"] == "ok", reply
        warm = WSClient.connect(svc, kernel_a, "warm-up", **FAST)
        clients.append(warm)
        reply, _ = warm.execute("1", timeout=60)
        assert reply["content"]["status"] == "ok", reply
        warm.close()
        wait_for(lambda: connections(svc, kernel_a) == 0, 10, "the warm-up client to be gone")

        for role in ("fast", "slow", "stalled"):
            readers[role] = Reader(role, svc, kernel_a, run.flood_id, tmp, *READER_OPTIONS[role])
            readers[role].expect("ready", 30)

        for _ in range(3):  # warm up the probe path
            probe(prober)
        probe_paced(prober, run.idle_rt, lambda: len(run.idle_rt) >= IDLE_PROBES)

        run.rss_start = rss_mib(svc.pid)
        cpu = CpuMeter(
            {
                "service": [svc.pid],
                "kernels' processes": kernel_descendants(svc.pid),
                **{f"{role} reader": [r.proc.pid] for role, r in readers.items()},
                "test process": [os.getpid()],
            }
        )
        sampler.start()
        readers["fast"].tell("go")
        readers["fast"].expect("flowing", 30)
        flood_end = time.monotonic() + FLOOD_SECONDS
        probe_paced(prober, run.flood_rt, lambda: time.monotonic() >= flood_end)

        run.cpu = cpu.report()
        run.connections = connections(svc, kernel_a)
        sampler.phase = "drain"
        run.interrupt_at = time.time()
        run.interrupt_status = svc.api("POST", f"/api/kernels/{kernel_a}/interrupt").status_code
        readers["stalled"].tell("read")
        readers["slow"].tell("drain")
        for role, timeout in (("fast", 30), ("slow", 90), ("stalled", STALLED_READ_TIMEOUT + 30)):
            run.summaries[role] = readers[role].finish(timeout)
            run.stderr[role] = readers[role].stderr()
        sampler.stop()
        run.rss_flood_max = sampler.max("flood")
        run.rss_drain_max = sampler.max("drain")
        return run
    finally:
        if sampler.is_alive():
            sampler.stop()
        for reader in readers.values():
            reader.stop()
        for client in clients:
            client.close()
        for kid in kernels:
            try:
                svc.delete_kernel(kid)
            except Exception as e:  # the service may be what failed; report the rest
                print(f"could not delete kernel {kid}: {e!r}")


def connections(svc: Service, kernel_id: str) -> Any:
    r = svc.api("GET", f"/api/kernels/{kernel_id}")
    return r.json().get("connections") if r.status_code == 200 else f"HTTP {r.status_code}"


@pytest.mark.timeout(400)
def test_flood_three_readers_and_a_prober(tmp_path_factory: Any, tmp_path: Any) -> None:
    """The scenario and checks of the module docstring."""
    with running_service(tmp_path_factory, "flood") as svc:
        run = run_flood(svc, str(tmp_path))
        figures, problems = judge(run)
        print("\n-- flood test figures --\n" + "\n".join(figures))
        print("-- problems --\n" + ("\n".join(problems) or "none"))
    assert not problems, "flow control under a flood:\n- " + "\n- ".join(problems)
