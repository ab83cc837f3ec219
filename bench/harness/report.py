"""What every benchmark prints: progress lines, table heads, percentiles, and its RESULT lines last."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def say(phase: str, text: str) -> None:
    """A progress line, flushed at once: the runs take minutes and go to logs."""
    print(f"[{phase}] {text}", flush=True)


def print_header(head: str) -> None:
    """A table's column heads, underlined to their width."""
    print(head)
    print("-" * len(head))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


@dataclass(frozen=True)
class Figure:
    """One measured figure against its target, printed as the machine-readable RESULT line."""

    name: str
    value: float
    unit: str
    target: str  # e.g. ">=20000", "<=2"
    met: bool

    def line(self) -> str:
        return f"RESULT {self.name} {self.value:.6g} {self.unit} target {self.target} {'met' if self.met else 'missed'}"


def at_least(name: str, value: float, unit: str, target: float) -> Figure:
    """A figure whose target is a floor."""
    return Figure(name, value, unit, f">={target:g}", value >= target)


def at_most(name: str, value: float, unit: str, target: float) -> Figure:
    """A figure whose target is a ceiling."""
    return Figure(name, value, unit, f"<={target:g}", value <= target)


def print_results(figures: Sequence[Figure]) -> int:
    """Print one RESULT line per figure, last of all output; the exit status: 0 all met, 2 one missed."""
    print()
    for figure in figures:
        print(figure.line(), flush=True)
    return 0 if all(figure.met for figure in figures) else 2


def code_version() -> str:
    """The commit the package was at, and whether the work tree had changes (others edit it too)."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"{head}" + (f" with uncommitted changes in {len(dirty.splitlines())} files" if dirty else "")
