"""`--workers auto`: one server process per CPU of the container's cgroup quota, read from
a cgroup folder laid out as the kernel mounts it (v2 `cpu.max`, v1 `cpu/cpu.cfs_*_us`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelplane.serving.workers import cpu_quota, worker_count

# The CPUs this process may run on: what `auto` means when no quota limits it.
CPUS = len(os.sched_getaffinity(0))


def _cgroup_v2(root: Path, cpu_max: str) -> Path:
    (root / "cpu.max").write_text(cpu_max + "\n")
    return root


def _cgroup_v1(root: Path, quota_us: int, period_us: int = 100_000) -> Path:
    (root / "cpu").mkdir()
    (root / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota_us}\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text(f"{period_us}\n")
    return root


def test_a_number_is_taken_as_given_whatever_the_quota(tmp_path: Path):
    assert worker_count("3", _cgroup_v2(tmp_path, "50000 100000")) == 3


@pytest.mark.parametrize(
    ("cpu_max", "workers"),
    [
        ("50000 100000", 1),  # half a CPU still gets a worker
        ("150000 100000", min(2, CPUS)),  # a part CPU counts as one
        (f"{64 * 100_000} 100000", CPUS),  # a quota above the node's CPUs gets no more workers than CPUs
        ("max 100000", CPUS),  # no limit
    ],
)
def test_auto_follows_the_cgroup_v2_quota(tmp_path: Path, cpu_max: str, workers: int):
    assert worker_count("auto", _cgroup_v2(tmp_path, cpu_max)) == workers


@pytest.mark.parametrize(
    ("quota_us", "period_us", "workers"),
    [
        (100_000, 100_000, 1),
        (25_000, 50_000, 1),
        (300_000, 100_000, min(3, CPUS)),
        (-1, 100_000, CPUS),  # v1's "no limit"
    ],
)
def test_auto_follows_the_cgroup_v1_quota(tmp_path: Path, quota_us: int, period_us: int, workers: int):
    assert worker_count("auto", _cgroup_v1(tmp_path, quota_us, period_us)) == workers


@pytest.mark.skipif(CPUS < 2, reason="shows the quota winning over the node's CPUs, so needs at least two of them")
def test_auto_is_the_quota_not_the_node_core_count(tmp_path: Path):
    assert worker_count("auto", _cgroup_v2(tmp_path, "100000 100000")) == 1


def test_without_a_cgroup_auto_is_one_per_cpu_this_process_may_use(tmp_path: Path):
    assert worker_count("auto", tmp_path) == CPUS


@pytest.mark.parametrize(
    ("layout", "quota"),
    [
        (lambda root: _cgroup_v2(root, "250000 100000"), 2.5),
        (lambda root: _cgroup_v2(root, "max 100000"), None),
        (lambda root: _cgroup_v1(root, 150_000), 1.5),
        (lambda root: _cgroup_v1(root, -1), None),
        # A cpu.max that cannot be read falls back to v1's files.
        (lambda root: _cgroup_v1(_cgroup_v2(root, "garbage"), 50_000), 0.5),
        (lambda root: root, None),
    ],
    ids=["v2", "v2-unlimited", "v1", "v1-unlimited", "v2-unreadable-then-v1", "none"],
)
def test_cpu_quota_reads_either_cgroup_version(tmp_path: Path, layout, quota: float | None):
    assert cpu_quota(layout(tmp_path)) == quota
