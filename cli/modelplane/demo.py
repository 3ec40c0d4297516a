"""`modelplane demo`: a local registry with a model in it, scored with no cluster.

The registry is MLflow's own (a SQLite database and an artifact folder), the model is
trained on the spot from the iris data that scikit-learn ships, so nothing is downloaded.
"""

from __future__ import annotations

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
    predictions = mlflow.pyfunc.load_model(uri).predict(sample)
    for (index, row), predicted in zip(sample.iterrows(), predictions):
        measurements = ", ".join(f"{name} {value}" for name, value in row.items())
        print(f"{uri}: {measurements} -> species {predicted} (labelled {labels[index]})")
    print(f"to browse the registry: mlflow ui --backend-store-uri {mlflow.get_tracking_uri()}")
    return 0
