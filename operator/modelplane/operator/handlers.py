"""The kopf handlers: decorators only, each delegating to `reconcile`."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import random
from functools import cache

import kopf
from aiohttp import web

from modelplane.operator import reconcile, webhook
from modelplane.operator.apply import SCALED_OBJECT, served
from modelplane.operator.registry import RegistryError, forget_alias
from modelplane.operator.render.common import DEPLOYMENT_LABEL, MANAGED_BY
from modelplane.operator.settings import OperatorSettings
from modelplane.operator.spec import API_VERSION, GROUP, KIND, PLURAL, VERSION

CHILDREN = {"app.kubernetes.io/managed-by": MANAGED_BY, DEPLOYMENT_LABEL: kopf.PRESENT}


@cache
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
    # Events are posted on purpose below, not for every log line.
    settings.posting.level = logging.WARNING
    # No watching of CRDs and namespaces, which would need cluster-wide reads even for an
    # operator confined to a few namespaces: it serves what exists when it starts (the
    # chart installs the CRD first).
    settings.scanning.disabled = True


def _poster(namespace: str, name: str, uid: str | None):
    metadata = {"namespace": namespace, "name": name, **({"uid": uid} if uid else {})}
    owner = {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata}

    def post(reason: str, message: str, warning: bool) -> None:
        # kopf.event, unlike kopf.info, is not filtered by the posting level set above.
        kopf.event(owner, type="Warning" if warning else "Normal", reason=reason, message=message)

    return post


def _retry_delay(retry: int) -> float:
    return min(300.0, 5.0 * 2 ** retry)


def _reconcile(body: kopf.Body, retry: int, prune: bool) -> None:
    poster = _poster(body.metadata.namespace, body.metadata.name, body.metadata.uid)
    try:
        reconcile.reconcile(copy.deepcopy(dict(body)), _settings(), poster, prune=prune)
    except RegistryError as error:
        raise kopf.TemporaryError(str(error), delay=_retry_delay(retry)) from None


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def reconcile_model_deployment(body: kopf.Body, retry: int, **_) -> None:
    _reconcile(body, retry, prune=False)


@kopf.on.resume(GROUP, VERSION, PLURAL)
def resume_model_deployment(body: kopf.Body, retry: int, **_) -> None:
    # An earlier operator may have died between applying and pruning: look for leftovers.
    _reconcile(body, retry, prune=True)


def _follows_alias(spec: kopf.Spec, **_) -> bool:
    return bool(spec.get("model", {}).get("alias")) and spec.get("rollout", {}).get("track", True)


# The daemons following an alias, by resource uid: the (model, alias) each follows, and
# the event that wakes it before its next poll.
_followers: dict[str, tuple[tuple[str, str], asyncio.Event]] = {}


def _wake_followers(model: str, alias: str) -> int:
    forget_alias(model, alias)
    woken = [wake for followed, wake in _followers.values() if followed == (model, alias)]
    for wake in woken:
        wake.set()
    return len(woken)


async def _sleep(stopped: kopf.DaemonStopped, wake: asyncio.Event, seconds: float) -> None:
    """Until `seconds` pass, the webhook wakes the daemon, or kopf stops it."""
    waits = [asyncio.ensure_future(stopped.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


@kopf.daemon(GROUP, VERSION, PLURAL, when=_follows_alias, cancellation_timeout=10)
async def follow_alias(stopped: kopf.DaemonStopped, body: kopf.Body, uid: str, **_) -> None:
    """Polls the registry on the resource's own interval, each wait jittered so that
    resources created together do not ask together; the webhook cuts a wait short."""
    poster = _poster(body.metadata.namespace, body.metadata.name, uid)
    wake = asyncio.Event()
    try:
        while not stopped:
            model = body.spec.get("model", {})
            _followers[uid] = ((model.get("name"), model.get("alias")), wake)
            interval = body.spec.get("rollout", {}).get("pollIntervalSeconds", 60)
            await _sleep(stopped, wake, interval * random.uniform(0.8, 1.2))
            wake.clear()
            if stopped:
                return
            try:
                # The body a daemon holds is kept current by kopf; a copy is what one pass sees.
                await asyncio.to_thread(reconcile.follow_alias, copy.deepcopy(dict(body)), _settings(), poster)
            except RegistryError as error:
                logging.getLogger(__name__).warning("[%s/%s] cannot follow the alias: %s",
                                                    body.metadata.namespace, body.metadata.name, error)
    finally:
        _followers.pop(uid, None)


def _rolling_out(status: kopf.Status, **_) -> bool:
    return bool(status.get("targetVersion"))


@kopf.timer(GROUP, VERSION, PLURAL, interval=5, when=_rolling_out)
def settle_rollout(body: kopf.Body, **_) -> None:
    """Promotes a canary that has been Ready long enough, and acts on the annotations that
    promote a canary or abort a rollout by hand, while a rollout is in progress."""
    namespace, name = body.metadata.namespace, body.metadata.name
    reconcile.settle_rollout(namespace, name, _settings(), _poster(namespace, name, body.metadata.uid))


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
    """A plain copy of a child a ModelDeployment owns; None for anything else."""
    if any(ref.get("kind") == KIND for ref in body.metadata.get("ownerReferences", [])):
        return copy.deepcopy(dict(body))
    return None


@kopf.on.event("apps", "v1", "deployments", labels=CHILDREN)
@kopf.on.event("batch", "v1", "jobs", labels=CHILDREN)
@kopf.on.event("batch", "v1", "cronjobs", labels=CHILDREN)
def child_changed(body: kopf.Body, type: str | None, namespace: str, labels: kopf.Labels, **_) -> None:
    """A workload changed, or went: its ModelDeployment's status may have changed, or the
    workload may need re-creating. Skipped: Jobs a CronJob made (the CronJob reports their
    outcome itself) and workloads on their way out (a pruned one must not speak for its
    successor)."""
    if (workload := _owned_child(body)) is None:
        return
    name = labels[DEPLOYMENT_LABEL]
    if type == "DELETED":
        reconcile.child_deleted(namespace, name, workload, _settings(), _poster(namespace, name, None))
    elif not body.metadata.get("deletionTimestamp"):
        reconcile.workload_changed(namespace, name, workload, _settings(), _poster(namespace, name, None))


@kopf.on.event("", "v1", "services", labels=CHILDREN)
@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", labels=CHILDREN)
def companion_changed(body: kopf.Body, type: str | None, namespace: str, labels: kopf.Labels, **_) -> None:
    """A Service or autoscaler says nothing of readiness; only its deletion matters."""
    if type == "DELETED" and (child := _owned_child(body)) is not None:
        name = labels[DEPLOYMENT_LABEL]
        reconcile.child_deleted(namespace, name, child, _settings(), _poster(namespace, name, None))
