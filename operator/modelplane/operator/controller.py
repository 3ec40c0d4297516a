"""The operator's running state, in one object that kopf's memo holds: the context every
pass works with, the queue of work, the resources whose aliases and rollouts are looked
after, and the generations taken on. Started and stopped by the operator's startup and
cleanup handlers; `handlers` hands it what kopf delivers.

The work queued: passes over a resource whose spec changed (see `reconcile`), alias
polls, rollouts to settle, and catching up with what children report."""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import time
from collections.abc import Callable, Mapping

from aiohttp import web

from modelplane.operator import following, reconcile, webhook
from modelplane.operator.apply import ChildConflict
from modelplane.operator.context import OperatorContext
from modelplane.operator.objects import Object
from modelplane.operator.registry import RegistryError
from modelplane.operator.render.common import DEPLOYMENT_LABEL, MODEL_VERSION_LABEL
from modelplane.operator.settings import OperatorSettings
from modelplane.operator.spec import API_VERSION, KIND
from modelplane.operator.status import ModelDeploymentStatus
from modelplane.operator.workqueue import TryAgain, WorkQueue

logger = logging.getLogger(__name__)

# Threads doing queued work: the first halves of passes (making workloads) first, then
# the rest: second halves (the other children, status), polls, settling, and catching up
# with children. Under a burst of creations the API server's answers, not the operator,
# are what is slow: as many threads as it takes to keep a fair share of the API server
# for workloads (each waits on one request); the rest waits for them, and then goes a few
# at a time. The client keeps a connection for each (`OperatorContext.connect`).
WORKERS, ORDINARY_WORKERS = 64, 4
ChildWork = Callable[[OperatorContext, str, str, Object], None]


