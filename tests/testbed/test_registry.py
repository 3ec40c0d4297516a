"""Smoke tests: the registry serves real models through a real MLflow server."""

from __future__ import annotations

import pytest

from tests.conftest import Registry

pytestmark = pytest.mark.registry


def test_an_alias_resolves_to_its_version(registry: Registry):
    from mlflow import MlflowClient

    client = MlflowClient(registry.tracking_uri)
    models = registry.models

    assert client.get_model_version_by_alias(models.iris, "champion").version == models.champion_version
    assert client.get_model_version_by_alias(models.iris, "challenger").version == models.challenger_version


@pytest.mark.parametrize("alias", ["champion", "challenger"])
def test_a_registered_iris_model_loads_and_predicts(registry: Registry, alias: str):
    import mlflow.pyfunc

    from modelplane.demo import iris_features

    features, labels = iris_features()
    model = mlflow.pyfunc.load_model(f"models:/{registry.models.iris}@{alias}")

    accuracy = (model.predict(features) == labels.to_numpy()).mean()

    assert accuracy > 0.9
    assert model.metadata.get_input_schema().input_names() == list(features.columns)


def test_the_custom_pyfunc_model_predicts(registry: Registry):
    import mlflow.pyfunc
    import pandas as pd

    models = registry.models
    model = mlflow.pyfunc.load_model(f"models:/{models.custom}/{models.custom_version}")

    predicted = model.predict(pd.DataFrame({"x": [1.0, -2.5], "y": [0.0, 4.0]}))

    assert predicted.to_dict("list") == {"x": [11.0, 7.5], "y": [10.0, 14.0]}
