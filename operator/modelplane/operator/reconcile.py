"""One level-based pass over a ModelDeployment: resolve its model, render its children,
apply them, prune what its mode no longer needs, and report in status. Every step is
idempotent with deterministic names, so a pass cut short by a crash is safe to repeat."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from typing import cast

from modelplane.operator import cache, rollout
from modelplane.operator.apply import ChildConflict, apply_children, child_reference, prune_children
from modelplane.operator.events import PostEvent
from modelplane.operator.kube import ForbiddenError, NotFoundError, resource
from modelplane.operator.manifest import ModelDeployment, parse_manifest
from modelplane.operator.objects import Object
from modelplane.operator.registry import RegistryError, resolve
from modelplane.operator.render import ResolvedModel, render
from modelplane.operator.render.common import (
    DEPLOYMENT_LABEL,
    GUARD_KINDS,
    MODE_LABEL,
    MODEL_VERSION_LABEL,
    WORKLOAD_KINDS,
)
from modelplane.operator.render.online import CANARY, TRACK_LABEL, endpoint
from modelplane.operator.settings import OperatorSettings
from modelplane.operator.spec import KIND, Mode, RolloutStrategy
from modelplane.operator.status import (
    CONTAINER_FAILED,
    MODEL_RESOLVED,
    READY,
    Observed,
    condition,
    set_condition,
    workload_conditions,
)
from modelplane.operator.status_store import update_status

# Ready reasons worth a Warning; the rest (not ready *yet*) are Normal.
FAILURES = {"ProgressDeadlineExceeded", "JobFailed", CONTAINER_FAILED}
# Ready's reason while a child's name is taken by an object this ModelDeployment does not
# control: it stays until a pass of the generation applies every child.
CHILD_CONFLICT = "ChildConflict"


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


def reconcile(body: Object, settings: OperatorSettings, post_event: PostEvent, occasion: Occasion) -> None:
    """One whole pass."""
    apply_pass(body, settings, post_event, occasion)()


def apply_pass(
    body: Object, settings: OperatorSettings, post_event: PostEvent, occasion: Occasion, seen_at: float | None = None
) -> Callable[[], None]:
    """The first half of a pass, which makes the workloads what the spec asks for; returns
    the second half, to run at once or to queue behind other resources' first halves:
    it applies the rest of the children (a Service, an autoscaler), prunes what the mode no
    longer needs, records the pass in status and looks at the workloads once more.

    Under a burst of creations, a Service created beside each Deployment costs the control
    plane most of its time (addresses, endpoints for every pod): Deployments first let
    every model start loading while the rest catches up.

    An alias is resolved by an answer of the registry asked after `seen_at` (of
    `time.monotonic`), when the change to apply was seen; by default, now."""
    deployment = parse_manifest(body, check_rules=False)
    # Namespaced: every ModelDeployment the API server holds has a namespace (and a uid).
    namespace, name = cast(str, deployment.namespace), deployment.name
    reference = deployment.spec.model
    try:
        # A pinned version is not looked up, but its pods still reach the registry.
        settings.registries.uri_of(reference)
        wanted = _pinned(deployment, body.get("status") or {}) or resolve(
            reference, settings.registries, namespace, seen_at
        )
    except RegistryError as error:
        # Existing children keep serving the version they run; only the condition says so.
        unresolved = Observed(MODEL_RESOLVED, "False", error.reason, str(error))
        update_status(namespace, name, lambda status, _: set_condition(status, unresolved, deployment.generation), body)
        raise
    canary_strategy = _canary(deployment)
    # Rendered from status as this pass will record it, so what runs matches what it says.
    upcoming = copy.deepcopy(body.get("status") or {})
    rollout.begin(upcoming, wanted, deployment.generation, canary_strategy)
    planned = rollout.plan(upcoming, reference.name, canary_strategy)
    model, canary = cast(ResolvedModel, planned[0]), planned[1]  # `begin` recorded a serving version
    children = render(deployment, model, settings.render, canary)
    # A workload's guards (its NetworkPolicy) before it, so that none of its pods runs unguarded.
    first = [child for kinds in (GUARD_KINDS, WORKLOAD_KINDS) for child in children if child["kind"] in kinds]
    compare = occasion is not Occasion.CREATED
    try:
        written = apply_children(first, compare=compare)
    except ChildConflict as conflict:
        _report_conflict(namespace, name, conflict, deployment.generation, post_event)
        raise
    # What the second half needs, and no more: it may wait in a queue behind many others.
    companions = [child for child in children if child not in first]
    kept = [child_reference(child) for child in children]
    workload, *canaries = (child for child in kept if child["kind"] in WORKLOAD_KINDS)
    generation, mode, uid = deployment.generation, deployment.spec.mode.value, cast(str, deployment.uid)
    auto_rollback = deployment.spec.rollout.auto_rollback
    served_at = endpoint(deployment) if mode == "online" else None
    subject = f"alias {reference.alias!r} of {model.name}" if reference.alias else f"the fixed version of {model.name}"
    applied = f"for version {model.version}" + (f" and its canary of version {canary.version}" if canary else "")
    announced = False  # a second half tried again announces nothing twice

    def record(status: Object, body: Object) -> None:
        if body["metadata"].get("generation") != generation:
            return  # the spec changed since: the pass of the new generation records
        resolved = f"{subject} is version {wanted.version}"
        if wanted.version != rollout.choose(status, wanted).version:
            resolved += f", which failed its rollout: version {status['modelVersion']} stays"
        set_condition(status, Observed(MODEL_RESOLVED, "True", "Resolved", resolved), generation)
        status["observedGeneration"] = generation
        if (condition(status, READY) or {}).get("reason") == CHILD_CONFLICT:
            status["conditions"].remove(condition(status, READY))  # every child is applied now
        rollout.begin(status, wanted, generation, canary_strategy)
        status["endpoint"] = served_at
        # Read here, so a retry after a conflicting write (a child's event) reads the newest seen.
        _observe_workload(status, mode, cache.newest_child(workload), generation, auto_rollback)
        for child in canaries:
            rollout.advance_canary(status, cache.newest_child(child), auto_rollback, generation)

    def finish_pass() -> None:
        nonlocal announced
        try:
            all_written = written + apply_children(companions, compare=compare)
        except ChildConflict as conflict:
            _report_conflict(namespace, name, conflict, generation, post_event)
            raise
        look_for_leftovers = occasion is Occasion.RECHECK or (all_written and occasion is Occasion.CHANGED)
        pruned = (
            prune_children(namespace, name, uid, kept, settings.render.scaled_objects) if look_for_leftovers else []
        )
        if not announced:
            if all_written:
                post_event("Applied", f"applied {all_written} of {len(kept)} children {applied}", False)
            if pruned:
                post_event("Pruned", f"removed what is no longer needed: {', '.join(pruned)}", False)
            announced = True
        recorded = _announce(update_status(namespace, name, record), post_event)
        if recorded is not None and rollout.plan(recorded, reference.name, canary_strategy) != planned:
            _reconcile_again(namespace, name, settings, post_event)
            return
        # Workload events that came while this pass ran were skipped, as this generation (or
        # this target) was not recorded yet: look at the workloads once more now that it is.
        for child in (workload, *canaries):
            workload_changed(namespace, name, child, settings, post_event)

    return finish_pass


def _report_conflict(
    namespace: str, name: str, conflict: ChildConflict, generation: int | None, post_event: PostEvent
) -> None:
    """Ready=False naming the object in the way, and a Warning the first time."""
    observed = Observed(READY, "False", CHILD_CONFLICT, str(conflict))
    changed = update_status(namespace, name, lambda status, _: set_condition(status, observed, generation))
    if changed is not None and condition(changed[0], READY) != condition(changed[1], READY):
        post_event(CHILD_CONFLICT, str(conflict), True)


def _canary(deployment: ModelDeployment) -> bool:
    return deployment.spec.mode is Mode.online and deployment.spec.rollout.strategy is RolloutStrategy.Canary


def _pinned(deployment: ModelDeployment, status: Object) -> ResolvedModel | None:
    """The version status records, when the alias is not to be followed."""
    if deployment.spec.rollout.track or not deployment.spec.model.alias:
        return None
    return rollout.rendered(status, deployment.spec.model.name)


def _reconcile_again(namespace: str, name: str, settings: OperatorSettings, post_event: PostEvent) -> None:
    """A pass on a fresh copy, after status changed what is to be rendered (a rollback, a
    canary promoted or ended), which may leave a canary to remove."""
    try:
        body = resource().get(name=name, namespace=namespace).to_dict()
    except NotFoundError:
        return
    reconcile(body, settings, post_event, Occasion.RECHECK)


def follow_alias(body: Object, settings: OperatorSettings, post_event: PostEvent) -> None:
    """Asks the registry where the alias points now (an answer shared by every resource
    polling the same model within one interval) and rolls out a version it moved to."""
    deployment = parse_manifest(body, check_rules=False)
    status = body.get("status") or {}
    if status.get("observedGeneration") != deployment.generation or "modelVersion" not in status:
        return  # the reconcile of this generation is still to record; it resolves the alias itself
    reference, rollout_spec = deployment.spec.model, deployment.spec.rollout
    moved = resolve(
        reference,
        settings.registries,
        deployment.namespace,
        asked_after=time.monotonic() - rollout_spec.poll_interval_seconds,
    )
    known = (status.get(key) for key in ("modelVersion", "targetVersion", rollout.FAILED_VERSION))
    if moved.version in known:
        return
    post_event(
        "AliasMoved",
        f"alias {reference.alias!r} of {reference.name} moved from version {status['modelVersion']} to {moved.version}",
        False,
    )
    reconcile(body, settings, post_event, Occasion.CHANGED)


def workload_changed(
    namespace: str, name: str, workload: Object, settings: OperatorSettings, post_event: PostEvent
) -> None:
    """Recomputes Ready and Progressing, and the progress of a rollout, from a child
    workload that changed, if it is the workload of the ModelDeployment's current mode.

    The workload is read on each try at the status, after the ModelDeployment is, as the
    newest seen (`cache`): of two writers racing (a reconcile pass and an event's late
    catching up), the one that writes last then saw the newest workload its watch had
    delivered, whatever version an event carried; a newer one brings an event of its own."""

    def observe(status: Object, body: Object) -> None:
        generation = body["metadata"].get("generation")
        if status.get("observedGeneration") != generation:
            return  # the reconcile of this generation has not recorded yet; it reads the workload itself
        if (live := cache.newest_child(workload)) is None:
            return  # gone: its deletion is handled on its own
        mode = body["spec"]["mode"]
        owned = any(
            ref.get("uid") == body["metadata"]["uid"] and ref.get("kind") == KIND
            for ref in live["metadata"].get("ownerReferences", [])
        )
        labels = live["metadata"].get("labels", {})
        if owned and labels.get(MODE_LABEL) == mode:
            auto_rollback = (body["spec"].get("rollout") or {}).get("autoRollback", True)
            if labels.get(TRACK_LABEL) == CANARY:
                rollout.advance_canary(status, live, auto_rollback, generation)
            else:
                _observe_workload(status, mode, live, generation, auto_rollback)

    _update_and_follow(namespace, name, observe, settings, post_event)


def settle_rollout(namespace: str, name: str, settings: OperatorSettings, post_event: PostEvent) -> None:
    """Acts on what time and annotations say of a rollout in progress: a canary due for
    promotion, a rollout aborted by hand."""

    def settle(status: Object, body: Object) -> None:
        deployment = parse_manifest(body, check_rules=False)
        canary_seconds = deployment.spec.rollout.canary.duration_seconds if _canary(deployment) else None
        rollout.settle(
            status, body["metadata"].get("annotations") or {}, canary_seconds, deployment.generation, datetime.now(UTC)
        )

    _update_and_follow(namespace, name, settle, settings, post_event)


def _update_and_follow(
    namespace: str,
    name: str,
    mutate: Callable[[Object, Object], None],
    settings: OperatorSettings,
    post_event: PostEvent,
) -> None:
    """Updates status, announces the change, and renders again if it changed what runs."""
    replanned = False

    def mutate_and_compare(status: Object, body: Object) -> None:
        nonlocal replanned
        deployment = parse_manifest(body, check_rules=False)
        model_name, canary = deployment.spec.model.name, _canary(deployment)
        before = rollout.plan(status, model_name, canary)
        mutate(status, body)
        replanned = rollout.plan(status, model_name, canary) != before

    if _announce(update_status(namespace, name, mutate_and_compare), post_event) is not None and replanned:
        _reconcile_again(namespace, name, settings, post_event)


def child_deleted(namespace: str, name: str, child: Object, settings: OperatorSettings, post_event: PostEvent) -> None:
    """Re-creates what was deleted from outside, from the version status has pinned (a
    deleted workload must not silently change version). Children pruned by a mode switch
    or an edit, or collected with their ModelDeployment or namespace, stay deleted."""
    try:
        body = resource().get(name=name, namespace=namespace).to_dict()
    except NotFoundError:
        return
    status = body.get("status") or {}
    mode = body["spec"]["mode"]
    if (
        body["metadata"].get("deletionTimestamp")
        or "modelVersion" not in status
        or child["metadata"].get("labels", {}).get(MODE_LABEL) != mode
    ):
        return
    deployment = parse_manifest(body, check_rules=False)
    planned = rollout.plan(status, deployment.spec.model.name, _canary(deployment))
    model, canary = cast(ResolvedModel, planned[0]), planned[1]  # status records a serving version
    try:
        written = apply_children(render(deployment, model, settings.render, canary))
    except ForbiddenError:
        return  # the namespace is being deleted
    except ChildConflict as conflict:
        _report_conflict(namespace, name, conflict, deployment.generation, post_event)
        return
    if written:
        post_event(
            "Restored",
            f"re-created {child['kind']}/{child['metadata']['name']}, deleted from outside, at version {model.version}",
            True,
        )


def _observe_workload(
    status: Object, mode: str, workload: Object | None, generation: int | None, auto_rollback: bool
) -> None:
    observed, times = workload_conditions(mode, workload, _stop_message(workload))
    conflicted = (condition(status, READY) or {}).get("reason") == CHILD_CONFLICT
    for entry in observed:
        if not (conflicted and entry.type == READY):
            set_condition(status, entry, generation)
    rollout.advance(status, workload, auto_rollback, generation)
    for key in ("lastScheduleTime", "lastSuccessfulTime"):
        value = times.get(key, status.get(key) if mode == "batch" else None)
        if value is None:
            status.pop(key, None)
        else:
            status[key] = value
    for key in [key for key, value in status.items() if value is None]:
        del status[key]


def _stop_message(workload: Object | None) -> str | None:
    """Why the pods of the workload's model version last stopped, if they said (see `cache`)."""
    if workload is None:
        return None
    spec = workload.get("spec") or {}
    template = ((spec.get("jobTemplate") or {}).get("spec") or spec).get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if DEPLOYMENT_LABEL not in labels or MODEL_VERSION_LABEL not in labels:
        return None
    return cache.stop_message(workload["metadata"]["namespace"], labels[DEPLOYMENT_LABEL], labels[MODEL_VERSION_LABEL])


def _announce(changed: tuple[Object, Object] | None, post_event: PostEvent) -> Object | None:
    """Posts the Events a status change is worth; returns the status now recorded."""
    if changed is None:
        return None
    _announce_ready_change(*changed, post_event)
    for reason, message, warning in rollout.news(*changed):
        post_event(reason, message, warning)
    return changed[1]


def _announce_ready_change(before_status: Object, after_status: Object, post_event: PostEvent) -> None:
    before, after = condition(before_status, READY) or {}, condition(after_status, READY) or {}
    if not after:
        return
    # A failure is news even when Ready was False already: a Job is not Ready while it runs.
    failed = after["reason"] in FAILURES and before.get("reason") != after["reason"]
    if before.get("status") == after["status"] and not failed:
        return
    if not before and after["status"] != "True" and not failed:
        return  # a new workload not ready *yet* is no news; its becoming Ready is
    post_event(f"Ready{after['status']}", f"{after['reason']}: {after['message']}", after["reason"] in FAILURES)
