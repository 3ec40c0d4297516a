"""`modelplane demo`: a local registry with a model in it, served with no cluster.

The registry is MLflow's own (a SQLite database and an artifact folder), the model is
trained on the spot from the iris data that scikit-learn ships, so nothing is downloaded;
then the online ModelDeployment of examples/iris-online.yaml runs on loopback, as
`modelplane run -f` runs it, and answers one prediction request.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.base import BaseEstimator

DEMO_MODEL = "iris"
DEMO_ALIAS = "champion"
DEMO_EXPERIMENT = "modelplane-demo"
# Skops refuses to load types it has not been told to trust; a forest holds these.
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def iris_features() -> tuple[pd.DataFrame, pd.Series]:
    """The iris measurements as a DataFrame and the species as labels."""
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    return iris.data, iris.target


def register_iris_model(
    experiment_id: str, estimator: BaseEstimator, name: str = DEMO_MODEL, alias: str | None = DEMO_ALIAS
) -> str:
    """Trains `estimator` on iris, registers it with its signature and an input example,
    points `alias` at the new version, and returns that version."""
    import mlflow
    import sklearn
    import skops
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


def local_registry(home: Path) -> str:
    """Points MLflow at a SQLite registry under `home` and returns the demo experiment id."""
    import mlflow

    home.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(f"sqlite:///{home.resolve() / 'mlflow.db'}")
    experiment = mlflow.get_experiment_by_name(DEMO_EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow.create_experiment(DEMO_EXPERIMENT, artifact_location=(home.resolve() / "artifacts").as_uri())


# The manifest of examples/iris-online.yaml, run the way `modelplane run -f` runs it.
DEMO_MANIFEST = {
    "apiVersion": "modelplane.io/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "iris"},
    "spec": {"mode": "online", "model": {"name": DEMO_MODEL, "alias": DEMO_ALIAS}, "online": {"replicas": 1}},
}


def main(home: str) -> int:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from modelplane.local_run import local_workload, serving
    from modelplane.operator.manifest import parse_manifest

    registry = Path(home)
    experiment_id = local_registry(registry)
    version = register_iris_model(experiment_id, LogisticRegression(max_iter=500))
    tracking_uri = mlflow.get_tracking_uri()
    print(f"registered {DEMO_MODEL} version {version} as @{DEMO_ALIAS} in {tracking_uri}")

    workload = local_workload(parse_manifest(DEMO_MANIFEST), tracking_uri, _free_port())
    features, labels = iris_features()
    sample = features.sample(3, random_state=0)
    with serving(workload, quiet=True) as url:
        print(f"serving {workload.model_uri} at {url}, as the ModelDeployment in examples/iris-online.yaml")
        body = {"dataframe_split": {"columns": list(sample.columns), "data": sample.to_numpy().tolist()}}
        predictions = _post_json(f"{url}/invocations", body)["predictions"]
        with urllib.request.urlopen(f"{url}/", timeout=30) as page:
            page_status = page.status
    for (index, row), predicted in zip(sample.iterrows(), predictions, strict=False):
        measurements = ", ".join(f"{name} {value}" for name, value in row.items())
        print(f"POST /invocations {measurements} -> species {predicted} (labelled {labels[index]})")
    print(f"GET / -> {page_status}: the prediction page, generated from the model's signature")
    print("stopped the server. Next, run a manifest yourself (Ctrl-C stops it):")
    print("  .venv/bin/modelplane run -f examples/iris-online.yaml")
    print("  and open http://127.0.0.1:8080/ to type in a flower's measurements and see its species")
    print(f"to browse the registry: mlflow ui --backend-store-uri {tracking_uri}")
    return 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.load(response)
        return answer
