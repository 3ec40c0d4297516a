"""The kopf handlers, which watch ModelDeployments and their children, and the work they
queue: passes over a resource whose spec changed (see `reconcile`), alias polls,
rollouts to settle, and catching up with what children report."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

import kopf
from aiohttp import web

from modelplane.operator import cache, events, following, reconcile, webhook
from modelplane.operator.apply import ChildConflict, child_reference, served
from modelplane.operator.events import PostEvent
from modelplane.operator.objects import Object
from modelplane.operator.registry import RegistryError, forget_alias
from modelplane.operator.render.common import DEPLOYMENT_LABEL, MANAGED_BY, MODEL_VERSION_LABEL, SCALED_OBJECT
from modelplane.operator.render.pod import CONTAINER_NAME
from modelplane.operator.settings import OperatorSettings
from modelplane.operator.spec import API_VERSION, GROUP, KIND, PLURAL, VERSION
from modelplane.operator.workqueue import TryAgain, WorkQueue

if TYPE_CHECKING:
    # The type of a label filter, which kopf uses in its public signatures but does not export.
    from kopf._core.intents.filters import MetaFilter

logger = logging.getLogger(__name__)
CHILDREN: MetaFilter = {"app.kubernetes.io/managed-by": MANAGED_BY, DEPLOYMENT_LABEL: kopf.PRESENT}
PODS: MetaFilter = {DEPLOYMENT_LABEL: kopf.PRESENT, MODEL_VERSION_LABEL: kopf.PRESENT}
# Enough of a termination message to say why; the kubelet keeps at most 4 KiB.
LONGEST_STOP_MESSAGE = 1024


@functools.cache
def _settings() -> OperatorSettings:
    settings = OperatorSettings.from_environment()
    # Read once: KEDA installed later takes an operator restart to be used.
    keda = served(*SCALED_OBJECT)
    return dataclasses.replace(settings, render=dataclasses.replace(settings.render, scaled_objects=keda))


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
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


# Threads doing queued work: the first halves of passes (making workloads) first, then
# the rest: second halves (the other children, status), polls, settling, and catching up
# with children. Under a burst of creations the API server's answers, not the operator,
# are what is slow: as many threads as it takes to keep a fair share of the API server
# for workloads (each waits on one request); the rest waits for them, and then goes a few
# at a time.
WORKERS, ORDINARY_WORKERS = 64, 4
_work = WorkQueue()
# The resources following an alias or rolling out, looked after by one loop (see `following`).
_watchlist = following.Watchlist()
# The generation of each ModelDeployment (by uid) that this operator has taken on since
# it started: one it has not is a pass to queue.
_taken: dict[str, int | None] = {}


@kopf.on.event(GROUP, VERSION, PLURAL)
async def watch_model_deployment(body: kopf.Body, type: str | None, uid: str, **_: Any) -> None:
    """Level-triggered, as a controller-runtime reconciler: every event of a resource is
    looked at for a generation not taken on yet. Not kopf's change handlers, whose
    bookkeeping costs each new resource a write of its own before its workload."""
    # ModelDeployments are namespaced: each has a namespace.
    namespace, name = cast(str, body.metadata.namespace), body.metadata.name
    if type == "DELETED":
        _watchlist.forget(uid)
        cache.forget(KIND, namespace, name)
        cache.forget_stops(namespace, name)
        _taken.pop(uid, None)
        return
    # One copy, which neither changes, without what neither reads and most of its size is.
    metadata = {key: value for key, value in body.metadata.items() if key != "managedFields"}
    plain = copy.deepcopy({**body, "metadata": metadata})
    _watchlist.observe(plain)
    cache.remember(KIND, plain)
    generation = body.metadata.get("generation")
    if body.metadata.get("deletionTimestamp") or _taken.get(uid) == generation:
        return
    occasion = _occasion(plain, first_seen=uid not in _taken)
    _taken[uid] = generation
    _work.add(
        ("pass", namespace, name),
        functools.partial(_apply, namespace, name, occasion, time.monotonic()),
        urgent=True,
        retry=True,
    )


def _occasion(body: Object, first_seen: bool) -> reconcile.Occasion:
    if not first_seen:
        return reconcile.Occasion.CHANGED
    if body["metadata"].get("generation") == 1 and "observedGeneration" not in (body.get("status") or {}):
        return reconcile.Occasion.CREATED
    return reconcile.Occasion.RECHECK  # one of before this operator started, which it checks


def _apply(namespace: str, name: str, occasion: reconcile.Occasion, seen_at: float) -> None:
    """The first half of a pass, on the newest version seen. Its second half is queued
    under the same key, so a pass of a newer generation replaces it, or waits for it to end.
    Under a burst, passes queued together share one answer of the registry."""
    body = cache.newest(API_VERSION, KIND, namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return
    poster = events.poster(namespace, name, body["metadata"]["uid"])
    try:
        finish_pass = reconcile.apply_pass(copy.deepcopy(body), _settings(), poster, occasion, seen_at)
    except RegistryError as error:
        raise TryAgain(f"[{namespace}/{name}] the model is not resolved: {error}") from None
    except ChildConflict as conflict:
        raise TryAgain(f"[{namespace}/{name}] {conflict}") from None
    logger.info(
        "[%s/%s] generation %s applied (%s)", namespace, name, body["metadata"].get("generation"), occasion.value
    )
    _work.add_threadsafe(
        ("pass", namespace, name), functools.partial(_finish, namespace, name, finish_pass), retry=True
    )


def _finish(namespace: str, name: str, finish_pass: Callable[[], None]) -> None:
    try:
        finish_pass()
    except ChildConflict as conflict:
        raise TryAgain(f"[{namespace}/{name}] {conflict}") from None


def _follow_alias(body: Object) -> None:
    metadata = body["metadata"]
    try:
        reconcile.follow_alias(
            body, _settings(), events.poster(metadata["namespace"], metadata["name"], metadata["uid"])
        )
    except (RegistryError, ChildConflict) as error:
        logger.warning("[%s/%s] cannot follow the alias: %s", metadata["namespace"], metadata["name"], error)


def _settle_rollout(body: Object) -> None:
    """Promotes a canary that has been Ready long enough, and acts on the annotations that
    promote a canary or abort a rollout by hand."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    reconcile.settle_rollout(namespace, name, _settings(), events.poster(namespace, name, body["metadata"]["uid"]))


