"""Rollouts: a moved alias reaches the workload by itself (by polling, or at once by the
registry's webhook), a version that never becomes Ready is rolled back, a canary takes
its share of the Service's endpoints until it is promoted or aborted, a pinned
ModelDeployment stays put, and a fleet polling one model shares its registry calls."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import Registry
from tests.operator.process import WEBHOOK_SECRET, Operator
from tests.operator.resources import apply, condition, events, manifest, ready, status_of
from tests.testbed.cluster import UNREADY_MODEL_URI, ControlPlane
from tests.waiting import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.registry]
POLL_SECONDS = 5
UNREADY_MODEL = UNREADY_MODEL_URI.removeprefix("models:/").split("/")[0]


def _register(registry: Registry, name: str, versions: int) -> str:
    """`name` with `versions` versions (copies of iris version 1; nothing runs them on
    simulated nodes) and @champion on version 1."""
    import mlflow

    client = mlflow.MlflowClient(registry.tracking_uri)
    iris = client.get_model_version(registry.models.iris, "1")
    client.create_registered_model(name)
    for _ in range(versions):
        client.create_model_version(name, iris.source, iris.run_id, model_id=iris.source.removeprefix("models:/"))
    client.set_registered_model_alias(name, "champion", "1")
    return name


def _move_alias(registry: Registry, model: str, version: str) -> None:
    import mlflow

    mlflow.MlflowClient(registry.tracking_uri).set_registered_model_alias(model, "champion", version)


@pytest.fixture
def promoted_model(registry: Registry, namespace: str) -> str:
    """A model of its own, so moving its alias disturbs no other test."""
    return _register(registry, f"promoted-{namespace}", versions=2)


@pytest.fixture(scope="module")
def unready_model(registry: Registry) -> str:
    """The model whose version 2 the test bed never makes Ready."""
    return _register(registry, UNREADY_MODEL, versions=2)


def _serving_version(cluster: ControlPlane, namespace: str, name: str) -> str:
    container = cluster.get("deployment", name, namespace)["spec"]["template"]["spec"]["containers"][0]
    model = next(var["value"] for var in container["env"] if var["name"] == "MODELPLANE_MODEL")
    return model.rsplit("/", 1)[-1]


def _reasons(cluster: ControlPlane, namespace: str, name: str) -> list[str]:
    return sorted(reason for reason, _ in events(cluster, namespace, name))


def _parse_time(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _event_time(cluster: ControlPlane, namespace: str, name: str, reason: str) -> datetime:
    """When the operator posted its one Event of `reason` about the ModelDeployment `name`."""
    listing = cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}", "-o", "json"
    ).stdout
    (event,) = [event for event in json.loads(listing)["items"] if event["reason"] == reason]
    return _parse_time(event["firstTimestamp"])


def _polls_seen(registry: Registry, model: str, count: int, what: str) -> None:
    """Waits until the registry has been asked `count` more times where `model`'s alias
    points: the operator polled meanwhile, so what polling would have changed, it has."""
    start = registry.log_path.stat().st_size

    def asked() -> int:
        with registry.log_path.open("rb") as log:
            log.seek(start)
            return log.read().decode(errors="replace").count(f"/registered-models/alias?name={model}&alias=champion ")

    eventually(lambda: asked() >= count, timeout=(count + 1) * POLL_SECONDS * 2, what=f"{count} {what}")


def _following(name: str, model: str, **rollout) -> dict:
    return manifest(name, model={"name": model, "alias": "champion"}, rollout=rollout)


def test_a_moved_alias_rolls_the_workload_to_the_new_version(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
    registry: Registry,
    promoted_model: str,
):
    apply(cluster, namespace, _following("follow", promoted_model, pollIntervalSeconds=POLL_SECONDS))
    assert eventually(lambda: ready(cluster, namespace, "follow"), what="Ready")["modelVersion"] == "1"

    _move_alias(registry, promoted_model, "2")

    eventually(
        lambda: _serving_version(cluster, namespace, "follow") == "2", timeout=60, what="the Deployment at version 2"
    )
    status = eventually(
        lambda: (s := status_of(cluster, namespace, "follow")).get("modelVersion") == "2" and s,
        timeout=60,
        what="status at version 2",
    )
    assert "targetVersion" not in status
    assert condition(status, "RolledOut")["reason"] == "RolloutComplete"
    messages = dict(events(cluster, namespace, "follow"))
    assert messages["AliasMoved"] == f"alias 'champion' of {promoted_model} moved from version 1 to 2"
    assert messages["RolloutStarted"] == "rolling out version 2 to replace version 1"
    assert messages["RolledOut"] == "version 2 replaced version 1"


def _deliver(url: str, body: bytes, signature: str | None) -> int:
    """POSTs a webhook delivery as MLflow sends it; returns the HTTP status."""
    delivery, stamp = "test-delivery", str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-MLflow-Delivery-Id": delivery, "X-MLflow-Timestamp": stamp}
    if signature is not None:
        headers["X-MLflow-Signature"] = (
            signature
            or "v1,"
            + base64.b64encode(
                hmac.new(WEBHOOK_SECRET.encode(), f"{delivery}.{stamp}.".encode() + body, hashlib.sha256).digest()
            ).decode()
        )
    try:
        return urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=10).status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_registry_webhook_rolls_out_at_once_and_a_bad_signature_changes_nothing(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
    registry: Registry,
    promoted_model: str,
):
    from mlflow import MlflowClient

    apply(cluster, namespace, _following("hooked", promoted_model, pollIntervalSeconds=3600))
    # Beside it, one that polls the same alias: its move shows time enough for a wake-up to act.
    apply(cluster, namespace, _following("polling", promoted_model, pollIntervalSeconds=POLL_SECONDS))
    eventually(lambda: ready(cluster, namespace, "hooked") and ready(cluster, namespace, "polling"), what="Ready")
    moved = json.dumps(
        {
            "entity": "model_version_alias",
            "action": "created",
            "timestamp": "2026-01-01T00:00:00Z",
            "data": {"name": promoted_model, "alias": "champion", "version": "2"},
        }
    ).encode()
    _move_alias(registry, promoted_model, "2")  # unsigned deliveries must not make the operator look

    assert _deliver(operator.webhook_url, moved, signature=None) == 401
    assert _deliver(operator.webhook_url, moved, signature="v1,bm90IHRoZSBzaWduYXR1cmU=") == 401
    eventually(
        lambda: status_of(cluster, namespace, "polling").get("modelVersion") == "2",
        timeout=60,
        what="the polling one at version 2",
    )
    assert _serving_version(cluster, namespace, "hooked") == "1"

    client = MlflowClient(registry.tracking_uri)
    hook = client.create_webhook(
        f"operator-{namespace}", operator.webhook_url, secret=WEBHOOK_SECRET, events=["model_version_alias.created"]
    )
    try:
        _move_alias(registry, promoted_model, "1")  # MLflow's own signed delivery, for each move
        _move_alias(registry, promoted_model, "2")
        eventually(
            lambda: status_of(cluster, namespace, "hooked").get("modelVersion") == "2",
            timeout=30,
            what="version 2 rolled out well before the hour's poll",
        )
    finally:
        client.delete_webhook(hook.webhook_id)


def _roll_out_the_unready_version(
    cluster: ControlPlane, namespace: str, registry: Registry, model: str, name: str, deadline: int
) -> None:
    """`name` Ready at version 1 of `model`, then its alias moved to version 2, which never becomes Ready."""
    _move_alias(registry, model, "1")
    apply(
        cluster, namespace, _following(name, model, pollIntervalSeconds=POLL_SECONDS, progressDeadlineSeconds=deadline)
    )
    eventually(lambda: ready(cluster, namespace, name), what="Ready at version 1")
    _move_alias(registry, model, "2")


def test_a_version_that_never_becomes_ready_is_rolled_back_once(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
    registry: Registry,
    unready_model: str,
):
    _roll_out_the_unready_version(cluster, namespace, registry, unready_model, "careful", deadline=10)
    eventually(
        lambda: status_of(cluster, namespace, "careful").get("targetVersion") == "2",
        timeout=30,
        what="the rollout of version 2 started",
    )
    status = eventually(
        lambda: (s := status_of(cluster, namespace, "careful")).get("failedVersion") == "2" and s,
        timeout=90,
        what="version 2 rolled back",
    )
    assert status["modelVersion"] == "1" and "targetVersion" not in status
    assert condition(status, "RolledOut")["reason"] == "RolledBack"
    eventually(lambda: _serving_version(cluster, namespace, "careful") == "1", what="the Deployment back at 1")
    eventually(lambda: ready(cluster, namespace, "careful"), what="Ready again")

    _polls_seen(registry, unready_model, 3, "polls that see the alias still on the failed version")
    assert _serving_version(cluster, namespace, "careful") == "1"
    assert _reasons(cluster, namespace, "careful").count("RolloutStarted") == 1
    assert _reasons(cluster, namespace, "careful").count("RolledBack") == 1


def test_a_rollout_cut_short_by_an_operator_crash_resumes(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
    registry: Registry,
    unready_model: str,
):
    _roll_out_the_unready_version(cluster, namespace, registry, unready_model, "resumed", deadline=20)
    eventually(
        lambda: "RolloutStarted" in _reasons(cluster, namespace, "resumed"),
        timeout=30,
        what="the rollout of version 2 started",
    )

    operator.kill()
    operator.start()

    eventually(
        lambda: status_of(cluster, namespace, "resumed").get("failedVersion") == "2",
        timeout=90,
        what="the resumed rollout rolled back",
    )
    eventually(lambda: _serving_version(cluster, namespace, "resumed") == "1", what="the Deployment back at 1")
    _polls_seen(registry, unready_model, 2, "polls that see the alias still on the failed version")
    reasons = _reasons(cluster, namespace, "resumed")
    assert (reasons.count("RolloutStarted"), reasons.count("RolledBack")) == (1, 1), events(
        cluster, namespace, "resumed"
    )


def test_a_stopped_operator_blocks_no_deletion_of_a_resource_following_its_alias_mid_rollout(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
    registry: Registry,
    unready_model: str,
):
    _roll_out_the_unready_version(cluster, namespace, registry, unready_model, "orphaned", deadline=600)
    eventually(
        lambda: status_of(cluster, namespace, "orphaned").get("targetVersion") == "2",
        timeout=30,
        what="the rollout of version 2 started",
    )
    assert not cluster.get("mdep", "orphaned", namespace)["metadata"].get("finalizers")

    operator.stop()
    try:
        cluster.kubectl("delete", "mdep", "orphaned", "-n", namespace, "--timeout=30s")
        assert not _exists(cluster, namespace, "mdep", "orphaned")
    finally:
        operator.start()


def _endpoint_versions(cluster: ControlPlane, namespace: str, service: str) -> list[str]:
    """The model version of each ready pod behind the Service, sorted."""
    listing = json.loads(
        cluster.kubectl(
            "get", "endpointslices", "-n", namespace, "-l", f"kubernetes.io/service-name={service}", "-o", "json"
        ).stdout
    )
    pods = [
        endpoint["targetRef"]["name"]
        for item in listing["items"]
        for endpoint in item.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready")
    ]
    return sorted(
        cluster.get("pod", pod, namespace)["metadata"]["labels"]["modelplane.io/model-version"] for pod in pods
    )


def _canary(name: str, model: str, duration: int) -> dict:
    canary = _following(
        name,
        model,
        pollIntervalSeconds=POLL_SECONDS,
        strategy="Canary",
        canary={"weight": 20, "durationSeconds": duration},
    )
    canary["spec"]["online"] = {"replicas": 5}
    return canary


def _exists(cluster: ControlPlane, namespace: str, kind: str, name: str) -> bool:
    return cluster.kubectl("get", kind, name, "-n", namespace, check=False).returncode == 0


def test_a_canary_takes_its_share_of_the_service_until_promoted_by_hand_and_a_later_one_is_aborted(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
    registry: Registry,
):
    model = _register(registry, f"canaried-{namespace}", versions=3)
    apply(cluster, namespace, _canary("canaried", model, duration=3600))
    eventually(lambda: ready(cluster, namespace, "canaried"), what="Ready at version 1")

    _move_alias(registry, model, "2")
    status = eventually(
        lambda: (s := status_of(cluster, namespace, "canaried")).get("canaryReadyTime") and s,
        timeout=60,
        what="the canary of version 2 Ready",
    )
    assert (status["modelVersion"], status["targetVersion"]) == ("1", "2")
    assert condition(status, "RolledOut")["reason"] == "CanaryReady"
    assert _serving_version(cluster, namespace, "canaried-canary") == "2"
    eventually(
        lambda: _endpoint_versions(cluster, namespace, "canaried") == ["1", "1", "1", "1", "2"],
        what="4 stable and 1 canary pods behind the Service",
    )

    cluster.kubectl("annotate", "mdep", "canaried", "-n", namespace, "modelplane.io/promote-canary=2")
    eventually(
        lambda: status_of(cluster, namespace, "canaried").get("modelVersion") == "2",
        timeout=60,
        what="version 2 promoted and rolled out",
    )
    eventually(lambda: not _exists(cluster, namespace, "deployment", "canaried-canary"), what="the canary removed")
    eventually(
        lambda: _endpoint_versions(cluster, namespace, "canaried") == ["2"] * 5, what="every endpoint on version 2"
    )
    reasons = _reasons(cluster, namespace, "canaried")
    assert {"RolloutStarted", "CanaryReady", "CanaryPromoted", "RolledOut"} <= set(reasons)

    _move_alias(registry, model, "3")
    eventually(
        lambda: _exists(cluster, namespace, "deployment", "canaried-canary"), timeout=30, what="a canary of version 3"
    )
    cluster.kubectl("annotate", "mdep", "canaried", "-n", namespace, "modelplane.io/abort-rollout=3")
    status = eventually(
        lambda: (s := status_of(cluster, namespace, "canaried")).get("failedVersion") == "3" and s,
        timeout=30,
        what="the rollout of version 3 aborted",
    )
    assert status["modelVersion"] == "2" and "targetVersion" not in status
    assert condition(status, "RolledOut")["reason"] == "RolloutAborted"
    eventually(lambda: not _exists(cluster, namespace, "deployment", "canaried-canary"), what="the canary removed")
    eventually(lambda: _endpoint_versions(cluster, namespace, "canaried") == ["2"] * 5, what="back to version 2")


def test_a_canary_that_stays_ready_for_its_duration_is_promoted(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
    registry: Registry,
    promoted_model: str,
):
    apply(cluster, namespace, _canary("patient", promoted_model, duration=10))
    eventually(lambda: ready(cluster, namespace, "patient"), what="Ready at version 1")

    _move_alias(registry, promoted_model, "2")
    ready_at = eventually(
        lambda: status_of(cluster, namespace, "patient").get("canaryReadyTime"), timeout=60, what="the canary Ready"
    )
    eventually(
        lambda: status_of(cluster, namespace, "patient").get("modelVersion") == "2",
        timeout=60,
        what="the canary promoted and rolled out",
    )
    promoted = next(message for reason, message in events(cluster, namespace, "patient") if reason == "CanaryPromoted")
    assert "Ready for 10 s" in promoted, promoted
    # The duration counted from the canary's readiness, as recorded in status.
    promoted_at = _event_time(cluster, namespace, "patient", "CanaryPromoted")
    assert promoted_at - _parse_time(ready_at) >= timedelta(seconds=10), (
        f"Ready at {ready_at}, promoted at {promoted_at}"
    )
    assert not _exists(cluster, namespace, "deployment", "patient-canary")


def test_kubectl_alone_rolls_back_to_a_fixed_version(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
    registry: Registry,
    promoted_model: str,
):
    _move_alias(registry, promoted_model, "2")
    apply(cluster, namespace, _following("manual", promoted_model, pollIntervalSeconds=POLL_SECONDS))
    assert eventually(lambda: ready(cluster, namespace, "manual"), what="Ready")["modelVersion"] == "2"

    # As the README shows it.
    cluster.kubectl(
        "patch",
        "mdep",
        "manual",
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"spec":{"model":{"alias":null,"version":"1"}}}',
    )

    eventually(
        lambda: status_of(cluster, namespace, "manual").get("modelVersion") == "1", timeout=60, what="back at version 1"
    )
    assert _serving_version(cluster, namespace, "manual") == "1"


def test_a_pinned_deployment_stays_on_its_version(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
    registry: Registry,
    promoted_model: str,
):
    pinned = _following("pinned", promoted_model, pollIntervalSeconds=POLL_SECONDS, track=False)
    apply(cluster, namespace, {**pinned, "spec": {**pinned["spec"], "online": {"replicas": 1}}})
    # Beside it, one that follows the same alias: the operator's polls of it show the move seen.
    apply(cluster, namespace, _following("tracking", promoted_model, pollIntervalSeconds=POLL_SECONDS))
    eventually(lambda: ready(cluster, namespace, "pinned") and ready(cluster, namespace, "tracking"), what="Ready")

    _move_alias(registry, promoted_model, "2")
    # An edit makes a full pass, which must not resolve the alias again either.
    apply(cluster, namespace, {**pinned, "spec": {**pinned["spec"], "online": {"replicas": 2}}})
    eventually(lambda: ready(cluster, namespace, "pinned", generation=2), what="the edit's pass recorded in status")
    eventually(
        lambda: status_of(cluster, namespace, "tracking").get("modelVersion") == "2",
        timeout=60,
        what="the follower beside it at version 2",
    )
    _polls_seen(registry, promoted_model, 3, "polls of the alias after it moved")

    status = status_of(cluster, namespace, "pinned")
    assert status["modelVersion"] == "1" and "targetVersion" not in status, status
    assert _serving_version(cluster, namespace, "pinned") == "1"
    assert cluster.get("deployment", "pinned", namespace)["spec"]["replicas"] == 2


def test_a_fleet_following_ten_models_asks_the_registry_about_once_per_model_per_interval(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
    registry: Registry,
):
    models = [_register(registry, f"fleet-{index}-{namespace}", versions=1) for index in range(10)]
    fleet = [
        _following(f"member-{index}", models[index % 10], pollIntervalSeconds=POLL_SECONDS) for index in range(200)
    ]
    for member in fleet:
        member["spec"]["online"] = {"replicas": 0}
    apply(cluster, namespace, {"apiVersion": "v1", "kind": "List", "items": fleet})
    eventually(
        lambda: all(ready(cluster, namespace, member["metadata"]["name"]) for member in fleet),
        timeout=300,
        what="all 200 Ready",
    )

    offset = registry.log_path.stat().st_size
    window = 6 * POLL_SECONDS
    time.sleep(window)
    with registry.log_path.open("rb") as log:
        log.seek(offset)
        asked = [
            line
            for line in log.read().decode(errors="replace").splitlines()
            if "registered-models/alias?name=fleet-" in line and namespace in line
        ]
    # Jittered intervals of 0.8 to 1.2 x POLL_SECONDS: at most 1.25 calls per model per interval.
    intervals = window / POLL_SECONDS
    assert 10 <= len(asked) <= 10 * (intervals * 1.25 + 1), f"{len(asked)} registry calls in {window} s"


def _template_version(workload: dict) -> tuple[str, str]:
    """(the version label, the model URI) of a CronJob's or a Job's pods."""
    spec = workload["spec"].get("jobTemplate", {}).get("spec") or workload["spec"]
    template = spec["template"]
    env = {var["name"]: var.get("value") for var in template["spec"]["containers"][0]["env"]}
    return template["metadata"]["labels"]["modelplane.io/model-version"], env["MODELPLANE_MODEL"]


def _scheduled_jobs(cluster: ControlPlane, namespace: str, cronjob: str) -> dict[str, dict]:
    """The Jobs the CronJob `cronjob` started, by name."""
    listing = json.loads(cluster.kubectl("get", "jobs", "-n", namespace, "-o", "json").stdout)["items"]
    return {
        job["metadata"]["name"]: job
        for job in listing
        if any(
            ref["kind"] == "CronJob" and ref["name"] == cronjob for ref in job["metadata"].get("ownerReferences", [])
        )
    }


def test_a_schedule_runs_the_version_the_alias_moved_to_from_its_next_run(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
    registry: Registry,
    promoted_model: str,
):
    scheduled = _following("nightly", promoted_model, pollIntervalSeconds=POLL_SECONDS)
    scheduled["spec"] |= {
        "mode": "batch",
        "batch": {"input": "/data/in", "output": "/data/out", "schedule": "* * * * *"},
    }
    apply(cluster, namespace, scheduled)
    assert eventually(lambda: ready(cluster, namespace, "nightly"), what="Ready")["modelVersion"] == "1"
    assert _template_version(cluster.get("cronjob", "nightly", namespace)) == ("1", f"models:/{promoted_model}/1")

    _move_alias(registry, promoted_model, "2")

    eventually(
        lambda: _template_version(cluster.get("cronjob", "nightly", namespace))[0] == "2",
        timeout=60,
        what="the CronJob's template at version 2",
    )
    assert _template_version(cluster.get("cronjob", "nightly", namespace)) == ("2", f"models:/{promoted_model}/2")
    before = set(_scheduled_jobs(cluster, namespace, "nightly"))
    status = eventually(
        lambda: (s := status_of(cluster, namespace, "nightly")).get("modelVersion") == "2" and s,
        timeout=60,
        what="status at version 2",
    )
    assert "targetVersion" not in status
    assert condition(status, "RolledOut")["reason"] == "RolloutComplete"

    # The CronJob controller starts the next run within the minute.
    jobs = eventually(
        lambda: (found := _scheduled_jobs(cluster, namespace, "nightly")).keys() - before and found,
        timeout=90,
        what="a run started after the template changed",
    )
    for name in jobs.keys() - before:
        assert _template_version(jobs[name]) == ("2", f"models:/{promoted_model}/2")
