"""The transcript under its worst outputs, against the real service, with a REST client
timed meanwhile (the scenarios of bench/benchlib/scenarios/transcript.py; in process:
tests/test_transcript_bounds.py and tests/glue/test_long_responses.py)."""

from __future__ import annotations

import re

from benchlib.scenarios.transcript import carriage_storm, large_display, update_storm
from benchlib.servers import WARM_POOL, Service
from support.service import service_fixture

MIB = 1024 * 1024
#: How long another client may wait for the service while the transcript works: the
#: reactor is never held 100 ms by it; the rest is room for a loaded 2-core machine.
REST_SECONDS = 0.5

#: The update storm's transcript: half the 200 x 200 displays of bench/reliability.py
#: (filling takes 10-20 s on the 2-core machine), still 20,000 outputs to scan.
FILL_CELLS = 100

svc = service_fixture("transcript", *WARM_POOL)


def test_an_image_larger_than_the_transcript_is_kept_as_a_note_that_says_so(
    svc: Service,
) -> None:
    """30 MiB of PNG (40 MB of base64): the transcript held 66.7 MiB against its
    16 MiB before; now the output is a note of what it was, and the bound holds."""
    r = large_display(svc, 30)
    print(r)
    assert r.bound == 16 * MIB
    assert r.transcript_json_bytes < MIB, r
    assert r.transcript_bytes is not None and r.transcript_bytes <= r.bound, r
    assert r.kept_mime_types == ["text/plain"]
    size = re.search(r": ([\d,]+) bytes \(image/png, text/plain\)", r.note)
    assert size and 0 < int(size[1].replace(",", "")) - r.image_bytes < 200, r.note
    assert "running the cell again" in r.note


def test_updates_of_unknown_displays_on_a_full_transcript_stay_fast(svc: Service) -> None:
    """Cells of 200 displays, then 500 updates of display ids nobody shows: with 200
    cells, the cell took 9.2 s (0.11 s on an empty transcript) and GET /api/kernels
    waited 4.7 s."""
    r = update_storm(svc, cells=FILL_CELLS)
    print(r, f"REST: median {r.rest.typical:.3f} s, longest {r.rest.longest:.3f} s")
    assert r.outputs_kept >= FILL_CELLS * 200, r  # every display kept
    assert r.storm_s < max(2.0, 5 * r.empty_storm_s), r
    assert r.rest.seconds and not r.rest.failures, r.rest.failures
    assert r.rest.longest < REST_SECONDS, r.rest.seconds


def test_show_all_after_a_carriage_return_storm_is_linear_and_never_blocks(
    svc: Service,
) -> None:
    """A 1 MB line, then 100,000 ``'\\ry'``: "Show all" took 4.7 s and blocked the
    service meanwhile."""
    r = carriage_storm(svc)
    print(r, f"REST: median {r.rest.typical:.3f} s, longest {r.rest.longest:.3f} s")
    assert r.shown_right, r
    assert r.show_all_s < 1.0, r
    assert r.rest.seconds and not r.rest.failures, r.rest.failures
    assert r.rest.longest < REST_SECONDS, r.rest.seconds