class Controller:
    def __init__(self, context: OperatorContext) -> None:
        self.context = context
        self.work = WorkQueue()
        self.watchlist = following.Watchlist()
        # The generation of each ModelDeployment (by uid) that this operator has taken on
        # since it started: one it has not is a pass to queue.
        self._taken: dict[str, int | None] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._webhook: web.AppRunner | None = None

    @classmethod
    def connect(cls, settings: OperatorSettings) -> Controller:
        return cls(OperatorContext.connect(settings, threads=WORKERS))

    async def start(self) -> None:
        """Starts the Events poster, the work queue's threads, the loop that follows
        aliases and rollouts, and the webhook endpoint where it has a secret."""
        self.context.events.start()
        self._tasks = [
            asyncio.create_task(self.work.serve(WORKERS, ORDINARY_WORKERS)),
            asyncio.create_task(following.run(self.watchlist, self.work, self._follow_alias, self._settle_rollout)),
        ]
        settings = self.context.settings
        if settings.webhook_secret:
            runner = web.AppRunner(webhook.application(settings.webhook_secret, self._wake_followers), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, *settings.webhook_address).start()
            self._webhook = runner

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._webhook is not None:
            await self._webhook.cleanup()
        # In a thread: it waits for the Events queued to be posted, a few seconds at most.
        await asyncio.get_running_loop().run_in_executor(None, self.context.events.stop)

    # What kopf delivers.

    def model_deployment_seen(self, body: Object, deleted: bool) -> None:
        """Level-triggered, as a controller-runtime reconciler: every event of a resource is
        looked at for a generation not taken on yet. `body` is a copy no one changes."""
        metadata = body["metadata"]
        namespace, name, uid = metadata["namespace"], metadata["name"], metadata["uid"]
        cache = self.context.cache
        if deleted:
            self.watchlist.forget(uid)
            cache.forget(KIND, namespace, name)
            cache.forget_stops(namespace, name)
            self._taken.pop(uid, None)
            return
        self.watchlist.observe(body)
        cache.remember(KIND, body)
        generation = metadata.get("generation")
        if metadata.get("deletionTimestamp") or self._taken.get(uid) == generation:
            return
        occasion = _occasion(body, first_seen=uid not in self._taken)
        self._taken[uid] = generation
        self.work.add(
            ("pass", namespace, name),
            functools.partial(self._apply_workloads, namespace, name, occasion, time.monotonic()),
            urgent=True,
            retry=True,
        )

    def workload_seen(self, child: Object, body: Object, deleted: bool) -> None:
        """A workload changed (`body`, no one changes it), or went: its ModelDeployment's
        status may have changed, or the workload may need re-creating."""
        metadata = child["metadata"]
        if deleted:
            self.context.cache.forget(child["kind"], metadata["namespace"], metadata["name"])
            self._queue_child_work(child, reconcile.child_deleted)
        else:
            self.context.cache.remember(child["kind"], body)
            self._queue_child_work(child, reconcile.workload_changed)

    def companion_deleted(self, child: Object) -> None:
        self._queue_child_work(child, reconcile.child_deleted)

    def pod_stopped(self, namespace: str, labels: Mapping[str, str], owner: Object, message: str) -> None:
        """A model container that exited with `message` makes its workload's Ready say
        why, not only that pods are not ready."""
        cache = self.context.cache
        if not cache.remember_stop(namespace, labels[DEPLOYMENT_LABEL], labels[MODEL_VERSION_LABEL], message):
            return
        if owner.get("kind") == "ReplicaSet" and "pod-template-hash" in labels:
            workload = ("apps/v1", "Deployment", owner["name"].removesuffix("-" + labels["pod-template-hash"]))
        elif owner.get("kind") == "Job":
            workload = ("batch/v1", "Job", owner["name"])
        else:
            return
        api_version, kind, name = workload
        child = {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "labels": {DEPLOYMENT_LABEL: labels[DEPLOYMENT_LABEL]}},
        }
        self._queue_child_work(child, reconcile.workload_changed)

    # The work.

    def _apply_workloads(self, namespace: str, name: str, occasion: reconcile.Occasion, seen_at: float) -> None:
        """The first step of a pass, on the newest version seen. Its second is queued under
        the same key, so a pass of a newer generation replaces it, or waits for it to end.
        Under a burst, passes queued together share one answer of the registry."""
        body = self.context.cache.newest(API_VERSION, KIND, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        one = reconcile.Pass(self.context, copy.deepcopy(body), occasion, seen_at)
        try:
            one.apply_workloads()
        except RegistryError as error:
            raise TryAgain(f"[{namespace}/{name}] the model is not resolved: {error}") from None
        except ChildConflict as conflict:
            raise TryAgain(f"[{namespace}/{name}] {conflict}") from None
        logger.info(
            "[%s/%s] generation %s applied (%s)", namespace, name, body["metadata"].get("generation"), occasion.value
        )
        self.work.add_threadsafe(("pass", namespace, name), functools.partial(_finish, one), retry=True)

    def _follow_alias(self, body: Object) -> None:
        metadata = body["metadata"]
        try:
            reconcile.follow_alias(self.context, body)
        except (RegistryError, ChildConflict) as error:
            logger.warning("[%s/%s] cannot follow the alias: %s", metadata["namespace"], metadata["name"], error)

    def _settle_rollout(self, body: Object) -> None:
        """Promotes a canary that has been Ready long enough, and acts on the annotations that
        promote a canary or abort a rollout by hand."""
        reconcile.settle_rollout(self.context, body["metadata"]["namespace"], body["metadata"]["name"])

    def _wake_followers(self, model: str, alias: str) -> int:
        self.context.registry.forget_alias(model, alias)
        return self.watchlist.wake(model, alias)

    def _queue_child_work(self, child: Object, work: ChildWork) -> None:
        """Queues `work(context, namespace, name, child)` for the ModelDeployment owning
        this child, replacing any not yet started for the same child."""
        metadata = child["metadata"]
        namespace, name = metadata["namespace"], metadata["labels"][DEPLOYMENT_LABEL]
        self.work.add(
            ("child", namespace, child["kind"], metadata["name"]),
            functools.partial(work, self.context, namespace, name, child),
        )


def _occasion(body: Object, first_seen: bool) -> reconcile.Occasion:
    if not first_seen:
        return reconcile.Occasion.CHANGED
    if body["metadata"].get("generation") == 1 and ModelDeploymentStatus.of(body).observed_generation is None:
        return reconcile.Occasion.CREATED
    return reconcile.Occasion.RECHECK  # one of before this operator started, which it checks


def _finish(one: reconcile.Pass) -> None:
    try:
        one.finish()
    except ChildConflict as conflict:
        raise TryAgain(f"[{one.namespace}/{one.name}] {conflict}") from None
