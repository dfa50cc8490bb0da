"""What the flood test measures besides the readers: CPU per process group and of the
machine, and the service's memory through the phases of the run."""

from __future__ import annotations

import os
import threading
import time

from benchlib.procs import CLOCK_TICKS, cpu_seconds, rss_mib

RSS_INTERVAL = 0.2


def machine_cpu_seconds() -> tuple[float, float, float]:
    """The machine's busy CPU time, of which interrupts, and steal."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]  # all but idle and iowait
    return busy / CLOCK_TICKS, (ticks[5] + ticks[6]) / CLOCK_TICKS, ticks[7] / CLOCK_TICKS


class CpuMeter:
    """CPU used by each process group over a window, and by the rest of the machine: not
    asserted, but the round-trip figures mean little without it on a small machine."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.start = self._processes()
        self.machine_start = machine_cpu_seconds()
        self.started_at = time.monotonic()

    def _processes(self) -> dict[int, float | None]:
        return {pid: cpu_seconds(pid) for pids in self.groups.values() for pid in pids}

    def report(self) -> str:
        seconds = time.monotonic() - self.started_at
        end = self._processes()
        busy, irq, steal = (
            b - a for a, b in zip(self.machine_start, machine_cpu_seconds(), strict=True)
        )

        def used(pid: int) -> float:
            before, after = self.start[pid], end[pid]
            return 0.0 if before is None or after is None else after - before

        by_group = {name: sum(used(pid) for pid in pids) for name, pids in self.groups.items()}
        parts = [f"{name} {100 * cpu / seconds:.0f}%" for name, cpu in by_group.items()]
        rest = busy - sum(by_group.values())
        return (
            f"CPU during the flood ({seconds:.1f}s, {os.cpu_count()} CPUs; 100% = one CPU): "
            + ", ".join(parts)
            + f", rest of the machine {100 * rest / seconds:.0f}% (irq/softirq"
            f" {100 * irq / seconds:.0f}%, steal {100 * steal / seconds:.0f}%)"
        )


class RssSampler(threading.Thread):
    """Samples a process's VmRSS every ``RSS_INTERVAL`` seconds, tagged with a phase."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.phase = "flood"
        self.samples: list[tuple[str, float]] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                self.samples.append((self.phase, rss_mib(self.pid)))
            except (FileNotFoundError, ProcessLookupError):
                return  # the service died; the test reports that elsewhere
            self._done.wait(RSS_INTERVAL)

    def stop(self) -> None:
        self._done.set()
        self.join(5)

    def max(self, *phases: str) -> float:
        return max((mib for phase, mib in self.samples if phase in phases), default=0.0)
