"""Rendering: pure functions from a ModelDeployment to its children, whose output a real
API server accepts under the "restricted" Pod Security Standard."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelplane.operator.manifest import ModelDeployment, load_manifests, parse_manifest
from modelplane.operator.render import NetworkPolicySettings, RenderSettings, render
from modelplane.operator.render.common import DEFAULT_RESOURCES, MODEL_VERSION_LABEL, TEMPLATE_HASH_ANNOTATION
from modelplane.operator.render.online import split_replicas
from modelplane.operator.spec import ResolvedModel
from tests.conftest import REPO
from tests.testbed.cluster import ControlPlane
from tests.waiting import eventually

SETTINGS = RenderSettings(serving_image="example.invalid/modelplane/serving:test", registry_uri="http://mlflow:5000")
MODEL = ResolvedModel(name="iris", version="7", run_id="abc", source="mlflow-artifacts:/1/abc/artifacts/model")
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def _deployment(**spec) -> ModelDeployment:
    base = {"mode": "online", "model": {"name": "iris", "alias": "champion"}}
    return parse_manifest(
        {
            "apiVersion": "modelplane.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "iris", "namespace": "ml"},
            "spec": {**base, **spec},
        }
    )


def _kinds(children: list[dict]) -> list[str]:
    return [f"{child['kind']}/{child['metadata']['name']}" for child in children]


def _container(workload: dict) -> dict:
    spec = workload["spec"]
    pod = (spec.get("jobTemplate", {}).get("spec") or spec)["template"]["spec"]
    return pod["containers"][0]


def _env(workload: dict) -> dict[str, str]:
    return {var["name"]: var["value"] for var in _container(workload)["env"] if "value" in var}


def test_online_renders_a_deployment_and_a_service_pinned_to_the_resolved_version():
    children = render(_deployment(), MODEL, SETTINGS)

    assert _kinds(children) == ["Deployment/iris", "Service/iris"]
    workload = children[0]
    assert _container(workload)["args"] == ["serve"]
    assert _env(workload)["MODELPLANE_MODEL"] == "models:/iris/7"
    assert _env(workload)["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert workload["spec"]["replicas"] == 1
    assert workload["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert all(child["metadata"]["namespace"] == "ml" for child in children)


def test_the_prediction_page_is_served_unless_the_spec_turns_it_off():
    assert _env(render(_deployment(), MODEL, SETTINGS)[0])["MODELPLANE_UI"] == "true"
    assert _env(render(_deployment(online={"ui": False}), MODEL, SETTINGS)[0])["MODELPLANE_UI"] == "false"


def test_an_autoscaler_owns_the_replica_count():
    children = render(_deployment(online={"autoscaling": {"minReplicas": 2, "maxReplicas": 5}}), MODEL, SETTINGS)

    assert _kinds(children) == ["Deployment/iris", "Service/iris", "HorizontalPodAutoscaler/iris"]
    assert "replicas" not in children[0]["spec"]
    assert children[2]["spec"]["minReplicas"] == 2


@pytest.mark.parametrize(
    ("total", "weight", "split"),
    [
        (10, 10, (9, 1)),
        (10, 50, (5, 5)),
        (4, 25, (3, 1)),
        (4, 10, (3, 1)),
        (1, 10, (1, 1)),
        (3, 99, (1, 3)),
    ],
)
def test_a_canary_takes_whole_replicas_and_leaves_at_least_one_stable(total, weight, split):
    assert split_replicas(total, weight) == split


def test_a_canary_runs_beside_the_stable_version_behind_the_same_service():
    canary = ResolvedModel(name="iris", version="8")
    deployment = _deployment(online={"replicas": 10}, rollout={"strategy": "Canary", "canary": {"weight": 20}})

    children = render(deployment, MODEL, SETTINGS, canary)

    assert _kinds(children) == ["Deployment/iris", "Deployment/iris-canary", "Service/iris"]
    stable, canary_workload, service = children
    assert (stable["spec"]["replicas"], canary_workload["spec"]["replicas"]) == (8, 2)
    assert _env(stable)["MODELPLANE_MODEL"] == "models:/iris/7"
    assert _env(canary_workload)["MODELPLANE_MODEL"] == "models:/iris/8"
    canary_pods = canary_workload["spec"]["template"]["metadata"]["labels"]
    assert canary_pods[MODEL_VERSION_LABEL] == "8"
    assert service["spec"]["selector"].items() <= canary_pods.items()
    assert service["spec"]["selector"].items() <= stable["spec"]["template"]["metadata"]["labels"].items()
    # The canary's selector must not match the stable pods, or it would adopt them.
    assert not canary_workload["spec"]["selector"]["matchLabels"].items() <= (
        stable["spec"]["template"]["metadata"]["labels"].items()
    )


def test_batch_with_a_schedule_is_a_cronjob_of_indexed_shards_scoring_only_new_files():
    batch = {"schedule": "@daily", "input": "/in", "output": "/out", "parallelism": 3}
    (cronjob,) = render(_deployment(mode="batch", batch=batch), MODEL, SETTINGS)

    assert _kinds([cronjob]) == ["CronJob/iris"]
    job = cronjob["spec"]["jobTemplate"]["spec"]
    assert (job["completionMode"], job["completions"], job["parallelism"]) == ("Indexed", 3, 3)
    assert (
        _env(cronjob).items()
        >= {"MODELPLANE_SHARD_COUNT": "3", "MODELPLANE_ONLY_NEW": "true", "MODELPLANE_INPUT": "/in"}.items()
    )


def test_a_one_off_job_is_named_after_what_it_runs():
    batch = {"input": "/in", "output": "/out"}
    (first,) = render(_deployment(mode="batch", batch=batch), MODEL, SETTINGS)
    (again,) = render(_deployment(mode="batch", batch=batch), MODEL, SETTINGS)
    (edited,) = render(_deployment(mode="batch", batch={**batch, "output": "/elsewhere"}), MODEL, SETTINGS)

    assert first["kind"] == "Job" and "ttlSecondsAfterFinished" not in first["spec"]
    assert first["metadata"]["name"] == again["metadata"]["name"]
    assert first["metadata"]["name"] != edited["metadata"]["name"]


def test_streaming_renders_consumers_sharing_one_group():
    streaming = {"source": "kafka://k:9092/in", "sink": "kafka://k:9092/out", "replicas": 3}
    (consumers,) = render(_deployment(mode="streaming", streaming=streaming), MODEL, SETTINGS)

    assert _kinds([consumers]) == ["Deployment/iris-stream"]
    assert consumers["spec"]["replicas"] == 3
    assert _container(consumers)["args"] == ["stream"]
    assert _env(consumers)["MODELPLANE_CONSUMER_GROUP"] == "ml.iris"


@pytest.mark.parametrize(
    ("source", "trigger", "metadata"),
    [
        (
            "kafka://kafka:9092/measurements",
            "kafka",
            {
                "bootstrapServers": "kafka:9092",
                "topic": "measurements",
                "consumerGroup": "ml.iris",
                "lagThreshold": "50",
            },
        ),
        (
            "redis://redis:6379/events?group=scorers",
            "redis-streams",
            {"address": "redis:6379", "stream": "events", "consumerGroup": "scorers", "lagCount": "50"},
        ),
        (
            "nats://nats:4222/orders.new?stream=ORDERS",
            "nats-jetstream",
            {
                "natsServerMonitoringEndpoint": "nats:8222",
                "stream": "ORDERS",
                "consumer": "ml-iris",
                "lagThreshold": "50",
            },
        ),
    ],
)
def test_consumers_scale_on_lag_only_where_keda_is_installed(source, trigger, metadata):
    deployment = _deployment(
        mode="streaming",
        streaming={
            "source": source,
            "sink": "kafka://kafka:9092/out",
            "replicas": 2,
            "autoscaling": {"minReplicas": 1, "maxReplicas": 6, "lagThreshold": 50},
        },
    )

    without = render(deployment, MODEL, SETTINGS)
    assert _kinds(without) == ["Deployment/iris-stream"] and without[0]["spec"]["replicas"] == 2

    children = render(deployment, MODEL, RenderSettings(**{**SETTINGS.__dict__, "scaled_objects": True}))
    assert _kinds(children) == ["Deployment/iris-stream", "ScaledObject/iris-stream"]
    assert "replicas" not in children[0]["spec"]
    scaled = children[1]["spec"]
    assert (scaled["scaleTargetRef"], scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (
        {"name": "iris-stream"},
        1,
        6,
    )
    (found,) = scaled["triggers"]
    assert found["type"] == trigger and metadata.items() <= found["metadata"].items()


@pytest.mark.parametrize(
    ("source", "servers"), [("kafka://Broker/in", "Broker"), ("kafka://broker:99999/in", "broker:99999")]
)
def test_the_lag_trigger_names_the_servers_as_written_and_leaves_refusing_to_the_runtime(source, servers):
    """The runtime refuses a URL it cannot connect to, with its reason, in the pod's status;
    rendering passes the URL on, so a bad one never stops a pass."""
    deployment = _deployment(
        mode="streaming",
        streaming={"source": source, "sink": "kafka://kafka:9092/out", "autoscaling": {"maxReplicas": 3}},
    )
    children = render(deployment, MODEL, RenderSettings(**{**SETTINGS.__dict__, "scaled_objects": True}))
    (trigger,) = children[1]["spec"]["triggers"]
    assert trigger["metadata"]["bootstrapServers"] == servers


def test_the_template_hash_follows_the_pod_template_only():
    def template_hash(deployment: ModelDeployment, model: ResolvedModel) -> str:
        return render(deployment, model, SETTINGS)[0]["spec"]["template"]["metadata"]["annotations"][
            TEMPLATE_HASH_ANNOTATION
        ]

    base = template_hash(_deployment(), MODEL)

    assert template_hash(_deployment(), MODEL) == base
    assert template_hash(_deployment(online={"replicas": 5}), MODEL) == base
    assert template_hash(_deployment(), ResolvedModel("iris", "8")) != base


def test_registry_credentials_and_user_settings_reach_the_container():
    deployment = _deployment(
        model={
            "name": "iris",
            "version": "7",
            "registry": {"uri": "https://mlflow.example", "secretRef": {"name": "creds"}},
        },
        resources={"limits": {"cpu": "2"}},
        env=[{"name": "OMP_NUM_THREADS", "value": "1"}],
        image="my/serving:1",
    )
    container = _container(render(deployment, MODEL, SETTINGS)[0])

    assert container["envFrom"] == [{"secretRef": {"name": "creds"}}]
    assert container["resources"] == {"limits": {"cpu": "2"}}
    assert container["image"] == "my/serving:1"
    assert {"name": "OMP_NUM_THREADS", "value": "1"} in container["env"]
    assert (
        _env({"spec": {"template": {"spec": {"containers": [container]}}}})["MLFLOW_TRACKING_URI"]
        == "https://mlflow.example"
    )


@pytest.mark.cluster
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_each_example_renders_children_the_api_server_accepts_and_collects(
    crd: ControlPlane,
    restricted_namespace: str,
    example: Path,
):
    crd.kubectl("apply", "-n", restricted_namespace, "-f", str(example))
    (manifest,) = load_manifests(example)
    stored = crd.get("modeldeployment", manifest.name, restricted_namespace)
    deployment = parse_manifest(stored)
    children = render(deployment, MODEL, SETTINGS)

    applied = crd.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(children))

    assert "Warning" not in applied.stderr, applied.stderr
    for child in children:
        if child["kind"] == "Deployment":
            crd.kubectl(
                "rollout",
                "status",
                f"deployment/{child['metadata']['name']}",
                "-n",
                restricted_namespace,
                "--timeout=60s",
            )
    crd.kubectl("delete", "modeldeployment", manifest.name, "-n", restricted_namespace)
    for child in children:
        kind, name = child["kind"], child["metadata"]["name"]
        eventually(
            lambda kind=kind, name=name: (
                crd.kubectl("get", kind, name, "-n", restricted_namespace, check=False).returncode != 0
            ),
            what=f"{kind}/{name} being garbage-collected",
        )


def test_the_render_command_prints_the_children_of_a_manifest_with_a_fixed_version(tmp_path: Path):
    manifest = tmp_path / "streaming.yaml"
    manifest.write_text((REPO / "examples" / "iris-streaming.yaml").read_text())
    modelplane = Path(sys.executable).parent / "modelplane"

    result = subprocess.run([str(modelplane), "render", "-f", str(manifest)], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    (consumers,) = list(yaml.safe_load_all(result.stdout))
    assert consumers["metadata"]["name"] == "iris-events-stream"
    assert _env(consumers)["MODELPLANE_MODEL"] == "models:/iris/1"


def test_the_render_command_names_the_field_of_a_bad_manifest(tmp_path: Path):
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: modelplane.io/v1alpha1\nkind: ModelDeployment\nmetadata: {name: x}\n"
        "spec: {mode: batch, model: {name: iris, version: '1'}}\n"
    )
    modelplane = Path(sys.executable).parent / "modelplane"

    result = subprocess.run([str(modelplane), "render", "-f", str(manifest)], capture_output=True, text=True)

    assert result.returncode == 2
    assert "spec.batch is required when spec.mode is batch" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_pickle_policy_is_said_outright_so_a_registry_secret_cannot_turn_it_on():
    with_secret = render(
        _deployment(
            model={"name": "iris", "alias": "champion", "registry": {"secretRef": {"name": "tenant-registry"}}}
        ),
        MODEL,
        SETTINGS,
    )
    asked_for = render(_deployment(env=[{"name": "MODELPLANE_ALLOW_PICKLE", "value": "true"}]), MODEL, SETTINGS)

    container = _container(with_secret[0])
    # Kubernetes lets `env` override what `envFrom` brings, whatever the Secret holds.
    assert container["envFrom"] == [{"secretRef": {"name": "tenant-registry"}}]
    assert _env(with_secret[0])["MODELPLANE_ALLOW_PICKLE"] == "false"
    assert [var for var in _container(asked_for[0])["env"] if var["name"] == "MODELPLANE_ALLOW_PICKLE"] == [
        {"name": "MODELPLANE_ALLOW_PICKLE", "value": "true"}
    ]


POLICY = NetworkPolicySettings(
    ingress_from=({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}},),
    registry_egress=({"to": [{"ipBlock": {"cidr": "10.1.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 5000}]},),
    broker_egress=({"to": [{"ipBlock": {"cidr": "10.2.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 9092}]},),
)
WITH_POLICY = dataclasses.replace(SETTINGS, network_policy=POLICY)


def _pod_labels(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"]["labels"]


def test_a_network_policy_comes_first_and_selects_the_online_pods_and_their_canary():
    deployment = _deployment(online={"port": 8000}, rollout={"strategy": "Canary"})

    children = render(deployment, MODEL, WITH_POLICY, ResolvedModel(name="iris", version="8"))

    assert _kinds(children) == ["NetworkPolicy/iris", "Deployment/iris", "Deployment/iris-canary", "Service/iris"]
    policy, stable, canary, _ = children
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= _pod_labels(stable).items() and selector.items() <= _pod_labels(canary).items()
    assert policy["spec"]["ingress"] == [
        {"from": list(POLICY.ingress_from), "ports": [{"protocol": "TCP", "port": 8000}]}
    ]
    dns, registry = policy["spec"]["egress"]
    assert dns["to"] == list(POLICY.dns) and {port["port"] for port in dns["ports"]} == {53}
    assert registry == POLICY.registry_egress[0]


def test_streaming_consumers_may_reach_the_brokers_and_be_scraped_on_their_metrics_port():
    streaming = {"source": "kafka://k:9092/in", "sink": "kafka://k:9092/out"}

    policy, consumers = render(_deployment(mode="streaming", streaming=streaming), MODEL, WITH_POLICY)

    assert _kinds([policy, consumers]) == ["NetworkPolicy/iris-stream", "Deployment/iris-stream"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= _pod_labels(consumers).items()
    assert policy["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 9090}]
    assert policy["spec"]["egress"][1:] == [*POLICY.registry_egress, *POLICY.broker_egress]


def test_batch_gets_no_network_policy():
    (cronjob,) = render(
        _deployment(mode="batch", batch={"schedule": "@daily", "input": "/in", "output": "/out"}), MODEL, WITH_POLICY
    )
    assert cronjob["kind"] == "CronJob"


def test_an_empty_list_of_allowed_sources_is_refused_as_it_would_allow_every_source():
    with pytest.raises(ValueError, match="ingressFrom is empty"):
        NetworkPolicySettings(ingress_from=())


@pytest.mark.parametrize("mode", ["online", "streaming"])
def test_every_probe_waits_as_long_as_its_period(mode: str):
    streaming = {"source": "kafka://k:9092/in", "sink": "kafka://k:9092/out"}
    (workload,) = [
        child
        for child in render(_deployment(mode=mode, streaming=streaming), MODEL, SETTINGS)
        if child["kind"] == "Deployment"
    ]
    container = _container(workload)

    probes = [container[kind] for kind in ("startupProbe", "readinessProbe", "livenessProbe")]

    assert [probe["timeoutSeconds"] for probe in probes] == [probe["periodSeconds"] for probe in probes]
    assert all(probe["timeoutSeconds"] > 1 for probe in probes)


def test_containers_get_the_default_resources_unless_the_spec_sets_its_own():
    batch = {"input": "/in", "output": "/out"}

    assert _container(render(_deployment(), MODEL, SETTINGS)[0])["resources"] == DEFAULT_RESOURCES
    assert (
        _container(render(_deployment(mode="batch", batch=batch), MODEL, SETTINGS)[0])["resources"] == DEFAULT_RESOURCES
    )
    own = {"requests": {"memory": "8Gi"}}
    assert _container(render(_deployment(resources=own), MODEL, SETTINGS)[0])["resources"] == own
    assert "resources" not in _container(render(_deployment(resources={}), MODEL, SETTINGS)[0])
    none = dataclasses.replace(SETTINGS, resources={})
    assert "resources" not in _container(render(_deployment(), MODEL, none)[0])
