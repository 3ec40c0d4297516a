"""Following a registry alias: a moved alias reaches the workload by itself, unless the
ModelDeployment pins its version."""

from __future__ import annotations

import time

import pytest

from tests.conftest import Registry
from tests.operator.process import Operator
from tests.operator.resources import apply, events, manifest, ready, status_of
from tests.testbed.cluster import ControlPlane
from tests.waiting import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.registry]
POLL_SECONDS = 5


@pytest.fixture
def promoted_model(registry: Registry, namespace: str) -> str:
    """A model of its own (versions 1 and 2, @champion on 1), so moving its alias disturbs no other test."""
    import mlflow
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from modelplane.demo import register_iris_model

    mlflow.set_tracking_uri(registry.tracking_uri)
    experiment_id = mlflow.get_experiment_by_name("testbed").experiment_id
    name = f"promoted-{namespace}"
    register_iris_model(experiment_id, LogisticRegression(max_iter=500), name, "champion")
    register_iris_model(experiment_id, RandomForestClassifier(n_estimators=5, random_state=0), name, None)
    return name


def _serving_version(cluster: ControlPlane, namespace: str, name: str) -> str:
    container = cluster.get("deployment", name, namespace)["spec"]["template"]["spec"]["containers"][0]
    model = next(var["value"] for var in container["env"] if var["name"] == "MODELPLANE_MODEL")
    return model.rsplit("/", 1)[-1]


def _move_alias(model: str, version: str) -> None:
    import mlflow

    mlflow.MlflowClient().set_registered_model_alias(model, "champion", version)


def test_a_moved_alias_rolls_the_workload_to_the_new_version(
    operator: Operator, cluster: ControlPlane, namespace: str, promoted_model: str,
):
    apply(cluster, namespace, manifest("follow", model={"name": promoted_model, "alias": "champion"},
                                       rollout={"pollIntervalSeconds": POLL_SECONDS}))
    assert eventually(lambda: ready(cluster, namespace, "follow"), what="Ready")["modelVersion"] == "1"

    _move_alias(promoted_model, "2")

    eventually(lambda: _serving_version(cluster, namespace, "follow") == "2", timeout=60,
               what="the Deployment at version 2")
    eventually(lambda: (ready(cluster, namespace, "follow") or {}).get("modelVersion") == "2", timeout=60,
               what="status at version 2, Ready")
    moves = [message for reason, message in events(cluster, namespace, "follow") if reason == "AliasMoved"]
    assert moves == [f"alias 'champion' of {promoted_model} moved from version 1 to 2: rolling out"]


def test_a_pinned_deployment_stays_on_its_version(
    operator: Operator, cluster: ControlPlane, namespace: str, promoted_model: str,
):
    apply(cluster, namespace, manifest("pinned", model={"name": promoted_model, "alias": "champion"},
                                       rollout={"pollIntervalSeconds": POLL_SECONDS, "track": False},
                                       online={"replicas": 1}))
    eventually(lambda: ready(cluster, namespace, "pinned"), what="Ready")

    _move_alias(promoted_model, "2")
    # An edit makes a full pass, which must not resolve the alias again either.
    apply(cluster, namespace, manifest("pinned", model={"name": promoted_model, "alias": "champion"},
                                       rollout={"pollIntervalSeconds": POLL_SECONDS, "track": False},
                                       online={"replicas": 2}))
    time.sleep(3 * POLL_SECONDS)

    assert status_of(cluster, namespace, "pinned")["modelVersion"] == "1"
    assert _serving_version(cluster, namespace, "pinned") == "1"
    assert cluster.get("deployment", "pinned", namespace)["spec"]["replicas"] == 2
