"""The operator against the real control plane, kwok nodes and MLflow registry."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from tests.conftest import Registry
from tests.operator.process import SERVING_IMAGE, Operator
from tests.operator.resources import apply, children, condition, events, manifest, ready, status_of
from tests.testbed.cluster import ControlPlane
from tests.testbed.process import free_port
from tests.testbed.registry import EXAMPLES
from tests.waiting import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.registry]


def test_online_deployment_becomes_ready_with_the_serving_contract(
    operator: Operator,
    registry: Registry,
    cluster: ControlPlane,
    restricted_namespace: str,
):
    namespace = restricted_namespace
    apply(cluster, namespace, manifest("iris", online={"replicas": 2}))

    status = eventually(lambda: ready(cluster, namespace, "iris"), what="Ready=True")

    assert status["modelVersion"] == registry.models.champion_version
    assert status["endpoint"] == f"http://iris.{namespace}.svc:8080"
    assert condition(status, "ModelResolved")["status"] == "True"
    assert children(cluster, namespace) == ["Deployment/iris", "Service/iris"]
    deployment = cluster.get("deployment", "iris", namespace)
    assert deployment["status"]["readyReplicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == SERVING_IMAGE and container["args"] == ["serve"]
    env = {var["name"]: var.get("value") for var in container["env"]}
    assert env["MODELPLANE_MODEL"] == f"models:/iris/{registry.models.champion_version}"
    assert env["MLFLOW_TRACKING_URI"] == registry.tracking_uri
    assert {"startupProbe", "readinessProbe", "livenessProbe"} <= container.keys()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    columns = cluster.kubectl("get", "mdep", "iris", "-n", namespace, "--no-headers").stdout.split()
    assert columns[:6] == ["iris", "online", "iris", registry.models.champion_version, "True", status["endpoint"]]


def test_ready_waits_for_the_pods(operator: Operator, cluster: ControlPlane, namespace: str):
    # A node selector no node matches: the pods stay Pending, so Ready must stay False.
    apply(cluster, namespace, manifest("iris", nodeSelector={"modelplane.io/test": "nowhere"}))

    eventually(
        lambda: condition(status_of(cluster, namespace, "iris"), "Ready") and status_of(cluster, namespace, "iris"),
        what="a Ready condition",
    )
    # The scheduler's verdict, then status from a Deployment that has its (unplaced) pod.
    eventually(lambda: _unschedulable_pods(cluster, namespace), what="the scheduler finding no node for the pods")
    eventually(
        lambda: (
            "0/1 replicas available, 1 updated"
            in condition(status_of(cluster, namespace, "iris"), "Ready").get("message", "")
        ),
        what="status from the Deployment with its pods unscheduled",
    )
    status = status_of(cluster, namespace, "iris")

    assert condition(status, "Ready")["status"] == "False"
    assert condition(status, "Ready")["reason"] == "ReplicasNotReady"
    assert condition(status, "Progressing")["status"] == "True"

    cluster.kubectl(
        "patch",
        "mdep",
        "iris",
        "-n",
        namespace,
        "--type=json",
        "-p",
        '[{"op": "remove", "path": "/spec/nodeSelector"}]',
    )
    eventually(lambda: ready(cluster, namespace, "iris"), what="Ready=True once the pods can be placed")


def test_switching_mode_replaces_the_children(operator: Operator, cluster: ControlPlane, namespace: str):
    apply(cluster, namespace, manifest("iris"))
    eventually(lambda: ready(cluster, namespace, "iris", 1), what="online Ready")

    batch = {"input": "/data/in", "output": "/data/out"}
    apply(cluster, namespace, manifest("iris", mode="batch", batch=batch))
    status = eventually(lambda: ready(cluster, namespace, "iris", 2), what="the batch Job complete")
    (job,) = children(cluster, namespace)
    assert job.startswith("Job/iris-")
    assert status["lastSuccessfulTime"] and "endpoint" not in status

    streaming = {"source": "kafka://k:9092/in", "sink": "kafka://k:9092/out"}
    apply(cluster, namespace, manifest("iris", mode="streaming", batch=batch, streaming=streaming))
    eventually(lambda: ready(cluster, namespace, "iris", 3), what="streaming Ready")
    eventually(lambda: children(cluster, namespace) == ["Deployment/iris-stream"], what="only the consumers left")

    apply(cluster, namespace, manifest("iris", batch={**batch, "schedule": "*/5 * * * *"}, mode="batch"))
    eventually(lambda: children(cluster, namespace) == ["CronJob/iris"], what="only the CronJob left")
    status = eventually(lambda: ready(cluster, namespace, "iris", 4), what="the schedule Ready")
    assert condition(status, "Ready")["reason"] == "Scheduled"


def test_a_restarted_operator_writes_nothing_new(operator: Operator, cluster: ControlPlane, namespace: str):
    apply(cluster, namespace, manifest("iris"))
    eventually(lambda: ready(cluster, namespace, "iris"), what="Ready")
    before = {
        kind: cluster.get(kind, "iris", namespace)["metadata"]["resourceVersion"] for kind in ("deployment", "service")
    }
    status_before = status_of(cluster, namespace, "iris")

    operator.kill()
    log_before = operator.component.log_path.read_text()
    operator.start()
    resumed = f"[{namespace}/iris] generation 1 applied (recheck)"
    eventually(
        lambda: resumed in operator.component.log_path.read_text()[len(log_before) :],
        timeout=30,
        what="the restarted operator resuming the ModelDeployment",
    )
    time.sleep(1)  # and any child event that pass might cause

    after = {
        kind: cluster.get(kind, "iris", namespace)["metadata"]["resourceVersion"] for kind in ("deployment", "service")
    }
    assert after == before
    assert children(cluster, namespace) == ["Deployment/iris", "Service/iris"]
    assert status_of(cluster, namespace, "iris") == status_before


def test_deleting_collects_the_children(operator: Operator, cluster: ControlPlane, namespace: str):
    apply(cluster, namespace, manifest("iris", online={"autoscaling": {"maxReplicas": 3}}))
    eventually(lambda: ready(cluster, namespace, "iris"), what="Ready")
    assert children(cluster, namespace) == ["Deployment/iris", "HorizontalPodAutoscaler/iris", "Service/iris"]

    cluster.kubectl("delete", "mdep", "iris", "-n", namespace, "--timeout=30s")

    eventually(lambda: children(cluster, namespace) == [], what="the children garbage-collected")


def test_objects_of_the_childrens_names_that_it_does_not_own_survive_it(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
):
    cluster.kubectl("create", "deployment", "iris", "-n", namespace, "--image=example.invalid/theirs:1")
    cluster.kubectl("create", "service", "clusterip", "iris", "-n", namespace, "--tcp=80:8080")

    def as_they_made_it() -> dict:
        # What a take-over would change; the Deployment's status moves on by itself.
        objects = {kind: cluster.get(kind, "iris", namespace) for kind in ("deployment", "service")}
        return {
            kind: (
                found["spec"],
                found["metadata"].get("labels"),
                found["metadata"].get("annotations", {}).get("modelplane.io/spec-hash"),
                found["metadata"].get("ownerReferences"),
            )
            for kind, found in objects.items()
        }

    theirs = as_they_made_it()

    apply(cluster, namespace, manifest("iris"))

    conflict = eventually(
        lambda: (
            condition(status_of(cluster, namespace, "iris"), "Ready").get("reason") == "ChildConflict"
            and condition(status_of(cluster, namespace, "iris"), "Ready")
        ),
        what="Ready=False, ChildConflict",
    )
    assert conflict["status"] == "False" and "Deployment/iris" in conflict["message"]
    assert ("ChildConflict", conflict["message"]) in events(cluster, namespace, "iris")
    # A witness the garbage collector must collect with the ModelDeployment: once it is gone,
    # the collector has dealt with everything that named the ModelDeployment its owner.
    owner = cluster.get("modeldeployment", "iris", namespace)["metadata"]["uid"]
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "witness",
                    "ownerReferences": [
                        {
                            "apiVersion": "modelplane.io/v1alpha1",
                            "kind": "ModelDeployment",
                            "name": "iris",
                            "uid": owner,
                        }
                    ],
                },
            }
        ),
    )

    cluster.kubectl("delete", "mdep", "iris", "-n", namespace, "--timeout=30s")

    eventually(
        lambda: cluster.kubectl("get", "configmap", "witness", "-n", namespace, check=False).returncode != 0,
        what="the witness collected",
    )
    assert as_they_made_it() == theirs


def test_a_missing_model_is_reported_and_nothing_is_deployed(operator: Operator, cluster: ControlPlane, namespace: str):
    apply(cluster, namespace, manifest("ghost", model={"name": "no-such-model", "alias": "champion"}))

    resolved = eventually(
        lambda: condition(status_of(cluster, namespace, "ghost"), "ModelResolved"), what="ModelResolved"
    )

    assert resolved["status"] == "False" and resolved["reason"] == "ModelNotFound"
    assert "no-such-model" in resolved["message"]
    assert children(cluster, namespace) == []


def test_an_unreachable_registry_is_reported_and_running_workloads_stay(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
):
    apply(cluster, namespace, manifest("iris"))
    eventually(lambda: ready(cluster, namespace, "iris", 1), what="Ready")
    closed = f"http://127.0.0.1:{free_port()}"

    apply(
        cluster, namespace, manifest("iris", model={"name": "iris", "alias": "champion", "registry": {"uri": closed}})
    )

    resolved = eventually(
        lambda: (
            condition(status_of(cluster, namespace, "iris"), "ModelResolved").get("status") == "False"
            and condition(status_of(cluster, namespace, "iris"), "ModelResolved")
        ),
        what="ModelResolved=False",
    )
    assert resolved["reason"] == "RegistryUnreachable" and closed in resolved["message"]
    assert children(cluster, namespace) == ["Deployment/iris", "Service/iris"]
    assert cluster.get("deployment", "iris", namespace)["status"]["availableReplicas"] == 1


def test_a_workload_deleted_from_outside_comes_back_at_the_pinned_version(
    operator: Operator,
    registry: Registry,
    cluster: ControlPlane,
    namespace: str,
):
    apply(cluster, namespace, manifest("iris"))
    eventually(lambda: ready(cluster, namespace, "iris"), what="Ready")
    first = cluster.get("deployment", "iris", namespace)["metadata"]["uid"]

    first_service = cluster.get("service", "iris", namespace)["metadata"]["uid"]

    cluster.kubectl("delete", "deployment,service", "iris", "-n", namespace)

    def recreated(kind: str, uid: str):
        found = cluster.kubectl("get", kind, "iris", "-n", namespace, "-o", "json", check=False)
        return found.returncode == 0 and json.loads(found.stdout)["metadata"]["uid"] != uid and json.loads(found.stdout)

    deployment = eventually(lambda: recreated("deployment", first), what="the Deployment re-created")
    eventually(lambda: recreated("service", first_service), what="the Service re-created")
    env = {var["name"]: var["value"] for var in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELPLANE_MODEL"] == f"models:/iris/{registry.models.champion_version}"
    eventually(lambda: ready(cluster, namespace, "iris"), what="Ready again")


def test_an_event_caught_up_with_late_does_not_undo_what_a_newer_workload_said(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
    operator_context,
):
    from modelplane.operator import reconcile

    apply(cluster, namespace, manifest("iris"))
    eventually(lambda: ready(cluster, namespace, "iris", 1), what="Ready")
    # The Deployment as an event from before its pod was ready carried it, handled only now.
    stale = cluster.get("deployment", "iris", namespace)
    stale["status"] = {"observedGeneration": stale["metadata"]["generation"], "replicas": 1, "updatedReplicas": 1}

    # The operator's own code, in this process, as the test bed's admin.
    reconcile.workload_changed(operator_context, namespace, "iris", stale)
    assert ready(cluster, namespace, "iris", 1), status_of(cluster, namespace, "iris")


SHARD_SAID = "cannot read /data/in/part-3.csv: line 7 has 5 fields, expected 4"


def _fail_pod(cluster: ControlPlane, namespace: str, pod: dict) -> None:
    """Reports the pod's model container exited with an error and a termination message,
    as its kubelet would (kwok's nodes never fail a pod)."""
    container = pod["spec"]["containers"][0]
    terminated = {"exitCode": 1, "reason": "Error", "message": SHARD_SAID}
    status = {
        "phase": "Failed",
        "containerStatuses": [
            {
                "name": container["name"],
                "image": container["image"],
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {"terminated": terminated},
            }
        ],
    }
    cluster.kubectl(
        "patch",
        "pod",
        pod["metadata"]["name"],
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def _job_pods(cluster: ControlPlane, namespace: str, job: str) -> list[dict]:
    listing = cluster.kubectl("get", "pods", "-n", namespace, "-l", f"batch.kubernetes.io/job-name={job}", "-o", "json")
    return json.loads(listing.stdout)["items"]


def _run_a_batch_whose_shards_fail(cluster: ControlPlane, namespace: str) -> str:
    """A batch ModelDeployment `iris` of four shards, held Pending (no node matches) until
    each is reported failed; returns its Job's name once the Job controller failed it."""
    batch = {"input": "/data/in", "output": "/data/out", "parallelism": 4}
    apply(
        cluster, namespace, manifest("iris", mode="batch", batch=batch, nodeSelector={"modelplane.io/test": "nowhere"})
    )
    eventually(
        lambda: condition(status_of(cluster, namespace, "iris"), "Ready").get("reason") == "JobRunning",
        what="Ready=False, JobRunning",
    )
    (job,) = (child.removeprefix("Job/") for child in children(cluster, namespace))
    pods = eventually(lambda: len(found := _job_pods(cluster, namespace, job)) == 4 and found, what="four shards")

    for pod in pods:
        _fail_pod(cluster, namespace, pod)

    eventually(
        lambda: any(
            c["type"] == "Failed" and c["status"] == "True"
            for c in cluster.get("job", job, namespace)["status"].get("conditions", [])
        ),
        what="the Job failed",
    )
    return job


def test_a_failed_batch_job_makes_ready_false_with_what_a_shard_said(
    operator: Operator, cluster: ControlPlane, namespace: str
):
    _run_a_batch_whose_shards_fail(cluster, namespace)

    status = eventually(
        lambda: (
            (s := status_of(cluster, namespace, "iris"))
            and condition(s, "Ready").get("reason") == "JobFailed"
            and SHARD_SAID in condition(s, "Ready")["message"]
            and s
        ),
        what="Ready=False, JobFailed, with what a shard said",
    )
    failed = condition(status, "Ready")
    assert failed["status"] == "False"
    assert failed["message"].endswith(f"; a shard said: {SHARD_SAID}"), failed["message"]
    assert condition(status, "Progressing")["reason"] == "JobFailed"
    assert condition(status, "Progressing")["status"] == "False"


def _warnings(cluster: ControlPlane, namespace: str, name: str) -> list[str]:
    """The messages of the Warning Events about the ModelDeployment `name`."""
    selector = f"involvedObject.kind=ModelDeployment,involvedObject.name={name},type=Warning"
    listing = cluster.kubectl("get", "events", "-n", namespace, "--field-selector", selector, "-o", "json").stdout
    return [event["message"] for event in json.loads(listing)["items"]]


def test_a_failed_batch_job_is_announced_with_a_warning(operator: Operator, cluster: ControlPlane, namespace: str):
    _run_a_batch_whose_shards_fail(cluster, namespace)
    eventually(
        lambda: condition(status_of(cluster, namespace, "iris"), "Ready").get("reason") == "JobFailed",
        what="Ready=False, JobFailed",
    )

    # Posted with the status change that says JobFailed, so it is listed within seconds.
    eventually(
        lambda: any(message.startswith("JobFailed: ") for message in _warnings(cluster, namespace, "iris")),
        what="a Warning Event saying the Job failed",
    )


def test_a_schedule_reports_when_it_last_ran_and_last_succeeded(
    operator: Operator, cluster: ControlPlane, namespace: str
):
    batch = {"input": "/data/in", "output": "/data/out", "schedule": "* * * * *"}
    apply(cluster, namespace, manifest("iris", mode="batch", batch=batch))
    status = eventually(lambda: ready(cluster, namespace, "iris"), what="Ready")
    assert condition(status, "Ready")["reason"] == "Scheduled"

    def times_match() -> dict | None:
        """Status once it holds the times of a completed run, the CronJob's own."""
        found = status_of(cluster, namespace, "iris")
        cron = cluster.get("cronjob", "iris", namespace).get("status") or {}
        times = ("lastScheduleTime", "lastSuccessfulTime")
        ran = cron.get("lastSuccessfulTime") and all(found.get(key) == cron.get(key) for key in times)
        return found if ran else None

    # The CronJob controller starts a run within the minute; kwok's pods complete it.
    status = eventually(times_match, timeout=150, what="a completed run's times in status")
    assert condition(status, "Ready")["reason"] == "Scheduled"


@pytest.mark.parametrize(
    ("example", "children_of_it", "reason"),
    [
        ("digit-scans-online.yaml", ["Deployment/digit-scans", "Service/digit-scans"], "MinimumReplicasAvailable"),
        ("digit-scans-batch.yaml", ["CronJob/digit-scans-batch"], "Scheduled"),
        ("digit-scans-streaming.yaml", ["Deployment/digit-scans-events-stream"], "MinimumReplicasAvailable"),
    ],
)
def test_the_image_examples_reconcile_from_the_registry(
    operator: Operator,
    registry: Registry,
    cluster: ControlPlane,
    restricted_namespace: str,
    example: str,
    children_of_it: list[str],
    reason: str,
):
    """The manifests of examples/ as a user applies them, with the model
    examples/digit_scans.py registered: resolved from the registry, pinned, Ready."""
    from mlflow import MlflowClient

    namespace = restricted_namespace
    document = yaml.safe_load((EXAMPLES / example).read_text())
    # The test bed registers the example's model under its own name.
    document["spec"]["model"]["name"] = registry.models.scans
    name = document["metadata"]["name"]
    champion = MlflowClient(registry.tracking_uri).get_model_version_by_alias(registry.models.scans, "champion")

    apply(cluster, namespace, document)
    status = eventually(lambda: ready(cluster, namespace, name), what="Ready=True")

    assert status["modelVersion"] == champion.version
    assert condition(status, "ModelResolved")["status"] == "True"
    assert condition(status, "Ready")["reason"] == reason
    assert children(cluster, namespace) == children_of_it
    kind, child = children_of_it[0].split("/")
    workload = cluster.get(kind.lower(), child, namespace)
    if kind == "CronJob":
        workload = workload["spec"]["jobTemplate"]
    [container] = workload["spec"]["template"]["spec"]["containers"]
    env = {var["name"]: var.get("value") for var in container["env"]}
    assert env["MODELPLANE_MODEL"] == f"models:/{registry.models.scans}/{champion.version}"
    # The example's model needs no pickle: nothing in the manifest or the render allows it.
    assert env.get("MODELPLANE_ALLOW_PICKLE", "false") == "false"


def _unschedulable_pods(cluster: ControlPlane, namespace: str) -> bool:
    pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
    return bool(pods) and all(
        any(
            c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable"
            for c in (p.get("status") or {}).get("conditions", [])
        )
        for p in pods
    )
