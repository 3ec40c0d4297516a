"""`modelplane batch`: load the model, score this shard's share of the input files, exit."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from modelplane.serving.errors import BatchError
from modelplane.serving.settings import BatchSettings
from modelplane.serving.startup import run, stop

if TYPE_CHECKING:
    from modelplane.serving.model import LoadedModel

log = logging.getLogger("modelplane.batch")


def main(overrides: dict[str, Any]) -> int:
    return run(BatchSettings, overrides, score)


def score(settings: BatchSettings, model: LoadedModel) -> int:
    from modelplane.serving.batch.scoring import score_files

    try:
        rows = score_files(model, settings)
    except BatchError as error:
        return stop(str(error))
    log.info("done: %d rows scored by shard %d of %d", rows, settings.shard_index, settings.shard_count)
    return 0
