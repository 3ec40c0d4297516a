"""Reading the real node's workloads, for the node tier's tests."""

from __future__ import annotations

import json
from datetime import datetime

import requests

from tests.testbed.cluster import ControlPlane

PORT = 8080


def pods_of(cluster: ControlPlane, namespace: str, name: str) -> list[dict]:
    """The pods of a ModelDeployment, terminating ones included."""
    listed = cluster.kubectl("get", "pods", "-n", namespace, "-l", f"modelplane.io/deployment={name}", "-o", "json")
    return json.loads(listed.stdout)["items"]


def service_url(cluster: ControlPlane, namespace: str, name: str) -> str:
    return f"http://{cluster.get('service', name, namespace)['spec']['clusterIP']}:{PORT}"


def answers(url: str) -> bool:
    """kube-proxy routes a Service a moment after its endpoints are Ready."""
    try:
        return requests.get(url, timeout=5).ok
    except requests.RequestException:
        return False


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def seconds_to_ready(pod: dict) -> float:
    """From the pod's container start to its Ready condition."""
    started = pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
    became_ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")["lastTransitionTime"]
    return (_when(became_ready) - _when(started)).total_seconds()
