"""An answer in MLflow's scoring protocol is what MLflow's own scoring server writes for
the same predictions, whatever the model returns: the same JSON, NaN and all."""

from __future__ import annotations

import datetime
import json
from io import StringIO

import numpy as np
import pandas as pd
import pytest
from mlflow.pyfunc.scoring_server import predictions_to_json

from modelplane.serving.protocols.mlflow_scoring import encode

PREDICTIONS = {
    "integers": np.array([0, 2, 1]),
    "floats-with-nan": np.array([0.5, np.nan, np.inf]),
    "class-names": np.array(["setosa", "virginica"]),
    "objects": np.array(["a", 1, None, 2.5, np.int64(3)], dtype=object),
    "bytes": np.array([b"\x00\x01", b"png"]),
    "probabilities": np.array([[0.1, 0.9], [0.8, 0.2]]),
    "frame": pd.DataFrame({"label": ["a", "b"], "score": [0.25, np.nan], "when": pd.to_datetime(["2026-01-01", None])}),
    "series": pd.Series([1.5, 2.5], name="y"),
    "unicode": np.array(["größe", "東京"]),
    "list-of-dicts": [{"label": "a", "score": np.float32(0.5)}, {"label": "b", "score": np.float32(1.0)}],
    "dict-of-arrays": {"a": np.array([1, 2]), "b": np.array([b"x"], dtype=object)},
    "dates": [datetime.date(2026, 12, 7), pd.Timestamp("2026-12-07T10:00:00"), datetime.time(10, 30)],
    "string": "one answer",
}


@pytest.mark.parametrize("predictions", PREDICTIONS.values(), ids=PREDICTIONS.keys())
def test_the_answer_is_what_mlflows_scoring_server_writes(predictions: object):
    mlflows = StringIO()
    predictions_to_json(predictions, mlflows)

    # Compared as JSON written one way: plain number arrays skip the spaces MLflow puts in.
    assert _canonical(encode(predictions).decode()) == _canonical(mlflows.getvalue())


def _canonical(text: str) -> str:
    return json.dumps(json.loads(text), sort_keys=False)
