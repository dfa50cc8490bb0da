"""Where the benchmarks write their full results: ``bench/results/<kind>-<time>.json``
(ignored by git), with the machine and the versions they ran with."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from collections import Counter
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .scenarios.common import Errors

#: A reliability report's rows: (scenario, what, figure).
Rows = list[tuple[str, str, str]]

RESULTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results")


def machine() -> dict[str, Any]:
    """The Python, platform and CPU count of this run."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def record(bench: str, started: float, args: dict[str, Any], **more: Any) -> dict[str, Any]:
    """The head of a benchmark's results: which, when, how long, its options, the
    machine; then ``more``."""
    head = {"bench": bench, "started": started, "duration": time.time() - started}
    return head | {"args": args, "machine": machine()} | more


def save(kind: str, data: Any, indent: int | None = 1) -> str:
    """Write ``data`` as JSON to a new file of ``kind`` in :data:`RESULTS_DIR`; its path."""
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    with open(path, "w") as f:
        json.dump(data, f, indent=indent)
    return path


def versions(*dists: str) -> dict[str, str | None]:
    """The installed version of each distribution (None: not installed)."""
    out: dict[str, str | None] = {}
    for dist in dists:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def jsonable(obj: Any) -> Any:
    """``obj`` (dataclasses, counters, lists) as plain JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Errors):
        return {"count": obj.count, "kinds": dict(obj.kinds), "first": obj.first}
    if isinstance(obj, Counter | dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    return obj


def dur(s: float) -> str:
    """Seconds as milliseconds below one, else seconds."""
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"
