"""The stated bounds are the real ones: --replay-bytes (the output log) plus
--transcript-bytes (the notebook page's transcript) bound a kernel's share of the
service's memory, encodings and message overhead included (the log alone measured 3x
its bound before)."""

from __future__ import annotations

from typing import Any

from benchlib.procs import rss_mib
from benchlib.running import running_service
from benchlib.wsclient import WSClient

MIB = 1024 * 1024
REPLAY_MIB = 16
TRANSCRIPT_MIB = 8
#: Output printed per round: 12x the log.
CELL = "for i in range(2000):\n    print(str(i).zfill(8) + 'y' * 100_000)"


def test_replay_bytes_bounds_the_service_memory(tmp_path_factory: Any) -> None:
    """Three rounds of 200 MB of output, read by a client (so every message is also
    encoded for it): the service grows by about the two bounds, not by the output,
    and not by three times the bounds."""
    with running_service(
        tmp_path_factory,
        "replay-memory",
        "--replay-bytes",
        str(REPLAY_MIB * MIB),
        "--transcript-bytes",
        str(TRANSCRIPT_MIB * MIB),
    ) as svc:
        kid = svc.start_kernel()
        ws = WSClient.connect(svc, kid, skip_utf8_validation=True)
        try:
            ws.execute("1")
            base = rss_mib(svc.pid)
            growth = []
            for _ in range(3):
                reply, _ = ws.execute(CELL, timeout=120)
                assert reply["content"]["status"] == "ok"
                ws.received.clear()
                growth.append(rss_mib(svc.pid) - base)
            bound = (REPLAY_MIB + TRANSCRIPT_MIB) * 1.5 + 16
            print(f"service RSS growth after each round: {growth} MiB (bound {bound} MiB)")
            assert max(growth) < bound, growth
        finally:
            ws.close()
