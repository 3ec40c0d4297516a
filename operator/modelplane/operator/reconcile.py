"""Passes over a ModelDeployment: resolve its model, render its children, apply them,
prune what its mode no longer needs, and report in status; and the smaller steps that
follow what its children, its alias and time say. Every step is idempotent with
deterministic names, so a pass cut short by a crash is safe to repeat."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import Enum
from typing import cast

from modelplane.operator import workloads
from modelplane.operator.apply import ChildConflict, apply_children, child_reference, prune_children
from modelplane.operator.context import OperatorContext
from modelplane.operator.events import PostEvent
from modelplane.operator.kube import ForbiddenError
from modelplane.operator.manifest import ModelDeployment, parse_manifest
from modelplane.operator.objects import Object
from modelplane.operator.registry import RegistryError
from modelplane.operator.render import render
from modelplane.operator.render.common import GUARD_KINDS, MODE_LABEL, WORKLOAD_KINDS
from modelplane.operator.render.online import CANARY, TRACK_LABEL, endpoint
from modelplane.operator.spec import API_VERSION, KIND, Mode, ResolvedModel, RolloutStrategy
from modelplane.operator.status import CHILD_CONFLICT, READY, ModelDeploymentStatus
from modelplane.operator.status_store import Change, Mutation


class Occasion(Enum):
    """What prompted a pass, which says what it must look at besides the rendered children."""

    # A resource just created: it has no children yet, so each is created unread and
    # none is looked for to prune (saving most of its requests).
    CREATED = "created"
    # Its spec or its alias changed: leftovers are looked for if something was written.
    CHANGED = "changed"
    # After a restart, or when status changed what is to run: leftovers are looked for
    # anyway, as an earlier pass may have died between applying and pruning.
    RECHECK = "recheck"


def reconcile(context: OperatorContext, body: Object, occasion: Occasion) -> None:
    """One whole pass."""
    one = Pass(context, body, occasion)
    one.apply_workloads()
    one.finish()


class Pass:
    """One pass over one generation of a ModelDeployment, in two steps: `apply_workloads`
    makes the workloads what the spec asks for; `finish`, run at once or queued behind
    other resources' first steps, applies the rest of the children (a Service, an
    autoscaler), prunes what the mode no longer needs, records the pass in status and
    looks at the workloads once more. Each step may be tried again after it failed.

    Under a burst of creations, a Service created beside each Deployment costs the control
    plane most of its time (addresses, endpoints for every pod): Deployments first let
    every model start loading while the rest catches up."""

    # What `apply_workloads` found, which `finish` records and completes.
    wanted: ResolvedModel
    planned: tuple[ResolvedModel | None, ResolvedModel | None]
    model: ResolvedModel
    _companions: list[Object]
    _kept: list[Object]
    _workload: Object
    _canaries: list[Object]

    def __init__(self, context: OperatorContext, body: Object, occasion: Occasion, seen_at: float | None = None):
        """An alias is resolved by an answer of the registry asked after `seen_at` (of
        `time.monotonic`), when the change to apply was seen; by default, now."""
        self._context, self._occasion, self._seen_at = context, occasion, seen_at
        self._body = body
        self.deployment = parse_manifest(body, check_rules=False)
        # Namespaced: every ModelDeployment the API server holds has a namespace (and a uid).
        self.namespace, self.name = cast(str, self.deployment.namespace), self.deployment.name
        self._post_event = context.poster(self.namespace, self.name, self.deployment.uid)
        self._canary = uses_canary(self.deployment)
        self._written = 0
        self._announced = False  # a `finish` tried again announces nothing twice

    def apply_workloads(self) -> None:
        """Resolves the model, renders the children, and applies the workloads (and their
        guards, first: none of a workload's pods runs unguarded). Raises RegistryError or
        ChildConflict, having said so in status."""
        deployment, context = self.deployment, self._context
        reference = deployment.spec.model
        status = ModelDeploymentStatus.of(self._body)
        try:
            # A pinned version is not looked up, but its pods still reach the registry.
            context.settings.registries.uri_of(reference)
            wanted = _pinned(deployment, status) or context.registry.resolve(reference, self.namespace, self._seen_at)
        except RegistryError as error:
            # Existing children keep serving the version they run; only the condition says so.
            reason, message = error.reason, str(error)
            context.statuses.update(
                self.namespace,
                self.name,
                lambda status, _: status.record_unresolved(reason, message, deployment.generation),
                self._body,
            )
            raise
        self.wanted = wanted
        # Rendered from status as this pass will record it, so what runs matches what it says.
        status.begin_rollout(wanted, deployment.generation, self._canary)
        self.planned = status.plan(reference.name, self._canary)
        self.model, canary = cast(ResolvedModel, self.planned[0]), self.planned[1]  # a serving version is recorded
        children = render(deployment, self.model, context.settings.render, canary)
        first = [child for kinds in (GUARD_KINDS, WORKLOAD_KINDS) for child in children if child["kind"] in kinds]
        self._written = self._apply(first)
        # What `finish` needs, and no more: it may wait in a queue behind many others.
        self._companions = [child for child in children if child not in first]
        self._kept = [child_reference(child) for child in children]
        self._workload, *self._canaries = (child for child in self._kept if child["kind"] in WORKLOAD_KINDS)
        self._body = {}  # not kept while queued

    def finish(self) -> None:
        """Applies the other children, prunes leftovers, records the pass in status, and
        looks at the workloads again. Raises ChildConflict, having said so in status."""
        context, occasion = self._context, self._occasion
        all_written = self._written + self._apply(self._companions)
        look_for_leftovers = occasion is Occasion.RECHECK or (all_written and occasion is Occasion.CHANGED)
        pruned = (
            prune_children(
                context.kube,
                self.namespace,
                self.name,
                cast(str, self.deployment.uid),
                self._kept,
                context.settings.render.scaled_objects,
            )
            if look_for_leftovers
            else []
        )
        if not self._announced:
            if all_written:
                canary = self.planned[1]
                applied = f"for version {self.model.version}" + (
                    f" and its canary of version {canary.version}" if canary else ""
                )
                self._post_event("Applied", f"applied {all_written} of {len(self._kept)} children {applied}", False)
            if pruned:
                self._post_event("Pruned", f"removed what is no longer needed: {', '.join(pruned)}", False)
            self._announced = True
        recorded = _announce(context.statuses.update(self.namespace, self.name, self._record), self._post_event)
        if recorded is not None and recorded.plan(self.deployment.spec.model.name, self._canary) != self.planned:
            _reconcile_again(context, self.namespace, self.name)
            return
        # Workload events that came while this pass ran were skipped, as this generation (or
        # this target) was not recorded yet: look at the workloads once more now that it is.
        for child in (self._workload, *self._canaries):
            workload_changed(context, self.namespace, self.name, child)

    def _apply(self, children: list[Object]) -> int:
        try:
            return apply_children(self._context.kube, children, compare=self._occasion is not Occasion.CREATED)
        except ChildConflict as conflict:
            _report_conflict(self._context, self.namespace, self.name, conflict, self.deployment.generation)
            raise

    def _record(self, status: ModelDeploymentStatus, now: ModelDeployment) -> None:
        generation = self.deployment.generation
        if now.generation != generation:
            return  # the spec changed since: the pass of the new generation records
        reference = self.deployment.spec.model
        subject = (
            f"alias {reference.alias!r} of {reference.name}"
            if reference.alias
            else f"the fixed version of {reference.name}"
        )
        status.record_resolved(self.wanted, subject, generation)
        status.record_applied(
            generation, endpoint(self.deployment) if self.deployment.spec.mode is Mode.online else None
        )
        status.begin_rollout(self.wanted, generation, self._canary)
        # Read here, so a retry after a conflicting write (a child's event) reads the newest seen.
        cache = self._context.cache
        _observe_workload(self._context, status, self.deployment, cache.newest_child(self._workload))
        for child in self._canaries:
            _observe_canary(status, self.deployment, cache.newest_child(child))


def uses_canary(deployment: ModelDeployment) -> bool:
    return deployment.spec.mode is Mode.online and deployment.spec.rollout.strategy is RolloutStrategy.Canary


def _pinned(deployment: ModelDeployment, status: ModelDeploymentStatus) -> ResolvedModel | None:
    """The version status records, when the alias is not to be followed."""
    if deployment.spec.rollout.track or not deployment.spec.model.alias:
        return None
    return status.rendered(deployment.spec.model.name)


def _report_conflict(
    context: OperatorContext, namespace: str, name: str, conflict: ChildConflict, generation: int | None
) -> None:
    """Ready=False naming the object in the way, and a Warning the first time."""
    changed = context.statuses.update(
        namespace, name, lambda status, _: status.record_conflict(str(conflict), generation)
    )
    if changed is not None and changed[0].condition(READY) != changed[1].condition(READY):
        context.poster(namespace, name)(CHILD_CONFLICT, str(conflict), True)


def _reconcile_again(context: OperatorContext, namespace: str, name: str) -> None:
    """A pass on a fresh copy, after status changed what is to be rendered (a rollback, a
    canary promoted or ended), which may leave a canary to remove."""
    body = context.cache.newest(API_VERSION, KIND, namespace, name, fresh=True)
    if body is not None:
        reconcile(context, body, Occasion.RECHECK)


def follow_alias(context: OperatorContext, body: Object) -> None:
    """Asks the registry where the alias points now (an answer shared by every resource
    polling the same model within one interval) and rolls out a version it moved to."""
    deployment = parse_manifest(body, check_rules=False)
    status = ModelDeploymentStatus.of(body)
    if status.observed_generation != deployment.generation or status.model_version is None:
        return  # the reconcile of this generation is still to record; it resolves the alias itself
    reference, rollout = deployment.spec.model, deployment.spec.rollout
    moved = context.registry.resolve(
        reference, deployment.namespace, asked_after=time.monotonic() - rollout.poll_interval_seconds
    )
    if moved.version in (status.model_version, status.target_version, status.failed_version):
        return
    post_event = context.poster(cast(str, deployment.namespace), deployment.name, deployment.uid)
    post_event(
        "AliasMoved",
        f"alias {reference.alias!r} of {reference.name} moved from version {status.model_version} to {moved.version}",
        False,
    )
    reconcile(context, body, Occasion.CHANGED)


def workload_changed(context: OperatorContext, namespace: str, name: str, workload: Object) -> None:
    """Recomputes Ready and Progressing, and the progress of a rollout, from a child
    workload that changed, if it is the workload of the ModelDeployment's current mode.

    The workload is read on each try at the status, after the ModelDeployment is, as the
    newest seen (`cache`): of two writers racing (a reconcile pass and an event's late
    catching up), the one that writes last then saw the newest workload its watch had
    delivered, whatever version an event carried; a newer one brings an event of its own."""

    def observe(status: ModelDeploymentStatus, deployment: ModelDeployment) -> None:
        if status.observed_generation != deployment.generation:
            return  # the reconcile of this generation has not recorded yet; it reads the workload itself
        if (live := context.cache.newest_child(workload)) is None:
            return  # gone: its deletion is handled on its own
        owned = any(
            ref.get("uid") == deployment.uid and ref.get("kind") == KIND
            for ref in live["metadata"].get("ownerReferences", [])
        )
        labels = live["metadata"].get("labels", {})
        if owned and labels.get(MODE_LABEL) == deployment.spec.mode.value:
            if labels.get(TRACK_LABEL) == CANARY:
                _observe_canary(status, deployment, live)
            else:
                _observe_workload(context, status, deployment, live)

    _update_and_follow(context, namespace, name, observe)


def settle_rollout(context: OperatorContext, namespace: str, name: str) -> None:
    """Acts on what time and annotations say of a rollout in progress: a canary due for
    promotion, a rollout aborted by hand."""

    def settle(status: ModelDeploymentStatus, deployment: ModelDeployment) -> None:
        canary_seconds = deployment.spec.rollout.canary.duration_seconds if uses_canary(deployment) else None
        status.settle_rollout(deployment.annotations, canary_seconds, deployment.generation, datetime.now(UTC))

    _update_and_follow(context, namespace, name, settle)


def _update_and_follow(context: OperatorContext, namespace: str, name: str, mutate: Mutation) -> None:
    """Updates status, announces the change, and renders again if it changed what runs."""
    replanned = False

    def mutate_and_compare(status: ModelDeploymentStatus, deployment: ModelDeployment) -> None:
        nonlocal replanned
        model_name, canary = deployment.spec.model.name, uses_canary(deployment)
        before = status.plan(model_name, canary)
        mutate(status, deployment)
        replanned = status.plan(model_name, canary) != before

    changed = context.statuses.update(namespace, name, mutate_and_compare)
    if _announce(changed, context.poster(namespace, name)) is not None and replanned:
        _reconcile_again(context, namespace, name)


def child_deleted(context: OperatorContext, namespace: str, name: str, child: Object) -> None:
    """Re-creates what was deleted from outside, from the version status has pinned (a
    deleted workload must not silently change version). Children pruned by a mode switch
    or an edit, or collected with their ModelDeployment or namespace, stay deleted."""
    body = context.cache.newest(API_VERSION, KIND, namespace, name, fresh=True)
    if body is None:
        return
    deployment = parse_manifest(body, check_rules=False)
    status = ModelDeploymentStatus.of(body)
    if (
        body["metadata"].get("deletionTimestamp")
        or status.model_version is None
        or child["metadata"].get("labels", {}).get(MODE_LABEL) != deployment.spec.mode.value
    ):
        return
    planned = status.plan(deployment.spec.model.name, uses_canary(deployment))
    model, canary = cast(ResolvedModel, planned[0]), planned[1]  # status records a serving version
    try:
        written = apply_children(context.kube, render(deployment, model, context.settings.render, canary))
    except ForbiddenError:
        return  # the namespace is being deleted
    except ChildConflict as conflict:
        _report_conflict(context, namespace, name, conflict, deployment.generation)
        return
    if written:
        context.poster(namespace, name, deployment.uid)(
            "Restored",
            f"re-created {child['kind']}/{child['metadata']['name']}, deleted from outside, at version {model.version}",
            True,
        )


def _observe_workload(
    context: OperatorContext, status: ModelDeploymentStatus, deployment: ModelDeployment, workload: Object | None
) -> None:
    mode = deployment.spec.mode
    key = workloads.stopped_pods_key(workload)
    stopped = context.cache.stop_message(*key) if key is not None else None
    status.observe_workload(
        workloads.report(mode, workload, stopped),
        deployment.generation,
        deployment.spec.rollout.auto_rollback,
        batch=mode is Mode.batch,
    )


def _observe_canary(status: ModelDeploymentStatus, deployment: ModelDeployment, canary: Object | None) -> None:
    report = workloads.report(Mode.online, canary) if canary is not None else None
    status.observe_canary(report, deployment.spec.rollout.auto_rollback, deployment.generation)


def _announce(changed: Change | None, post_event: PostEvent) -> ModelDeploymentStatus | None:
    """Posts the Events a status change is worth; returns the status now recorded."""
    if changed is None:
        return None
    before, after = changed
    for news in after.news_since(before):
        post_event(*news)
    return after
