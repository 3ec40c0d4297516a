"""How many server processes `--workers auto` means: one per CPU the container may use.

A container sees every core of its node in os.cpu_count(); its CPU limit is a cgroup
quota, so that is what decides.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def worker_count(setting: str, cgroup: Path = CGROUP) -> int:
    if setting != "auto":
        return int(setting)
    cpus = len(os.sched_getaffinity(0))
    quota = cpu_quota(cgroup)
    return max(1, min(cpus, math.ceil(quota))) if quota else cpus


def cpu_quota(cgroup: Path) -> float | None:
    """CPUs allowed by the cgroup (v2 cpu.max, else v1 cfs quota); None when unlimited."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        cfs_quota = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        cfs_period = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return cfs_quota / cfs_period if cfs_quota > 0 else None
