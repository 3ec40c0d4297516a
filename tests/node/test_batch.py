"""Batch mode on the real node: the Job's pod reads a real file from a file server,
scores it, and writes its predictions back, as it would to any fsspec store."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import Registry
from tests.node.conftest import FileServer
from tests.operator.process import Operator
from tests.operator.resources import apply, manifest, ready
from tests.testbed.cluster import ControlPlane
from tests.testbed.node import Node
from tests.waiting import eventually

pytestmark = pytest.mark.node


def test_a_batch_job_scores_a_served_file_and_writes_the_predictions_back(
    node_operator: Operator,
    node: Node,
    registry: Registry,
    cluster: ControlPlane,
    restricted_namespace: str,
    file_server: FileServer,
):
    import mlflow.pyfunc

    from modelplane.demo import iris_features

    namespace, name = restricted_namespace, "iris-scoring"
    features, _ = iris_features()
    flowers = features.assign(flower=[f"flower-{n}" for n in range(len(features))])
    incoming = file_server.root / namespace / "incoming"
    incoming.mkdir(parents=True)
    flowers.to_csv(incoming / "flowers.csv", index=False)
    batch = {
        "input": f"{file_server.url}/{namespace}/incoming/flowers.csv",
        "output": f"{file_server.url}/{namespace}/scored",
        "format": "csv",
        "idColumn": "flower",
    }

    apply(cluster, namespace, manifest(name, mode="batch", batch=batch, **node.placement))
    eventually(lambda: ready(cluster, namespace, name), timeout=240, what="the Job complete")

    scored_folder = file_server.root / namespace / "scored"
    assert (scored_folder / "_SUCCESS").exists()
    scored = pd.concat([pd.read_csv(path) for path in sorted(scored_folder.glob("*.csv"))], ignore_index=True)
    expected = mlflow.pyfunc.load_model(f"models:/{registry.models.iris}@champion").predict(features)
    assert (
        scored.sort_values("flower").prediction.tolist()
        == flowers.assign(expected=expected).sort_values("flower").expected.tolist()
    )
    assert len(scored) == len(features)
