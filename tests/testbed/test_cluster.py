"""Smoke tests: the control plane behaves like a real cluster, because it is one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.testbed import binaries
from tests.testbed.cluster import ControlPlane
from tests.waiting import eventually

pytestmark = pytest.mark.cluster


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.testbed.modelplane.io"},
    "spec": {
        "group": "testbed.modelplane.io",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"minReplicas": {"type": "integer"}, "maxReplicas": {"type": "integer"}},
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.minReplicas <= self.maxReplicas",
                                        "message": "spec.minReplicas must not exceed spec.maxReplicas",
                                    }
                                ],
                            }
                        },
                    }
                },
            }
        ],
    },
}


def _widget(name: str, namespace: str, low: int, high: int) -> dict:
    return {
        "apiVersion": "testbed.modelplane.io/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"minReplicas": low, "maxReplicas": high},
    }


def test_a_cel_rule_refuses_a_bad_object(cluster: ControlPlane, namespace: str):
    cluster.apply(WIDGET_CRD)
    cluster.wait_established("widgets.testbed.modelplane.io")
    cluster.apply(_widget("fine", namespace, 1, 3))

    refused = cluster.apply(_widget("broken", namespace, 5, 3), check=False)

    assert refused.returncode != 0
    assert "spec.minReplicas must not exceed spec.maxReplicas" in refused.stderr
    assert cluster.kubectl("get", "widgets", "-n", namespace, "-o", "name").stdout.split() == [
        "widget.testbed.modelplane.io/fine"
    ]


def test_deployment_pods_become_ready_on_the_simulated_nodes(cluster: ControlPlane, namespace: str):
    labels = {"app": "web"}
    cluster.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]},
                },
            },
        }
    )
    cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=60s")

    deployment = cluster.get("deployment", "web", namespace)
    assert deployment["status"]["readyReplicas"] == 3
    pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
    assert {pod["spec"]["nodeName"] for pod in pods} <= {"kwok-node-0", "kwok-node-1"}
    assert all(pod["status"]["phase"] == "Running" for pod in pods)


def test_a_job_completes(cluster: ControlPlane, namespace: str):
    cluster.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "score", "namespace": namespace},
            "spec": {
                "completions": 2,
                "parallelism": 2,
                "completionMode": "Indexed",
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "score", "image": "example.invalid/score:1"}],
                    }
                },
            },
        }
    )
    cluster.kubectl("wait", "--for=condition=Complete", "job/score", "-n", namespace, "--timeout=60s")

    assert cluster.get("job", "score", namespace)["status"]["succeeded"] == 2


def test_the_garbage_collector_removes_orphans(cluster: ControlPlane, namespace: str):
    cluster.kubectl("create", "configmap", "owner", "-n", namespace)
    owner = cluster.get("configmap", "owner", namespace)
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "child",
                "namespace": namespace,
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "owner",
                        "uid": owner["metadata"]["uid"],
                    }
                ],
            },
        }
    )

    cluster.kubectl("delete", "configmap", "owner", "-n", namespace)

    eventually(
        lambda: cluster.kubectl("get", "configmap", "child", "-n", namespace, check=False).returncode != 0,
        what="the child ConfigMap being garbage-collected",
    )


def test_a_service_account_token_carries_only_its_rbac(cluster: ControlPlane, namespace: str):
    cluster.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    cluster.kubectl("create", "role", "read-configmaps", "--verb=get,list", "--resource=configmaps", "-n", namespace)
    cluster.kubectl(
        "create",
        "rolebinding",
        "reader",
        "--role=read-configmaps",
        f"--serviceaccount={namespace}:reader",
        "-n",
        namespace,
    )
    as_reader = cluster.service_account_kubeconfig(namespace, "reader")

    allowed = cluster.kubectl("get", "configmaps", "-n", namespace, kubeconfig=as_reader, check=False)
    denied = cluster.kubectl("get", "secrets", "-n", namespace, kubeconfig=as_reader, check=False)

    assert allowed.returncode == 0, allowed.stderr
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()


def test_helm_installs_a_chart(cluster: ControlPlane, namespace: str, tmp_path: Path):
    assert binaries.HELM_VERSION in cluster.helm("version", "--short").stdout
    chart = tmp_path / "greeting"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v2",
                "name": "greeting",
                "version": "0.1.0",
                "kubeVersion": ">=1.30.0-0",
            }
        )
    )
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
    )

    cluster.helm("install", "smoke", str(chart), "-n", namespace, "--set", "greeting=hi", "--wait")

    assert cluster.get("configmap", "smoke", namespace)["data"] == {"greeting": "hi"}
    assert "deployed" in cluster.helm("status", "smoke", "-n", namespace).stdout
