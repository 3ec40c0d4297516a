"""`modelplane demo`: a local registry with a model in it, served with no cluster.

The registry is MLflow's own (a SQLite database and an artifact folder), the model is
trained on the spot from the iris data that scikit-learn ships, so nothing is downloaded;
then `modelplane serve` serves it on loopback and answers one prediction request.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

DEMO_MODEL = "iris"
DEMO_ALIAS = "champion"
DEMO_EXPERIMENT = "modelplane-demo"
# Skops refuses to load types it has not been told to trust; a forest holds these.
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def iris_features():
    """The iris measurements as a DataFrame and the species as labels."""
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    return iris.data, iris.target


def register_iris_model(experiment_id: str, estimator, name: str = DEMO_MODEL, alias: str | None = DEMO_ALIAS) -> str:
    """Trains `estimator` on iris, registers it with its signature and an input example,
    points `alias` at the new version, and returns that version."""
    import mlflow
    import skops
    import sklearn
    from mlflow.models import infer_signature

    features, labels = iris_features()
    estimator.fit(features, labels)
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.sklearn.log_model(
            estimator,
            name="model",
            signature=infer_signature(features, estimator.predict(features)),
            input_example=features.head(3),
            registered_model_name=name,
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            # Stated rather than inferred: inference loads the model in a subprocess (seconds).
            pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"skops=={skops.__version__}"],
        )
    version = str(info.registered_model_version)
    if alias:
        mlflow.MlflowClient().set_registered_model_alias(name, alias, version)
    return version


def _local_registry(home: Path) -> str:
    """Points MLflow at a SQLite registry under `home` and returns the demo experiment id."""
    import mlflow

    home.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(f"sqlite:///{home.resolve() / 'mlflow.db'}")
    experiment = mlflow.get_experiment_by_name(DEMO_EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow.create_experiment(DEMO_EXPERIMENT, artifact_location=(home.resolve() / "artifacts").as_uri())


def main(home: str) -> int:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    registry = Path(home)
    experiment_id = _local_registry(registry)
    version = register_iris_model(experiment_id, LogisticRegression(max_iter=500))
    uri = f"models:/{DEMO_MODEL}@{DEMO_ALIAS}"
    print(f"registered {DEMO_MODEL} version {version} as @{DEMO_ALIAS} in {mlflow.get_tracking_uri()}")

    features, labels = iris_features()
    sample = features.sample(3, random_state=0)
    with _server(uri, mlflow.get_tracking_uri(), registry / "model-cache") as url:
        print(f"serving {uri} at {url}")
        body = {"dataframe_split": {"columns": list(sample.columns), "data": sample.to_numpy().tolist()}}
        predictions = _post_json(f"{url}/invocations", body)["predictions"]
    for (index, row), predicted in zip(sample.iterrows(), predictions):
        measurements = ", ".join(f"{name} {value}" for name, value in row.items())
        print(f"POST /invocations {measurements} -> species {predicted} (labelled {labels[index]})")
    print(f"to browse the registry: mlflow ui --backend-store-uri {mlflow.get_tracking_uri()}")
    return 0


@contextmanager
def _server(uri: str, tracking_uri: str, cache: Path):
    """`modelplane serve` on a free loopback port, as a container would run it; stopped on exit."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MODELPLANE_MODEL": uri,
           "MODELPLANE_MODEL_CACHE": str(cache), "MODELPLANE_HOST": "127.0.0.1", "MODELPLANE_PORT": str(port)}
    server = subprocess.Popen([sys.executable, "-m", "modelplane.cli", "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not _answers(f"{url}/readyz"):
            if server.poll() is not None:
                raise SystemExit(f"the server stopped: {server.stderr.read().strip().splitlines()[-1]}")
            if time.monotonic() > deadline:
                raise SystemExit("the server did not become ready within 120 s")
            time.sleep(0.2)
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)
