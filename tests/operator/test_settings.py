"""The operator's settings from its environment, as the chart sets them: what a bad one
says, from `modelplane render` and `modelplane operator` alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

MODELPLANE = str(Path(sys.executable).parent / "modelplane")
EXAMPLE = REPO / "examples" / "iris-online.yaml"


def _render(**variables: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MODELPLANE_")}
    return subprocess.run(
        [MODELPLANE, "render", "-f", str(EXAMPLE), "--version", "1"],
        capture_output=True,
        text=True,
        env={**env, **variables},
        timeout=120,
    )


def _container(documents: list[dict]) -> dict:
    (workload,) = [document for document in documents if document["kind"] == "Deployment"]
    return workload["spec"]["template"]["spec"]["containers"][0]


def test_render_uses_the_operators_settings_from_its_variables():
    resources = {"requests": {"cpu": "2", "memory": "4Gi"}}
    policy = {"ingressFrom": [{"namespaceSelector": {}}]}

    result = _render(MODELPLANE_WORKLOAD_RESOURCES=json.dumps(resources), MODELPLANE_NETWORK_POLICY=json.dumps(policy))

    assert result.returncode == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    assert [document["kind"] for document in documents] == ["NetworkPolicy", "Deployment", "Service"]
    assert documents[0]["spec"]["ingress"][0]["from"] == [{"namespaceSelector": {}}]
    assert _container(documents)["resources"] == resources


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MODELPLANE_WORKLOAD_RESOURCES", "{cpu: 1", "MODELPLANE_WORKLOAD_RESOURCES is not JSON"),
        ("MODELPLANE_WORKLOAD_RESOURCES", '{"cpu": "1"}', "chart value workloads.resources"),
        ("MODELPLANE_WORKLOAD_RESOURCES", '{"request": {"cpu": "1"}}', "must be an object of requests and limits"),
        ("MODELPLANE_NETWORK_POLICY", '{"ingress": []}', "unknown key 'ingress' (chart value networkPolicy.ingress)"),
        (
            "MODELPLANE_NETWORK_POLICY",
            '{"registryEgress": {"to": []}}',
            "registryEgress (chart value networkPolicy.registryEgress) must be a list",
        ),
        (
            "MODELPLANE_NETWORK_POLICY",
            '{"ingressFrom": []}',
            "ingressFrom is empty, which a NetworkPolicy reads as every source",
        ),
    ],
    ids=["not-json", "not-resources", "misspelt-resources", "unknown-key", "not-a-list", "no-sources"],
)
def test_a_bad_setting_is_named_with_its_chart_value_and_nothing_is_rendered(variable, value, message):
    result = _render(**{variable: value})

    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_the_operator_does_not_start_with_a_bad_setting(tmp_path: Path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("MODELPLANE_")}
    env["KUBECONFIG"] = str(tmp_path / "none")  # never reached: the settings are read first

    result = subprocess.run(
        [MODELPLANE, "operator", "--all-namespaces"],
        capture_output=True,
        text=True,
        env={**env, "MODELPLANE_NETWORK_POLICY": '{"ingressFrom": []}'},
        timeout=120,
    )

    assert result.returncode == 2
    assert "MODELPLANE_NETWORK_POLICY: ingressFrom is empty" in result.stderr and "Traceback" not in result.stderr
