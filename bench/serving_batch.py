"""Batch scoring throughput against raw in-process read + predict + write.

The iris model scores N rows (parquet, or --format csv) three ways on the same files:
raw, in one process, reading the whole input with pandas, one predict call, writing the
predictions (the anchor: the fastest a script can be, with unbounded memory); the batch
runtime in-process (chunked, atomic output, ledger); and `modelplane batch` end to end as
a process (start-up and model load included). Goal: the runtime at least 80 % of raw.

    .venv/bin/python -m bench.serving_batch [--rows 2000000] [--format parquet]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.serving_online import save_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    args = parser.parse_args()

    import mlflow.pyfunc

    from modelplane.demo import iris_features
    from modelplane.serving.batch.scoring import score_files
    from modelplane.serving.settings import BatchSettings

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as temporary:
        folder = Path(temporary)
        model_path, _ = save_model(folder)
        features, _ = iris_features()
        rows = pd.concat([features] * (args.rows // len(features) + 1), ignore_index=True).iloc[: args.rows]
        source = folder / "in" / f"rows.{args.format}"
        source.parent.mkdir()
        rows.to_parquet(source) if args.format == "parquet" else rows.to_csv(source, index=False)
        pyfunc = mlflow.pyfunc.load_model(str(model_path))
        print(f"{args.rows:,} rows of {args.format}, {source.stat().st_size / 1e6:.1f} MB", flush=True)

        def raw_once() -> float:
            started = time.perf_counter()
            frame = pd.read_parquet(source) if args.format == "parquet" else pd.read_csv(source)
            scored = pd.DataFrame({"row": np.arange(len(frame)), "prediction": pyfunc.predict(frame)})
            scored.to_parquet(folder / "raw.parquet")
            return time.perf_counter() - started

        raw_once()  # warm: the first read and predict pay for lazy imports the runtime then finds done
        raw = raw_once()

        settings = BatchSettings(model=str(model_path), input=str(source.parent), output=str(folder / "out"))
        started = time.perf_counter()
        score_files(pyfunc, settings)
        runtime = time.perf_counter() - started

        started = time.perf_counter()
        subprocess.run(
            [
                str(Path(sys.executable).parent / "modelplane"),
                "batch",
                "--model",
                str(model_path),
                "--input",
                str(source.parent),
                "--output",
                str(folder / "cli"),
            ],
            check=True,
            capture_output=True,
        )
        end_to_end = time.perf_counter() - started

    print(f"{'raw read + predict + write (anchor)':40} {args.rows / raw:12,.0f} rows/s  {raw:6.2f} s")
    print(f"{'modelplane batch runtime, in-process':40} {args.rows / runtime:12,.0f} rows/s  {runtime:6.2f} s")
    print(f"{'modelplane batch, whole process':40} {args.rows / end_to_end:12,.0f} rows/s  {end_to_end:6.2f} s")
    print(f"\nruntime / raw: {raw / runtime:.2f} (goal >= 0.80); whole process / raw: {raw / end_to_end:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
