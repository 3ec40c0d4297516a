"""Reading and writing ModelDeployments on the test bed, for the operator's tests."""

from __future__ import annotations

import json

import yaml

from tests.testbed.cluster import ControlPlane

CHILD_KINDS = "deployments,services,horizontalpodautoscalers,cronjobs,jobs,networkpolicies"


def manifest(name: str, **spec) -> dict:
    return {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"mode": "online", "model": {"name": "iris", "alias": "champion"}, **spec},
    }


def apply(cluster: ControlPlane, namespace: str, document: dict, kubeconfig=None) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(document), kubeconfig=kubeconfig)


def status_of(cluster: ControlPlane, namespace: str, name: str) -> dict:
    return cluster.get("modeldeployment", name, namespace).get("status") or {}


def condition(status: dict, type_: str) -> dict:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def ready(cluster: ControlPlane, namespace: str, name: str, generation: int | None = None) -> dict | None:
    """The status once Ready is True (for `generation`, if given), else None."""
    status = status_of(cluster, namespace, name)
    summary = condition(status, "Ready")
    current = generation is None or summary.get("observedGeneration") == generation
    return status if summary.get("status") == "True" and current else None


def children(cluster: ControlPlane, namespace: str) -> list[str]:
    """The kind/name of every child a ModelDeployment owns in `namespace`."""
    listing = cluster.kubectl(
        "get", CHILD_KINDS, "-n", namespace, "-l", "app.kubernetes.io/managed-by=modelplane", "-o", "json"
    ).stdout
    return sorted(
        f"{item['kind']}/{item['metadata']['name']}"
        for item in json.loads(listing)["items"]
        if any(ref["kind"] == "ModelDeployment" for ref in item["metadata"].get("ownerReferences", []))
    )


def events(cluster: ControlPlane, namespace: str, name: str) -> list[tuple[str, str]]:
    """(reason, message) of each Event about the ModelDeployment `name`."""
    listing = cluster.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        f"involvedObject.kind=ModelDeployment,involvedObject.name={name}",
        "-o",
        "json",
    ).stdout
    return [(event["reason"], event["message"]) for event in json.loads(listing)["items"]]
