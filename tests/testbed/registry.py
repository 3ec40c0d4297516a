"""A real MLflow tracking server with the model registry, and the models tests use.

The server keeps its metadata in SQLite and proxies artifacts (`--serve-artifacts`), the
set-up a team runs in production, so clients download models through the server as a
serving pod does.
"""

from __future__ import annotations

import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.testbed.process import Component, free_port


@dataclass(frozen=True)
class RegistryModels:
    """What the registry holds after `register_test_models`."""

    iris: str = "iris"  # version 1: logistic regression @champion; version 2: random forest @challenger
    champion_version: str = "1"
    challenger_version: str = "2"
    custom: str = "add-offset"  # a cloudpickled custom pyfunc that adds `offset` to its input
    custom_version: str = "1"
    custom_offset: float = 10.0


def start_registry(root: Path, logs: Path, die_with_parent: bool = True) -> tuple[Component, str]:
    """Starts `mlflow server` on loopback; returns it and its tracking URI once it answers."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = Component("mlflow", [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"), "--serve-artifacts",
    ], logs).start(die_with_parent=die_with_parent)
    server.wait_until(lambda: urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200, timeout=90)
    return server, uri


def _custom_pyfunc(offset: float):
    import mlflow.pyfunc

    # Defined inside a function so cloudpickle stores the class by value: the model then
    # loads in any process, not only where this test module can be imported.
    class AddOffset(mlflow.pyfunc.PythonModel):
        def __init__(self, offset: float):
            self.offset = offset

        def predict(self, context, model_input, params=None):
            return model_input + self.offset

    return AddOffset(offset)


def register_test_models(tracking_uri: str) -> RegistryModels:
    """Trains and registers the test models; the same code path as `modelplane demo`."""
    import cloudpickle
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from modelplane.demo import register_iris_model

    models = RegistryModels()
    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = mlflow.create_experiment("testbed")
    assert register_iris_model(experiment_id, LogisticRegression(max_iter=500), models.iris, "champion") == models.champion_version
    assert register_iris_model(
        experiment_id, RandomForestClassifier(n_estimators=10, random_state=0), models.iris, "challenger",
    ) == models.challenger_version

    example = pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]})
    with mlflow.start_run(experiment_id=experiment_id):
        mlflow.pyfunc.log_model(
            name="model",
            python_model=_custom_pyfunc(models.custom_offset),
            signature=infer_signature(example, example + models.custom_offset),
            input_example=example,
            registered_model_name=models.custom,
            pip_requirements=[f"cloudpickle=={cloudpickle.__version__}", f"pandas=={pd.__version__}"],
        )
    return models
