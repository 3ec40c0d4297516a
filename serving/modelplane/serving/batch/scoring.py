"""Scoring files with a registry model, chunk by chunk: what `modelplane batch` runs.

Memory is bounded by the chunk size, not the input. Each output row carries the input's
id column (or the row's number in its file) beside the model's predictions; an image
file's one row carries its name.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from modelplane.serving.batch.inputs import Share, find_inputs, shares
from modelplane.serving.batch.outputs import Output
from modelplane.serving.batch.readers import read_chunks
from modelplane.serving.batch.runs import Run, RunMarkers
from modelplane.serving.dataplane.columns import ColumnSchema
from modelplane.serving.errors import BatchError
from modelplane.serving.settings import BatchSettings

if TYPE_CHECKING:
    from mlflow.models.utils import PyFuncOutput
    from mlflow.pyfunc import PyFuncModel

log = logging.getLogger("modelplane.batch")
ROW_COLUMN = "row"
FILE_COLUMN = "file"
PROGRESS_EVERY_SECONDS = 5.0


def score_files(pyfunc: PyFuncModel, settings: BatchSettings) -> int:
    import fsspec

    input_fs, input_root = fsspec.core.url_to_fs(settings.input)
    output_fs, output_root = fsspec.core.url_to_fs(settings.output)
    image_column = _image_column(pyfunc)
    files = find_inputs(input_fs, settings.input, input_root, images=image_column is not None)
    mine = shares(files, settings.shard_index, settings.shard_count)
    output = Output(output_fs, output_root, settings.format.value, settings.shard_index, settings.chunk_rows)
    output.begin()
    # The model by its uuid, not its URI: an alias moved between two shards' starts makes two runs.
    run = Run.of(
        files,
        pyfunc.metadata.model_uuid or settings.model,
        settings.shard_count,
        {"format": settings.format.value, "id_column": settings.id_column, "chunk_rows": settings.chunk_rows},
    )
    markers = RunMarkers(output, run, settings.shard_index)
    markers.begin()
    progress = _Progress()
    for share in mine:
        if settings.only_new and output.scored(share):
            log.info("skipping %s: scored by an earlier run", share.file.path)
            continue
        with output.writer(share) as writer:
            for first_row, chunk in read_chunks(input_fs, share, settings.chunk_rows, image_column):
                writer.write(_score_chunk(pyfunc, chunk, first_row, share, settings.id_column))
                progress.add(len(chunk))
    markers.finish(progress.rows)
    progress.report(final=True)
    return progress.rows


def _score_chunk(
    pyfunc: PyFuncModel, chunk: pd.DataFrame, first_row: int, share: Share, id_column: str | None
) -> pd.DataFrame:
    if share.file.format == "image":
        # An image file's id is its name: it has no columns an --id-column could name.
        ids = pd.Series([share.file.name], name=FILE_COLUMN)
        features = chunk
    elif id_column is None:
        ids = pd.Series(np.arange(first_row, first_row + len(chunk)), name=ROW_COLUMN)
        features = chunk
    elif id_column not in chunk.columns:
        raise BatchError(
            f"--id-column {id_column!r} is not a column of {share.file.path}; "
            f"its columns are {', '.join(map(str, chunk.columns))}"
        )
    else:
        ids = chunk[id_column]
        inputs = pyfunc.metadata.get_input_schema()  # type: ignore[no-untyped-call]  # MLflow leaves it unannotated
        wanted = inputs.input_names() if inputs is not None and inputs.has_input_names() else []
        features = chunk if id_column in wanted else chunk.drop(columns=[id_column])
    try:
        predictions = pyfunc.predict(features)
    except Exception as error:  # noqa: BLE001 - the model's own failure, located in the input
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BatchError(
            f"rows {first_row}-{first_row + len(chunk) - 1} of {share.file.path} could not be scored: {message}"
        ) from None
    return pd.concat([ids.reset_index(drop=True), prediction_frame(predictions)], axis=1)


def _image_column(pyfunc: PyFuncModel) -> str | None:
    """The binary column an image file fills, for a model that takes one image."""
    schema = ColumnSchema.of(pyfunc.metadata.get_input_schema())  # type: ignore[no-untyped-call]
    return schema.binary_column if schema is not None else None


def prediction_frame(predictions: PyFuncOutput) -> pd.DataFrame:
    """The model's output as columns: its own for a DataFrame, else `prediction` (or
    `prediction_0`, `prediction_1`, ... for one vector per row)."""
    if isinstance(predictions, pd.DataFrame):
        return predictions.reset_index(drop=True)
    if isinstance(predictions, pd.Series):
        return predictions.rename("prediction").reset_index(drop=True).to_frame()
    array = np.asarray(predictions)
    if array.ndim == 2:
        return pd.DataFrame(array, columns=[f"prediction_{i}" for i in range(array.shape[1])])
    return pd.DataFrame({"prediction": list(array) if array.ndim > 2 else array})


class _Progress:
    def __init__(self) -> None:
        self.rows = 0
        self._started = self._reported = time.monotonic()

    def add(self, rows: int) -> None:
        self.rows += rows
        if time.monotonic() - self._reported >= PROGRESS_EVERY_SECONDS:
            self.report()

    def report(self, final: bool = False) -> None:
        self._reported = time.monotonic()
        elapsed = max(self._reported - self._started, 1e-9)
        log.info("%s %d rows (%.0f rows/s)", "scored" if final else "scoring:", self.rows, self.rows / elapsed)
