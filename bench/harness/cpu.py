"""CPU seconds of named processes and of the whole machine between two points.

Every benchmark prints what other processes used meanwhile: a figure taken on a busy machine is low.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, all threads (Linux /proc; 0 where that is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU time of this process: the benchmark's own client when it runs in-process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu_seconds() -> float:
    """CPU time of the child processes this process has waited for (each wrk run, once it ended)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU time all processes of the machine used so far, summed over cores (Linux /proc/stat; 0 elsewhere)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # user nice system idle iowait irq softirq steal


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds used between CpuMeter.start() and stop()."""

    seconds: dict[str, float]  # per source, in the order the meter was given them
    machine: float  # every process of the machine

    @property
    def other(self) -> float:
        """What processes other than the named ones used: they steal the cores from the system under test.

        Never negative: the per-process and the machine counters tick apart.
        """
        return max(0.0, self.machine - sum(self.seconds.values()))


class CpuMeter:
    """The CPU seconds of named sources (a process, this client, a node's stats) and of the machine over a run."""

    def __init__(self, sources: Mapping[str, Callable[[], float]]) -> None:
        self._sources = dict(sources)
        self._before: dict[str, float] = {}
        self._machine_before = 0.0

    def start(self) -> None:
        self._before = {name: read() for name, read in self._sources.items()}
        self._machine_before = machine_busy_seconds()

    def stop(self) -> CpuUse:
        seconds = {name: read() - self._before[name] for name, read in self._sources.items()}
        return CpuUse(seconds, machine_busy_seconds() - self._machine_before)
