"""The kopf handlers: they watch ModelDeployments and their children and hand what they
see to the operator's `Controller`, which kopf's memo holds from startup to cleanup."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

import kopf

from modelplane.operator.apply import child_reference
from modelplane.operator.controller import Controller
from modelplane.operator.objects import Object
from modelplane.operator.render.common import DEPLOYMENT_LABEL, MANAGED_BY, MODEL_VERSION_LABEL
from modelplane.operator.render.pod import CONTAINER_NAME
from modelplane.operator.settings import OperatorSettings
from modelplane.operator.spec import GROUP, KIND, PLURAL, VERSION

if TYPE_CHECKING:
    # The type of a label filter, which kopf uses in its public signatures but does not export.
    from kopf._core.intents.filters import MetaFilter

CHILDREN: MetaFilter = {"app.kubernetes.io/managed-by": MANAGED_BY, DEPLOYMENT_LABEL: kopf.PRESENT}
PODS: MetaFilter = {DEPLOYMENT_LABEL: kopf.PRESENT, MODEL_VERSION_LABEL: kopf.PRESENT}
# Enough of a termination message to say why; the kubelet keeps at most 4 KiB.
LONGEST_STOP_MESSAGE = 1024


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # kopf turns only failures into Events; the rest are posted on purpose (`events`).
    settings.posting.level = logging.WARNING
    # No watching of CRDs and namespaces, which would need cluster-wide reads even for an
    # operator confined to a few namespaces: it serves what exists when it starts (the
    # chart installs the CRD first).
    settings.scanning.disabled = True
    # kopf keeps a task per object for this long after its last event, holding that event:
    # with its default of 5 s, a burst of thousands of objects took a fifth of the
    # operator's memory.
    settings.batching.idle_timeout = 1.0
    settings.persistence.diffbase_storage = _NoDiffBase()
    # Startup handlers finish before any resource is watched, so every handler finds it.
    controller = Controller.connect(OperatorSettings.from_environment())
    await controller.start()
    memo.controller = controller


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await _controller(memo).stop()


def _controller(memo: kopf.Memo) -> Controller:
    controller: Controller = memo.controller
    return controller


class _NoDiffBase(kopf.DiffBaseStorage):
    """kopf's record of the last handled spec, which only its change handlers read; every
    handler here is an event handler. Building it copied each event whole (managed fields
    and all): under a burst, enough work to make the operator read its watches late."""

    # kopf declares an essence as what `build` returns, but its caller takes None too (and
    # then keeps and compares nothing), which is the point here.
    def build(self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None) -> None:  # type: ignore[override]
        return None

    def fetch(self, *, body: kopf.Body) -> None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


@kopf.on.event(GROUP, VERSION, PLURAL)
async def model_deployment_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Not kopf's change handlers, whose bookkeeping costs each new resource a write of
    its own before its workload: every event is looked at (see `Controller`)."""
    # One copy, which nothing changes, without what nothing reads and most of its size is.
    metadata = {key: value for key, value in body.metadata.items() if key != "managedFields"}
    _controller(memo).model_deployment_seen(copy.deepcopy({**body, "metadata": metadata}), deleted=type == "DELETED")


def _owned_child(body: kopf.Body) -> Object | None:
    """Enough of a child a ModelDeployment owns to find and judge it by (its latest
    version is in the cache); None for anything else."""
    if not any(ref.get("kind") == KIND for ref in body.metadata.get("ownerReferences", [])):
        return None
    return child_reference(body)


@kopf.on.event("apps", "v1", "deployments", labels=CHILDREN)
@kopf.on.event("batch", "v1", "jobs", labels=CHILDREN)
@kopf.on.event("batch", "v1", "cronjobs", labels=CHILDREN)
async def workload_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A workload changed, or went. Skipped: Jobs a CronJob made (the CronJob reports their
    outcome itself) and workloads on their way out (a pruned one must not speak for its
    successor)."""
    if (child := _owned_child(body)) is None:
        return
    if type == "DELETED" or not body.metadata.get("deletionTimestamp"):
        _controller(memo).workload_seen(child, dict(body), deleted=type == "DELETED")


@kopf.on.event("", "v1", "services", labels=CHILDREN)
@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", labels=CHILDREN)
@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels=CHILDREN)
async def companion_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A Service, autoscaler or NetworkPolicy says nothing of readiness; only its
    deletion matters."""
    if type == "DELETED" and (child := _owned_child(body)) is not None:
        _controller(memo).companion_deleted(child)


@kopf.on.event("", "v1", "pods", labels=PODS)
async def pod_changed(
    body: kopf.Body, type: str | None, namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **_: Any
) -> None:
    """A model container that exited with a message (a model refused at load, a file that
    cannot be read)."""
    if type == "DELETED" or (message := _stop_message(body)) is None:
        return
    owner: Object = next((ref for ref in body.metadata.get("ownerReferences", []) if ref.get("controller")), {})
    _controller(memo).pod_stopped(cast(str, namespace), labels, owner, message)  # pods are namespaced


def _stop_message(pod: kopf.Body) -> str | None:
    """The termination message the model container last exited with, unless it succeeded."""
    for container in pod.status.get("containerStatuses") or []:
        if container.get("name") != CONTAINER_NAME:
            continue
        for state in (container.get("state") or {}, container.get("lastState") or {}):
            stopped = state.get("terminated") or {}
            if stopped.get("exitCode") and (stopped.get("message") or "").strip():
                message: str = stopped["message"].strip()[:LONGEST_STOP_MESSAGE]
                return message
    return None
