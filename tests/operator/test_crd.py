"""The CRD: generated from the spec models, accepted by a real API server, and
refusing bad manifests with a message that names the field, as local validation does."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from modelplane.operator.crd import custom_resource_definition, render_yaml
from modelplane.operator.manifest import ManifestError, parse_manifest
from tests.conftest import CRD_FILE, REPO
from tests.testbed.cluster import ControlPlane

GOOD = {
    "apiVersion": "modelplane.io/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "iris"},
    "spec": {"mode": "online", "model": {"name": "iris", "alias": "champion"}},
}


def _with(path: str, value: object) -> dict:
    """GOOD with the dotted `path` under spec set to `value` (None deletes it)."""
    manifest = copy.deepcopy(GOOD)
    *parents, leaf = path.split(".")
    node = manifest["spec"]
    for part in parents:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return manifest


BAD_MANIFESTS = {
    "version-and-alias": (_with("model.version", "2"), "spec.model", "set exactly one of spec.model.version"),
    "neither-version-nor-alias": (_with("model.alias", None), "spec.model", "set exactly one of spec.model.version"),
    "batch-without-section": (_with("mode", "batch"), "spec.batch", "spec.batch is required when spec.mode is batch"),
    "streaming-without-section": (
        _with("mode", "streaming"),
        "spec.streaming",
        "spec.streaming is required when spec.mode is streaming",
    ),
    "bad-cron": (
        _with("batch", {"input": "/in", "output": "/out", "schedule": "every hour"}),
        "spec.batch.schedule",
        "spec.batch.schedule must be a cron expression",
    ),
    "autoscaling-inverted": (
        _with("online", {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}),
        "spec.online.autoscaling.minReplicas",
        "must not exceed maxReplicas",
    ),
    "version-not-a-number": (_with("model", {"name": "iris", "version": "latest"}), "spec.model.version", None),
    "unknown-mode": (_with("mode", "realtime"), "spec.mode", None),
    "misspelt-field": (_with("online", {"replica": 2}), "spec.online.replica", None),
    "stream-of-unknown-transport": (
        _with("streaming", {"source": "http://example/topic", "sink": "kafka://k:9092/out"}),
        "spec.streaming.source",
        None,
    ),
    "nats-subject-without-stream": (
        _with("streaming", {"source": "nats://n:4222/orders", "sink": "kafka://k:9092/out"}),
        "spec.streaming.source",
        "add its JetStream stream",
    ),
    **{
        f"registry-{attack}": (
            _with("model.registry", {"uri": uri}),
            "spec.model.registry.uri",
            "spec.model.registry.uri must be an http:// or https:// address with no user name, password, query or fragment",
        )
        for attack, uri in {
            "with-credentials": "http://user:token@mlflow.mlflow.svc:5000",
            "aimed-at-another-path-by-fragment": "http://metadata.internal/computeMetadata/v1#",
            "aimed-at-another-path-by-query": "http://metadata.internal/computeMetadata/v1?path=",
            "of-another-scheme": "file:///var/run/secrets/kubernetes.io/serviceaccount",
        }.items()
    },
    "lag-autoscaling-inverted": (
        _with(
            "streaming",
            {
                "source": "kafka://k:9092/in",
                "sink": "kafka://k:9092/out",
                "autoscaling": {"minReplicas": 5, "maxReplicas": 2},
            },
        ),
        "spec.streaming.autoscaling.minReplicas",
        "must not exceed maxReplicas",
    ),
}


@pytest.mark.parametrize(
    "checked_in", [CRD_FILE, REPO / "charts" / "modelplane" / "files" / CRD_FILE.name], ids=["crds", "chart"]
)
def test_the_checked_in_crd_is_generated_from_the_spec(checked_in):
    regenerate = f"python -m modelplane.operator.crd > {checked_in.relative_to(REPO)}"
    assert checked_in.read_text() == render_yaml(), f"the CRD drifted from spec.py; run: {regenerate}"


def test_every_rule_message_names_its_field():
    def rules(node):
        if isinstance(node, dict):
            yield from node.get("x-kubernetes-validations", [])
            for child in node.values():
                yield from rules(child)
        elif isinstance(node, list):
            for child in node:
                yield from rules(child)

    messages = [rule["message"] for rule in rules(custom_resource_definition())]
    assert messages and all("spec." in message for message in messages)


@pytest.mark.cluster
def test_the_api_server_accepts_a_good_manifest(crd: ControlPlane, namespace: str):
    crd.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(GOOD))

    stored = crd.get("modeldeployment", "iris", namespace)

    # Server-side defaults come from the same models as local ones.
    assert stored["spec"] == parse_manifest(GOOD).spec.model_dump(mode="json", by_alias=True, exclude_none=True)


@pytest.mark.cluster
@pytest.mark.parametrize("case", BAD_MANIFESTS)
def test_a_bad_manifest_is_refused_by_the_api_server_and_locally_alike(crd: ControlPlane, namespace: str, case: str):
    manifest, field, message = BAD_MANIFESTS[case]

    refused = crd.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest), check=False)
    with pytest.raises(ManifestError) as local:
        parse_manifest(manifest)

    assert refused.returncode != 0
    assert field in refused.stderr
    assert any(field in problem for problem in local.value.problems), local.value.problems
    if message:
        assert message in refused.stderr
        assert any(message in problem for problem in local.value.problems)


@pytest.mark.cluster
def test_kubectl_get_shows_the_printer_columns(crd: ControlPlane, namespace: str):
    crd.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(GOOD))
    status = {
        "status": {
            "modelVersion": "3",
            "endpoint": f"http://iris.{namespace}.svc:8080",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "MinimumReplicasAvailable",
                    "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        }
    }
    crd.kubectl(
        "patch", "mdep", "iris", "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )

    header, row = crd.kubectl("get", "mdep", "-n", namespace).stdout.splitlines()

    assert header.split() == ["NAME", "MODE", "MODEL", "VERSION", "READY", "ENDPOINT", "AGE"]
    assert row.split()[:6] == ["iris", "online", "iris", "3", "True", f"http://iris.{namespace}.svc:8080"]
    assert "modelplane.io" in crd.kubectl("get", "modelplane", "-n", namespace, "-o", "name").stdout
