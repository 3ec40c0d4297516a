"""Batch scoring: marginal throughput against raw read + predict + write, and peak memory
as the input grows.

The iris model scores one file of N rows and one of M rows (random values in iris's
ranges, so nothing compresses away; Parquet written as one row group, as some writers lay
out a file), in each format, two ways, each in a process of its own, interleaved over
several rounds:
  - raw (the anchor): pandas reads the whole file, one predict call, the predictions
    written as Parquet; the fastest a script can be, with memory growing with the input;
  - `modelplane batch`, the whole process: chunked, atomic output, ledger, start-up and
    model load included.
Marginal rows/s is (M - N) / (time at M - time at N), so each one's start-up cancels.
Goals: modelplane's marginal rows/s >= 0.8x raw's at the larger size; its peak RSS at M
rows <= 1.2x that at N rows.

    .venv/bin/python -m bench.serving_batch [--rows 4000000 16000000] [--formats parquet csv jsonl] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.rounds import interleaved, median, modelplane_with_peak, peak_bytes, spread, verdict
from bench.serving_online import save_model

# Reads a whole file, predicts once, writes the predictions; prints seconds and VmHWM.
RAW = """
import re, sys, time
import mlflow.pyfunc, numpy as np, pandas as pd
model, source, file_format, out = sys.argv[1:]
pyfunc = mlflow.pyfunc.load_model(model)
started = time.perf_counter()
read = {"parquet": pd.read_parquet, "csv": pd.read_csv, "jsonl": lambda p: pd.read_json(p, lines=True)}[file_format]
frame = read(source)
pd.DataFrame({"row": np.arange(len(frame)), "prediction": pyfunc.predict(frame)}).to_parquet(out)
took = time.perf_counter() - started
print(took, int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024)
"""


def write_input(folder: Path, file_format: str, rows: int) -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv
    import pyarrow.parquet as pq

    from modelplane.demo import iris_features

    features = iris_features()[0]
    generator = np.random.default_rng(rows)
    table = pa.table(
        {name: generator.uniform(features[name].min(), features[name].max(), rows) for name in features.columns}
    )
    path = folder / f"in-{file_format}-{rows}" / f"rows.{file_format}"
    path.parent.mkdir(parents=True)
    if file_format == "parquet":
        pq.write_table(table, path, row_group_size=rows)
    elif file_format == "csv":
        pyarrow.csv.write_csv(table, path)
    else:
        table.to_pandas().to_json(path, orient="records", lines=True)
    return path


def raw(model: Path, source: Path, file_format: str, folder: Path) -> tuple[float, int]:
    answer = subprocess.run(
        [sys.executable, "-c", RAW, str(model), str(source), file_format, str(folder / "raw.parquet")],
        check=True,
        capture_output=True,
        text=True,
    )
    seconds, peak = answer.stdout.split()[-2:]
    return float(seconds), int(peak)


def modelplane(model: Path, source: Path, folder: Path) -> tuple[float, int]:
    output = folder / "out"
    shutil.rmtree(output, ignore_errors=True)
    started = time.perf_counter()
    answer = subprocess.run(
        [
            *modelplane_with_peak(Path(sys.executable)),
            "batch",
            "--model",
            str(model),
            "--input",
            str(source.parent),
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - started
    if answer.returncode != 0:
        raise SystemExit(f"modelplane batch failed:\n{answer.stderr[-3000:]}")
    return took, peak_bytes(answer.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs=2, default=[4_000_000, 16_000_000])
    parser.add_argument(
        "--formats", nargs="+", choices=["parquet", "csv", "jsonl"], default=["parquet", "csv", "jsonl"]
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    small, large = sorted(args.rows)

    report = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as temporary:
        folder = Path(temporary)
        model, _ = save_model(folder)
        for file_format in args.formats:
            sources = {rows: write_input(folder, file_format, rows) for rows in (small, large)}
            sizes = {rows: path.stat().st_size / 1e6 for rows, path in sources.items()}
            print(f"{file_format}: {small:,} rows ({sizes[small]:.0f} MB), {large:,} rows ({sizes[large]:.0f} MB)")
            results = interleaved(
                {
                    f"{way} {rows:,}": (
                        (lambda source=source, file_format=file_format: raw(model, source, file_format, folder))
                        if way == "raw"
                        else (lambda source=source: modelplane(model, source, folder))
                    )
                    for way in ("raw", "modelplane")
                    for rows, source in sources.items()
                },
                args.rounds,
            )
            report.append((file_format, results))
            for source in sources.values():
                shutil.rmtree(source.parent)

    print(f"\n{args.rounds} rounds, median (min-max); raw times read + predict + write, modelplane its whole process")
    for file_format, results in report:
        print(f"\n{file_format}")
        marginal = {}
        for way in ("raw", "modelplane"):
            seconds = {rows: [took for took, _ in results[f"{way} {rows:,}"]] for rows in (small, large)}
            peaks = {rows: [peak / 2**20 for _, peak in results[f"{way} {rows:,}"]] for rows in (small, large)}
            marginal[way] = (large - small) / (median(seconds[large]) - median(seconds[small]))
            for rows in (small, large):
                print(
                    f"  {way:10} {rows:>12,} rows  {spread(seconds[rows], ' s', 2):24} "
                    f"peak RSS {spread(peaks[rows], ' MB'):22}"
                )
            print(f"  {way:10} marginal {marginal[way]:12,.0f} rows/s")
            if way == "modelplane":
                growth = median(peaks[large]) / median(peaks[small])
                print(f"  modelplane peak RSS at {large:,} / at {small:,} rows: {verdict(growth, 1.2, at_least=False)}")
        print(f"  modelplane / raw marginal rows/s: {verdict(marginal['modelplane'] / marginal['raw'], 0.8)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
