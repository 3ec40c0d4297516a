"""What the operator's running state queues for what kopf delivers: a pass for each
generation not taken on yet (created, changed, or seen again after a restart), nothing
for one taken on already, child work under the owner's name, and a stopped pod's
workload. Pure: the client never connects (tests/operator/test_reconcile.py runs the
queued work against the test bed)."""

from __future__ import annotations

import functools

import pytest

from modelplane.operator.cache import ObjectCache
from modelplane.operator.context import OperatorContext
from modelplane.operator.controller import Controller
from modelplane.operator.events import EventPoster
from modelplane.operator.kube import Kube
from modelplane.operator.reconcile import Occasion
from modelplane.operator.registry import Registries, RegistryClient
from modelplane.operator.render import RenderSettings
from modelplane.operator.settings import OperatorSettings
from modelplane.operator.status_store import StatusStore


@pytest.fixture
def controller() -> Controller:
    kube = Kube(connections=1)  # never connected: nothing here reads the cluster
    cache = ObjectCache(kube)
    context = OperatorContext(
        settings=OperatorSettings(render=RenderSettings(serving_image="unused")),
        kube=kube,
        cache=cache,
        registry=RegistryClient(Registries()),
        statuses=StatusStore(kube, cache),
        events=EventPoster(kube),
    )
    return Controller(context)


def _body(generation: int = 1, status: dict | None = None, **metadata) -> dict:
    return {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {
            "name": "iris",
            "namespace": "ns",
            "uid": "uid-1",
            "generation": generation,
            "resourceVersion": str(10 + generation),
            **metadata,
        },
        "spec": {"mode": "online", "model": {"name": "iris", "alias": "champion"}},
        "status": status or {},
    }


def _occasions(controller: Controller) -> list[Occasion]:
    """The occasion of each pass queued."""
    found = []
    for key, urgent in controller.work.queued():
        assert key[0] == "pass" and urgent, key
        work = controller.work._urgent[key][0]
        assert isinstance(work, functools.partial)
        found.append(work.args[2])
    return found


def test_a_resource_just_created_gets_a_pass_that_creates_its_children_unread(controller: Controller):
    controller.model_deployment_seen(_body(), deleted=False)

    assert _occasions(controller) == [Occasion.CREATED]
    assert controller.context.cache.holds("ModelDeployment", "ns", "iris")


def test_a_generation_taken_on_already_queues_nothing_and_a_new_one_is_a_change(controller: Controller):
    controller.model_deployment_seen(_body(), deleted=False)
    controller.work._urgent.clear()  # as a worker taking it would

    controller.model_deployment_seen(_body(status={"observedGeneration": 1}), deleted=False)
    assert controller.work.queued() == []

    controller.model_deployment_seen(_body(generation=2, status={"observedGeneration": 1}), deleted=False)
    assert _occasions(controller) == [Occasion.CHANGED]


def test_a_resource_from_before_a_restart_is_checked_again(controller: Controller):
    controller.model_deployment_seen(_body(generation=3, status={"observedGeneration": 3}), deleted=False)

    assert _occasions(controller) == [Occasion.RECHECK]


def test_a_resource_being_deleted_gets_no_pass_and_a_deleted_one_is_forgotten(controller: Controller):
    controller.model_deployment_seen(_body(deletionTimestamp="2026-12-05T10:00:00Z"), deleted=False)
    assert controller.work.queued() == []

    controller.model_deployment_seen(_body(), deleted=True)
    assert not controller.context.cache.holds("ModelDeployment", "ns", "iris")
    controller.model_deployment_seen(_body(), deleted=False)
    assert _occasions(controller) == [Occasion.CREATED], "seen again after its deletion: a new resource"


def _child(kind: str, name: str, owner: str = "iris") -> dict:
    api_version = {"Deployment": "apps/v1", "Service": "v1"}[kind]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": "ns", "labels": {"modelplane.io/deployment": owner}},
    }


def test_child_work_is_queued_once_per_child_under_its_owners_name(controller: Controller):
    workload = _child("Deployment", "iris-canary")
    seen = {**workload, "metadata": {**workload["metadata"], "resourceVersion": "7"}}

    controller.workload_seen(workload, seen, deleted=False)
    controller.workload_seen(workload, seen, deleted=False)
    controller.companion_deleted(_child("Service", "iris"))

    assert controller.work.queued() == [
        (("child", "ns", "Deployment", "iris-canary"), False),
        (("child", "ns", "Service", "iris"), False),
    ]
    queued = controller.work._ordinary[("child", "ns", "Deployment", "iris-canary")][0]
    assert isinstance(queued, functools.partial) and queued.args[1:3] == ("ns", "iris")
    assert controller.context.cache.holds("Deployment", "ns", "iris-canary")


def test_a_pod_stopped_with_a_message_queues_its_deployment_once(controller: Controller):
    labels = {"modelplane.io/deployment": "iris", "modelplane.io/model-version": "3", "pod-template-hash": "5d8f"}
    owner = {"kind": "ReplicaSet", "name": "iris-5d8f", "controller": True}

    controller.pod_stopped("ns", labels, owner, "model refused: a pickle")
    controller.work._ordinary.clear()  # as a worker taking it would
    controller.pod_stopped("ns", labels, owner, "model refused: a pickle")  # the same news again

    assert controller.work.queued() == []
    assert controller.context.cache.stop_message("ns", "iris", "3") == "model refused: a pickle"
    controller.pod_stopped("ns", labels, owner, "model refused: another reason")
    assert controller.work.queued() == [(("child", "ns", "Deployment", "iris"), False)]
