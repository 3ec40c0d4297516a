"""Scoring files with a registry model, chunk by chunk: what `modelplane batch` runs.

Memory is bounded by the chunk size, not the input. Each output row carries the input's
id column (or the row's number in its file) beside the model's predictions; an image
file's one row carries its name.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd

from modelplane.serving.batch.inputs import Share, find_inputs, shares
from modelplane.serving.batch.outputs import Output
from modelplane.serving.batch.readers import read_chunks
from modelplane.serving.batch.runs import Run, RunMarkers
from modelplane.serving.dataplane.columns import ColumnSchema, frame_as_is
from modelplane.serving.errors import BatchError
from modelplane.serving.settings import BatchSettings

if TYPE_CHECKING:
    from mlflow.models.utils import PyFuncOutput

    from modelplane.serving.model import LoadedModel

log = logging.getLogger("modelplane.batch")
ROW_COLUMN = "row"
FILE_COLUMN = "file"
PROGRESS_EVERY_SECONDS = 5.0


def score_files(model: LoadedModel, settings: BatchSettings) -> int:
    import fsspec

    input_fs, input_root = fsspec.core.url_to_fs(settings.input)
    output_fs, output_root = fsspec.core.url_to_fs(settings.output)
    columns = ColumnSchema.of(model.inputs)
    image_column = columns.binary_column if columns is not None else None
    files = find_inputs(input_fs, settings.input, input_root, images=image_column is not None)
    mine = shares(files, settings.shard_index, settings.shard_count)
    output = Output(output_fs, output_root, settings.format.value, settings.shard_index, settings.chunk_rows)
    output.begin()
    # The model by its uuid, not its URI: an alias moved between two shards' starts makes two runs.
    run = Run.of(
        files,
        model.model_uuid or settings.model,
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
                writer.write(_score_chunk(model, columns, chunk, first_row, share, settings.id_column))
                progress.add(len(chunk))
    markers.finish(progress.rows)
    progress.report(final=True)
    return progress.rows


def _score_chunk(
    model: LoadedModel,
    columns: ColumnSchema | None,
    chunk: pd.DataFrame,
    first_row: int,
    share: Share,
    id_column: str | None,
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
        features = chunk if id_column in _input_names(model) else chunk.drop(columns=[id_column])
    try:
        predictions = _predict(model, columns, features)
    except Exception as error:  # noqa: BLE001 - the model's own failure, located in the input
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BatchError(
            f"rows {first_row}-{first_row + len(chunk) - 1} of {share.file.path} could not be scored: {message}"
        ) from None
    return pd.concat([ids.reset_index(drop=True), prediction_frame(predictions)], axis=1)


def _input_names(model: LoadedModel) -> list[str]:
    if model.inputs.columns is not None:
        return [column.name for column in model.inputs.columns]
    inputs = model.input_schema
    return cast("list[str]", inputs.input_names()) if inputs is not None and inputs.has_input_names() else []


def _predict(model: LoadedModel, columns: ColumnSchema | None, features: pd.DataFrame) -> PyFuncOutput:
    """The model's predictions for a chunk: by its own predict where MLflow's enforcement
    of the signature would hand it the chunk's columns unchanged, else by MLflow's."""
    predict_checked = model.predict_checked
    if predict_checked is not None and columns is not None:
        as_is = frame_as_is(features, columns)
        if as_is is not None:
            return predict_checked(as_is)
    return model.pyfunc.predict(features)


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
