"""Soak: many kernels, many clients, a mixed workload, for a minute.

The scenario is :func:`benchlib.scenarios.soak.soak` (bench/reliability.py runs it for 5
minutes): 10 kernels x 10 WebSocket clients, each client looping over small
executes, print bursts, completes, inspects and ``display()`` calls, with one
client per kernel also interrupting a cell of its own now and then.
"""

from __future__ import annotations

from typing import Any

import pytest
from benchlib.running import running_service
from benchlib.scenarios.soak import soak
from benchlib.scenarios.soak_cells import SOAK_SERVICE_ARGS

#: Measured soak in CI, after SOAK_WARMUP seconds of the same workload (and a prefill).
SOAK_SECONDS = 60.0
SOAK_WARMUP = 10.0
KERNELS = 10
CLIENTS_PER_KERNEL = 10
#: Service RSS at the end against right after the warm-up.
RSS_GROWTH_PCT = 10.0
#: At least this many requests answered (about 40/s on a loaded 2-core machine; 150/s
#: on a quiet one): the soak must have done real work to mean anything.
MIN_REQUESTS = 1000


@pytest.mark.timeout(SOAK_SECONDS + SOAK_WARMUP + 240)
def test_soak_mixed_workload_without_errors_or_growth(tmp_path_factory: Any) -> None:
    """10 kernels x 10 clients under the mixed workload for SOAK_SECONDS: every request
    is answered with the expected content (results, every printed line, displays,
    completions; interrupted cells as KeyboardInterrupt) and every execute reaches idle,
    no reader falls behind the output log, no connection closes, interrupts land, the
    service logs no traceback (checked on stop), and its RSS at the end is within
    RSS_GROWTH_PCT of its RSS after the warm-up."""
    with running_service(tmp_path_factory, "soak", *SOAK_SERVICE_ARGS) as svc:
        r = soak(svc, SOAK_SECONDS, SOAK_WARMUP, KERNELS, CLIENTS_PER_KERNEL)
    assert not r.errors, r.errors.report()
    assert r.requests >= MIN_REQUESTS, r.done
    for kind in ("execute", "print burst", "display", "complete", "inspect", "interrupt"):
        assert r.done[kind] > 0, r.done
    assert r.gaps == 0
    assert r.closed == [], r.closed[:5]
    assert r.growth_pct < RSS_GROWTH_PCT, (r.rss_warm, r.rss_end, r.rss)
