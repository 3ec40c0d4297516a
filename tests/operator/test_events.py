"""Events on a ModelDeployment, as `kubectl describe` shows them: what a pass applied and
pruned and Ready becoming True, from the operator; and the poster itself, which marks
warnings, cuts messages to what the API server takes, and goes on posting after a post
that failed."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Registry
from tests.operator.process import Operator
from tests.operator.resources import apply, manifest, ready
from tests.testbed.cluster import ControlPlane
from tests.waiting import eventually

pytestmark = pytest.mark.cluster


def _events(cluster: ControlPlane, namespace: str, name: str) -> list[dict]:
    """Every Event about the ModelDeployment `name`, oldest first."""
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
    return sorted(json.loads(listing)["items"], key=lambda event: event["metadata"]["creationTimestamp"])


def _with_reason(cluster: ControlPlane, namespace: str, name: str, reason: str) -> list[dict]:
    return [event for event in _events(cluster, namespace, name) if event["reason"] == reason]


@pytest.mark.registry
def test_a_pass_announces_what_it_applied_and_pruned_and_ready_becoming_true(
    operator: Operator, registry: Registry, cluster: ControlPlane, namespace: str
):
    apply(cluster, namespace, manifest("iris"))
    eventually(lambda: ready(cluster, namespace, "iris", 1), what="Ready")
    uid = cluster.get("mdep", "iris", namespace)["metadata"]["uid"]

    (applied,) = eventually(lambda: _with_reason(cluster, namespace, "iris", "Applied"), what="an Applied Event")
    assert applied["type"] == "Normal"
    assert applied["message"] == f"applied 2 of 2 children for version {registry.models.champion_version}"
    assert applied["involvedObject"]["uid"] == uid
    assert applied["source"]["component"] == applied["reportingComponent"] == "modelplane-operator"
    (became_ready,) = eventually(lambda: _with_reason(cluster, namespace, "iris", "ReadyTrue"), what="ReadyTrue")
    assert became_ready["type"] == "Normal"
    assert became_ready["message"].startswith("MinimumReplicasAvailable: 1/1 replicas available")

    apply(cluster, namespace, manifest("iris", mode="batch", batch={"input": "/data/in", "output": "/data/out"}))

    (pruned,) = eventually(lambda: _with_reason(cluster, namespace, "iris", "Pruned"), what="a Pruned Event")
    prefix = "removed what is no longer needed: "
    assert pruned["type"] == "Normal" and pruned["message"].startswith(prefix)
    assert sorted(pruned["message"].removeprefix(prefix).split(", ")) == ["Deployment/iris", "Service/iris"]
    applied_again = eventually(
        lambda: (found := _with_reason(cluster, namespace, "iris", "Applied")) and len(found) == 2 and found,
        what="a second Applied Event",
    )
    assert applied_again[1]["message"] == f"applied 1 of 1 children for version {registry.models.champion_version}"


def test_the_poster_marks_warnings_cuts_long_messages_and_outlives_a_failed_post(
    cluster: ControlPlane, namespace: str, operator_client
):
    from modelplane.operator import events

    poster = events.EventPoster(operator_client)
    poster.start()
    # About a ModelDeployment no operator acts on: only these Events name it.
    name, uid = "never-applied", "8d7c4bd6-3c5e-4f0e-9d59-0c3d3d0b4a11"
    # A namespace that does not exist: the API server refuses this one.
    poster.poster(f"{namespace}-gone", name, uid)("Lost", "never posted", False)
    poster.poster(namespace, name, uid)("Refused", "x" * 5000, True)
    poster.poster(namespace, name, uid)("Noted", "a note", False)
    poster.stop()  # after posting what was queued

    posted = eventually(
        lambda: (found := _events(cluster, namespace, name)) and len(found) == 2 and found, what="two Events"
    )

    by_reason = {event["reason"]: event for event in posted}
    assert by_reason["Refused"]["type"] == "Warning"
    assert by_reason["Refused"]["message"] == "x" * events.MAX_MESSAGE
    assert by_reason["Noted"]["type"] == "Normal" and by_reason["Noted"]["message"] == "a note"
    assert {event["involvedObject"]["uid"] for event in posted} == {uid}
    assert cluster.kubectl("get", "namespace", f"{namespace}-gone", check=False).returncode != 0
