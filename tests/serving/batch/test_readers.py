"""Reading an input in chunks holds a chunk, not the file: peak memory measured in a
process of its own for a small and a four times larger file of each format."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import pytest

COLUMNS = ["a", "b", "c", "d"]
CHUNK_ROWS = 16_384
# Reads every chunk of the one file in a folder and prints the process's peak RSS in bytes:
# VmHWM, its own, where ru_maxrss would carry the forking parent's past exec.
READ_ALL = """
import re, sys, fsspec
from modelplane.serving.batch.inputs import find_inputs, shares
from modelplane.serving.batch.readers import read_chunks
fs, root = fsspec.core.url_to_fs(sys.argv[1])
rows = sum(len(chunk) for share in shares(find_inputs(fs, sys.argv[1], root), 0, 1)
           for _, chunk in read_chunks(fs, share, int(sys.argv[2])))
peak_kb = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print(rows, int(peak_kb) * 1024)
"""


def _write(folder: Path, file_format: str, rows: int) -> Path:
    """Random doubles (which do not compress), as one file; Parquet as one row group,
    as some writers lay out a whole file."""
    table = pa.table({name: np.random.default_rng(rows).uniform(0, 8, rows) for name in COLUMNS})
    folder.mkdir()
    path = folder / f"rows.{file_format}"
    if file_format == "parquet":
        pq.write_table(table, path, row_group_size=rows)
    elif file_format == "csv":
        pyarrow.csv.write_csv(table, path)
    else:
        table.to_pandas().to_json(path, orient="records", lines=True)
    return path


def _peak_bytes(folder: Path) -> tuple[int, int]:
    answer = subprocess.run(
        [sys.executable, "-c", READ_ALL, str(folder), str(CHUNK_ROWS)], check=True, capture_output=True, text=True
    )
    rows, peak = answer.stdout.split()
    return int(rows), int(peak)


@pytest.mark.parametrize(("file_format", "small_rows"), [("parquet", 1_000_000), ("csv", 250_000), ("jsonl", 300_000)])
def test_peak_memory_stays_flat_as_the_file_grows(tmp_path: Path, file_format: str, small_rows: int):
    small = _write(tmp_path / "small", file_format, small_rows)
    large = _write(tmp_path / "large", file_format, 4 * small_rows)
    small_read, small_peak = _peak_bytes(small.parent)
    large_read, large_peak = _peak_bytes(large.parent)
    assert (small_read, large_read) == (small_rows, 4 * small_rows)
    # Holding the larger file whole, or all its decoded rows, would break the bound.
    grown = large.stat().st_size - small.stat().st_size
    assert grown > 0.3 * small_peak, "the files are too small to tell a chunk from the file"
    assert large_peak <= 1.2 * small_peak, (
        f"peak RSS {small_peak >> 20} MB grew to {large_peak >> 20} MB (files grew {grown >> 20} MB)"
    )