def _wake_followers(model: str, alias: str) -> int:
    forget_alias(model, alias)
    return _watchlist.wake(model, alias)


@kopf.on.startup()
async def start_background_work(memo: kopf.Memo, **_: Any) -> None:
    memo.background = [
        asyncio.create_task(_work.serve(WORKERS, ORDINARY_WORKERS)),
        asyncio.create_task(following.run(_watchlist, _work, _follow_alias, _settle_rollout)),
    ]


@kopf.on.cleanup()
async def stop_background_work(memo: kopf.Memo, **_: Any) -> None:
    for task in memo.background:
        task.cancel()
    await asyncio.gather(*memo.background, return_exceptions=True)


@kopf.on.startup()
async def serve_webhook(memo: kopf.Memo, **_: Any) -> None:
    settings = _settings()
    if not settings.webhook_secret:
        return
    runner = web.AppRunner(webhook.application(settings.webhook_secret, _wake_followers), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, *settings.webhook_address).start()
    memo.webhook_runner = runner


@kopf.on.cleanup()
async def stop_webhook(memo: kopf.Memo, **_: Any) -> None:
    if (runner := memo.get("webhook_runner")) is not None:
        await runner.cleanup()


def _owned_child(body: kopf.Body) -> Object | None:
    """Enough of a child a ModelDeployment owns to find and judge it by (its latest
    version is in `cache`); None for anything else."""
    if not any(ref.get("kind") == KIND for ref in body.metadata.get("ownerReferences", [])):
        return None
    return child_reference(body)


def _queue_child_work(
    child: Object,
    namespace: str,
    labels: kopf.Labels,
    work: Callable[[str, str, Object, OperatorSettings, PostEvent], None],
) -> None:
    """Queues `work(namespace, name, child, settings, post_event)` for the ModelDeployment
    owning this child, replacing any not yet started for the same child."""
    name = labels[DEPLOYMENT_LABEL]
    _work.add(
        ("child", namespace, child["kind"], child["metadata"]["name"]),
        functools.partial(work, namespace, name, child, _settings(), events.poster(namespace, name, None)),
    )


@kopf.on.event("apps", "v1", "deployments", labels=CHILDREN)
@kopf.on.event("batch", "v1", "jobs", labels=CHILDREN)
@kopf.on.event("batch", "v1", "cronjobs", labels=CHILDREN)
async def child_changed(
    body: kopf.Body, type: str | None, namespace: str | None, labels: kopf.Labels, **_: Any
) -> None:
    """A workload changed, or went: its ModelDeployment's status may have changed, or the
    workload may need re-creating. Skipped: Jobs a CronJob made (the CronJob reports their
    outcome itself) and workloads on their way out (a pruned one must not speak for its
    successor)."""
    namespace = cast(str, namespace)  # the kinds watched here are namespaced
    if (child := _owned_child(body)) is None:
        return
    if type == "DELETED":
        cache.forget(child["kind"], namespace, child["metadata"]["name"])
        _queue_child_work(child, namespace, labels, reconcile.child_deleted)
    elif not body.metadata.get("deletionTimestamp"):
        cache.remember(child["kind"], dict(body))
        _queue_child_work(child, namespace, labels, reconcile.workload_changed)


@kopf.on.event("", "v1", "services", labels=CHILDREN)
@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", labels=CHILDREN)
@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels=CHILDREN)
async def companion_changed(
    body: kopf.Body, type: str | None, namespace: str | None, labels: kopf.Labels, **_: Any
) -> None:
    """A Service, autoscaler or NetworkPolicy says nothing of readiness; only its
    deletion matters."""
    namespace = cast(str, namespace)  # the kinds watched here are namespaced
    if type == "DELETED" and (child := _owned_child(body)) is not None:
        _queue_child_work(child, namespace, labels, reconcile.child_deleted)


@kopf.on.event("", "v1", "pods", labels=PODS)
async def pod_changed(body: kopf.Body, type: str | None, namespace: str | None, labels: kopf.Labels, **_: Any) -> None:
    """A model container that exited with a message (a model refused at load, a file that
    cannot be read) makes its workload's Ready say why, not only that pods are not ready."""
    namespace = cast(str, namespace)  # pods are namespaced
    if type == "DELETED" or (message := _stop_message(body)) is None:
        return
    if not cache.remember_stop(namespace, labels[DEPLOYMENT_LABEL], labels[MODEL_VERSION_LABEL], message):
        return
    owner: Object = next((ref for ref in body.metadata.get("ownerReferences", []) if ref.get("controller")), {})
    if owner.get("kind") == "ReplicaSet" and "pod-template-hash" in labels:
        workload = ("apps/v1", "Deployment", owner["name"].removesuffix("-" + labels["pod-template-hash"]))
    elif owner.get("kind") == "Job":
        workload = ("batch/v1", "Job", owner["name"])
    else:
        return
    api_version, kind, name = workload
    child = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace, "labels": {}}}
    _queue_child_work(child, namespace, labels, reconcile.workload_changed)


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
