"""The contract between the operator and the serving runtime: what the operator puts in
a pod (the container's arguments and environment) is all the runtime needs to serve."""

from __future__ import annotations

import pytest
import requests

from modelplane.operator.manifest import parse_manifest
from modelplane.operator.registry import Registries, RegistryClient
from modelplane.operator.render import RenderSettings, render
from modelplane.operator.render.pod import MODEL_CACHE_DIR, SCRATCH_DIR
from modelplane.serving.settings import ServeSettings
from tests.conftest import Registry, show_logs_on_failure
from tests.serving.server import start_server

pytestmark = pytest.mark.registry


def test_the_rendered_container_serves_a_prediction(request, registry: Registry, tmp_path, testbed_dir):
    from modelplane.demo import iris_features

    deployment = parse_manifest(
        {
            "apiVersion": "modelplane.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "iris"},
            "spec": {"mode": "online", "model": {"name": registry.models.iris, "alias": "champion"}},
        }
    )
    settings = RenderSettings(serving_image="unused", registry_uri=registry.tracking_uri)
    workload = render(
        deployment, RegistryClient(Registries(registry.tracking_uri)).resolve(deployment.spec.model), settings
    )[0]
    container = workload["spec"]["template"]["spec"]["containers"][0]
    # The pod's emptyDir mounts become temporary folders; the port is chosen by the test.
    folders = {MODEL_CACHE_DIR: str(tmp_path / "cache"), SCRATCH_DIR: str(tmp_path / "scratch")}
    env = {var["name"]: folders.get(var["value"], var["value"]) for var in container["env"]}

    process, url = start_server("serve-as-rendered", env, testbed_dir / "logs", args=tuple(container["args"]))
    show_logs_on_failure(request.config, [process])
    try:
        probes = [container[probe]["httpGet"]["path"] for probe in ("startupProbe", "readinessProbe", "livenessProbe")]
        statuses = [requests.get(url + path, timeout=5).status_code for path in probes]
        page = requests.get(url + "/", timeout=5)
        features, labels = iris_features()
        rows = features.iloc[[0, 60, 120]]
        response = requests.post(
            url + "/invocations",
            timeout=10,
            json={"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}},
        )
    finally:
        process.stop()

    served = {name.removeprefix("MODELPLANE_").lower() for name in env if name.startswith("MODELPLANE_")}
    assert served <= ServeSettings.model_fields.keys(), "the operator sets variables the runtime does not read"
    assert statuses == [200, 200, 200]
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert response.json()["predictions"] == labels.iloc[[0, 60, 120]].tolist()
