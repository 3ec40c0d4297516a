"""The kopf handlers, each delegating to `reconcile`, and the work they queue to run
beside them: the recording of a pass in status, alias polls, rollouts to settle, and
catching up with what children report."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import logging

import kopf
from aiohttp import web

from modelplane.operator import cache, events, following, reconcile, webhook
from modelplane.operator.apply import SCALED_OBJECT, child_reference, served
from modelplane.operator.registry import RegistryError, forget_alias
from modelplane.operator.render.common import DEPLOYMENT_LABEL, MANAGED_BY
from modelplane.operator.settings import OperatorSettings
from modelplane.operator.spec import GROUP, KIND, PLURAL, VERSION
from modelplane.operator.workqueue import WorkQueue

CHILDREN = {"app.kubernetes.io/managed-by": MANAGED_BY, DEPLOYMENT_LABEL: kopf.PRESENT}


@functools.cache
def _settings() -> OperatorSettings:
    settings = OperatorSettings.from_environment()
    # Read once: KEDA installed later takes an operator restart to be used.
    keda = served(*SCALED_OBJECT)
    return dataclasses.replace(settings, render=dataclasses.replace(settings.render, scaled_objects=keda))


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_) -> None:
    # Handler progress lives in annotations: the status schema is ours alone.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    # kopf turns only failures into Events; the rest are posted on purpose (`events`).
    settings.posting.level = logging.WARNING
    # No watching of CRDs and namespaces, which would need cluster-wide reads even for an
    # operator confined to a few namespaces: it serves what exists when it starts (the
    # chart installs the CRD first).
    settings.scanning.disabled = True


def _retry_delay(retry: int) -> float:
    return min(300.0, 5.0 * 2 ** retry)


# Seconds before recording a pass in status is tried again, after an error of the API server.
RECORD_RETRY_SECONDS = 10.0


async def _reconcile(body: kopf.Body, retry: int, occasion: reconcile.Occasion) -> None:
    """Applies, and queues the recording in status: under a burst of creations, every
    resource gets its workload before any catches up with its status."""
    namespace, name = body.metadata.namespace, body.metadata.name
    poster = events.poster(namespace, name, body.metadata.uid)
    try:
        record_pass = await asyncio.to_thread(reconcile.apply_pass, copy.deepcopy(dict(body)), _settings(), poster,
                                              occasion)
    except RegistryError as error:
        raise kopf.TemporaryError(str(error), delay=_retry_delay(retry)) from None
    _work.add(("record", namespace, name), record_pass, retry_seconds=RECORD_RETRY_SECONDS)


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def reconcile_model_deployment(body: kopf.Body, retry: int, reason: kopf.Reason, **_) -> None:
    first_try = reason == kopf.Reason.CREATE and retry == 0
    await _reconcile(body, retry, reconcile.Occasion.CREATED if first_try else reconcile.Occasion.CHANGED)


@kopf.on.resume(GROUP, VERSION, PLURAL)
async def resume_model_deployment(body: kopf.Body, retry: int, **_) -> None:
    await _reconcile(body, retry, reconcile.Occasion.RECHECK)


# Work done outside kopf's handlers, WORKERS pieces at a time: polls, settling, and
# catching up with children.
WORKERS = 4
_work = WorkQueue()
# The resources following an alias or rolling out, looked after by one loop (see `following`).
_watchlist = following.Watchlist()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def watch_model_deployment(body: kopf.Body, type: str | None, uid: str, **_) -> None:
    if type == "DELETED":
        _watchlist.forget(uid)
        cache.forget(KIND, body.metadata.namespace, body.metadata.name)
    else:
        plain = copy.deepcopy(dict(body))  # one copy, which neither changes
        _watchlist.observe(plain)
        cache.remember(KIND, plain)


def _follow_alias(body: dict) -> None:
    metadata = body["metadata"]
    try:
        reconcile.follow_alias(body, _settings(), events.poster(metadata["namespace"], metadata["name"], metadata["uid"]))
    except RegistryError as error:
        logging.getLogger(__name__).warning("[%s/%s] cannot follow the alias: %s",
                                            metadata["namespace"], metadata["name"], error)


def _settle_rollout(body: dict) -> None:
    """Promotes a canary that has been Ready long enough, and acts on the annotations that
    promote a canary or abort a rollout by hand."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    reconcile.settle_rollout(namespace, name, _settings(), events.poster(namespace, name, body["metadata"]["uid"]))


def _wake_followers(model: str, alias: str) -> int:
    forget_alias(model, alias)
    return _watchlist.wake(model, alias)


@kopf.on.startup()
async def start_background_work(memo: kopf.Memo, **_) -> None:
    memo.background = [asyncio.create_task(_work.serve(WORKERS)),
                       asyncio.create_task(following.run(_watchlist, _work, _follow_alias, _settle_rollout))]


@kopf.on.cleanup()
async def stop_background_work(memo: kopf.Memo, **_) -> None:
    for task in memo.background:
        task.cancel()
    await asyncio.gather(*memo.background, return_exceptions=True)


@kopf.on.startup()
async def serve_webhook(memo: kopf.Memo, **_) -> None:
    settings = _settings()
    if not settings.webhook_secret:
        return
    runner = web.AppRunner(webhook.application(settings.webhook_secret, _wake_followers), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, *settings.webhook_address).start()
    memo.webhook_runner = runner


@kopf.on.cleanup()
async def stop_webhook(memo: kopf.Memo, **_) -> None:
    if (runner := memo.get("webhook_runner")) is not None:
        await runner.cleanup()


def _owned_child(body: kopf.Body) -> dict | None:
    """Enough of a child a ModelDeployment owns to find and judge it by (its latest
    version is in `cache`); None for anything else."""
    if not any(ref.get("kind") == KIND for ref in body.metadata.get("ownerReferences", [])):
        return None
    return child_reference(body)


def _queue_child_work(child: dict, namespace: str, labels: kopf.Labels, work) -> None:
    """Queues `work(namespace, name, child, settings, post_event)` for the ModelDeployment
    owning this child, replacing any not yet started for the same child."""
    name = labels[DEPLOYMENT_LABEL]
    _work.add(("child", namespace, child["kind"], child["metadata"]["name"]),
              functools.partial(work, namespace, name, child, _settings(), events.poster(namespace, name, None)))


@kopf.on.event("apps", "v1", "deployments", labels=CHILDREN)
@kopf.on.event("batch", "v1", "jobs", labels=CHILDREN)
@kopf.on.event("batch", "v1", "cronjobs", labels=CHILDREN)
async def child_changed(body: kopf.Body, type: str | None, namespace: str, labels: kopf.Labels, **_) -> None:
    """A workload changed, or went: its ModelDeployment's status may have changed, or the
    workload may need re-creating. Skipped: Jobs a CronJob made (the CronJob reports their
    outcome itself) and workloads on their way out (a pruned one must not speak for its
    successor)."""
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
async def companion_changed(body: kopf.Body, type: str | None, namespace: str, labels: kopf.Labels, **_) -> None:
    """A Service or autoscaler says nothing of readiness; only its deletion matters."""
    if type == "DELETED" and (child := _owned_child(body)) is not None:
        _queue_child_work(child, namespace, labels, reconcile.child_deleted)
