"""A batch run killed part-way, run again with `--only-new`, scores exactly the files the
killed run left unscored: its `_ledger/` says which those are."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import Registry
from tests.serving.server import MODELPLANE, run_to_exit

pytestmark = pytest.mark.registry

FILES = 4
ROWS_PER_FILE = 60_000  # 120 chunks of 500: each file takes long enough to be caught part-way


@pytest.fixture
def env(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "MODELPLANE_MODEL": f"models:/{registry.models.iris}@champion",
        "MODELPLANE_MODEL_CACHE": str(tmp_path_factory.getbasetemp() / "batch-model-cache"),
    }


def _write_inputs(folder: Path) -> list[Path]:
    from modelplane.demo import iris_features

    features, _ = iris_features()
    rows = pd.concat([features] * (ROWS_PER_FILE // len(features)), ignore_index=True)
    folder.mkdir(parents=True)
    paths = []
    for day in range(FILES):
        path = folder / f"day-{day}.csv"
        rows.assign(id=[f"day-{day}-{n}" for n in range(len(rows))]).to_csv(path, index=False)
        paths.append(path)
    return paths


def _ledger(output: Path) -> set[str]:
    """The inputs the ledger records as scored."""
    return {json.loads(entry.read_text())["input"] for entry in (output / "_ledger").glob("*.json")}


def _staged(output: Path) -> list[Path]:
    return [path for path in (output / "_temporary").rglob("*.parquet") if _size(path) > 0]


def _size(path: Path) -> int:
    """Its size, or 0 once the run has moved it into place."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def test_a_run_killed_part_way_is_resumed_by_only_new_scoring_exactly_the_files_left(env, tmp_path: Path):
    inputs = _write_inputs(tmp_path / "in")
    output = tmp_path / "out"
    args = (
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(output),
        "--only-new",
        "--id-column",
        "id",
        "--chunk-rows",
        "500",
    )
    killed = subprocess.Popen(
        [MODELPLANE, "batch", *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Killed once a file is done and the next one is half-written.
    deadline = time.monotonic() + 300
    while not ((output / "_ledger").is_dir() and _ledger(output) and _staged(output)):
        assert killed.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    scored_before = _ledger(output)
    left = [str(path) for path in inputs if str(path) not in scored_before]
    assert scored_before and left, f"the killed run scored {len(scored_before)} of {FILES} files"
    assert not (output / "_SUCCESS").exists()

    resumed = run_to_exit(env, "batch", *args)

    assert resumed.returncode == 0, resumed.stderr
    skipped = {str(path) for path in inputs if f"skipping {path}: scored by an earlier run" in resumed.stderr}
    assert skipped == scored_before
    assert f"scored {len(left) * ROWS_PER_FILE} rows" in resumed.stderr, resumed.stderr
    assert _ledger(output) == {str(path) for path in inputs}
    scored = pd.concat([pd.read_parquet(output / f"{path.name}.parquet") for path in inputs], ignore_index=True)
    assert scored.id.is_unique and len(scored) == FILES * ROWS_PER_FILE
    assert (output / "_SUCCESS").exists()
