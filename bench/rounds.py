"""Repeated, interleaved measurement, and how the benchmarks report it.

A run on these machines moves by a third and a neighbour's load comes and goes, so every
benchmark measures each contender once per round, in turn, for several rounds, and
reports the median with the range; a goal is a ratio of medians from the same rounds.
"""

from __future__ import annotations

import os
import re
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def interleaved(contenders: dict[str, Callable[[], T]], rounds: int) -> dict[str, list[T]]:
    """Each contender's measurements, taken once per round in turn: A B C, A B C, ..."""
    results: dict[str, list[T]] = {name: [] for name in contenders}
    for number in range(rounds):
        for name, measure in contenders.items():
            print(f"round {number + 1}/{rounds}: {name} ...", flush=True)
            results[name].append(measure())
    return results


def checkout_pythonpath(checkout: Path) -> str:
    """PYTHONPATH that puts another checkout's source roots ahead of this environment's
    own, so `modelplane` runs that checkout's code with this environment's packages."""
    return os.pathsep.join(str(checkout.resolve() / root) for root in ("cli", "serving", "operator"))


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float], unit: str = "", digits: int = 0) -> str:
    """`median (min-max)`, as the notes quote figures."""
    shown = f"{{:,.{digits}f}}"
    return f"{shown.format(median(values))}{unit} ({shown.format(min(values))}-{shown.format(max(values))})"


def verdict(ratio: float, goal: float, at_least: bool = True) -> str:
    met = ratio >= goal if at_least else ratio <= goal
    return f"x{ratio:.2f} (goal {'>=' if at_least else '<='} {goal:g}: {'met' if met else 'NOT met'})"


# Prints a process's own peak resident memory (VmHWM) to stderr as it exits, then runs
# `modelplane` with the given arguments. ru_maxrss would carry the forking parent's peak.
PEAK_MARK = "peak-rss-bytes:"
WITH_PEAK = f"""
import atexit, re, sys
def _peak():
    status = open("/proc/self/status").read()
    sys.stderr.write("{PEAK_MARK}%d\\n" % (int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) * 1024))
atexit.register(_peak)
from modelplane.cli import main
sys.exit(main(sys.argv[1:]))
"""


def peak_bytes(stderr: str) -> int:
    found = re.findall(rf"^{PEAK_MARK}(\d+)$", stderr, re.MULTILINE)
    if not found:
        raise SystemExit(f"the process did not report its peak memory:\n{stderr[-2000:]}")
    return int(found[-1])


def modelplane_with_peak(python: Path) -> list[str]:
    """The argv prefix that runs `modelplane ...` and reports its peak memory."""
    return [str(python), "-c", WITH_PEAK]
