"""One level-based pass over a ModelDeployment: resolve its model, render its children,
apply them, prune what its mode no longer needs, and report in status. Every step is
idempotent with deterministic names, so a pass cut short by a crash is safe to repeat."""

from __future__ import annotations

from collections.abc import Callable

from modelplane.operator import rollout
from modelplane.operator.apply import WORKLOAD_KINDS, apply_children, prune_children, read_child
from modelplane.operator.kube import ForbiddenError, NotFoundError, resource
from modelplane.operator.manifest import ModelDeployment, parse_manifest
from modelplane.operator.registry import RegistryError, resolve
from modelplane.operator.render import ResolvedModel, render
from modelplane.operator.render.common import MODE_LABEL
from modelplane.operator.render.online import endpoint
from modelplane.operator.settings import OperatorSettings
from modelplane.operator.spec import KIND
from modelplane.operator.status import (
    MODEL_RESOLVED, READY, Observed, condition, set_condition, update_status, workload_conditions,
)

# post_event(reason, message, warning) records a Kubernetes Event on the ModelDeployment.
PostEvent = Callable[[str, str, bool], None]
# Ready reasons worth a Warning; the rest (not ready *yet*) are Normal.
FAILURES = {"ProgressDeadlineExceeded", "JobFailed"}


def reconcile(body: dict, settings: OperatorSettings, post_event: PostEvent, prune: bool) -> ResolvedModel:
    """`prune` forces a look for leftovers even when nothing was written, as after a
    restart, when an earlier pass may have died between applying and pruning."""
    deployment = parse_manifest(body, check_rules=False)
    namespace, name = deployment.namespace, deployment.name
    reference = deployment.spec.model
    try:
        wanted = _pinned(deployment, body.get("status") or {}) or resolve(reference, settings.render.registry_uri)
    except RegistryError as error:
        # Existing children keep serving the version they run; only the condition says so.
        unresolved = Observed(MODEL_RESOLVED, "False", error.reason, str(error))
        update_status(namespace, name, lambda status, _: set_condition(status, unresolved, deployment.generation),
                      body)
        raise
    model = rollout.choose(body.get("status") or {}, wanted)
    children = render(deployment, model, settings.render)
    written = apply_children(children)
    pruned = prune_children(namespace, name, deployment.uid, children) if prune or written else []
    if written:
        post_event("Applied", f"applied {written} of {len(children)} children for version {model.version}", False)
    if pruned:
        post_event("Pruned", f"removed what mode {deployment.spec.mode.value} no longer needs: {', '.join(pruned)}", False)
    workload = next(child for child in children if child["kind"] in WORKLOAD_KINDS)

    def record(status: dict, _: dict) -> None:
        subject = f"alias {reference.alias!r}" if reference.alias else "the fixed version"
        resolved = f"{subject} of {model.name} is version {wanted.version}"
        if wanted.version != rollout.choose(status, wanted).version:
            resolved += f", which failed its rollout: version {status['modelVersion']} stays"
        set_condition(status, Observed(MODEL_RESOLVED, "True", "Resolved", resolved), deployment.generation)
        status["observedGeneration"] = deployment.generation
        rollout.begin(status, wanted, deployment.generation)
        status["endpoint"] = endpoint(deployment) if deployment.spec.mode.value == "online" else None
        # Read here, so a retry after a conflicting write (a child's event) reads it afresh.
        _observe_workload(status, deployment.spec.mode.value, read_child(workload), deployment.generation,
                          deployment.spec.rollout.auto_rollback)

    if _announce(update_status(namespace, name, record, body), post_event):
        return _reconcile_again(namespace, name, settings, post_event) or model
    # Workload events that came while this pass ran were skipped, as this generation was
    # not recorded yet: look at the workload once more now that it is.
    if (live := read_child(workload)) is not None:
        workload_changed(namespace, name, live, settings, post_event)
    return model


def _pinned(deployment: ModelDeployment, status: dict) -> ResolvedModel | None:
    """The version status records, when the alias is not to be followed."""
    if deployment.spec.rollout.track or not deployment.spec.model.alias:
        return None
    return rollout.rendered(status, deployment.spec.model.name)


def _reconcile_again(namespace: str, name: str, settings: OperatorSettings,
                     post_event: PostEvent) -> ResolvedModel | None:
    """A pass on a fresh copy, after status changed what is to be rendered (a rollback)."""
    try:
        body = resource().get(name=name, namespace=namespace).to_dict()
    except NotFoundError:
        return None
    return reconcile(body, settings, post_event, prune=False)


def follow_alias(body: dict, settings: OperatorSettings, post_event: PostEvent) -> None:
    """Asks the registry where the alias points now (an answer shared by every resource
    polling the same model within one interval) and rolls out a version it moved to."""
    deployment = parse_manifest(body, check_rules=False)
    status = body.get("status") or {}
    if status.get("observedGeneration") != deployment.generation or "modelVersion" not in status:
        return  # the reconcile of this generation is still to record; it resolves the alias itself
    reference, rollout_spec = deployment.spec.model, deployment.spec.rollout
    moved = resolve(reference, settings.render.registry_uri, max_age=rollout_spec.poll_interval_seconds)
    known = (status.get(key) for key in ("modelVersion", "targetVersion", rollout.FAILED_VERSION))
    if moved.version in known:
        return
    post_event("AliasMoved", f"alias {reference.alias!r} of {reference.name} moved from version "
                             f"{status['modelVersion']} to {moved.version}", False)
    reconcile(body, settings, post_event, prune=False)


def workload_changed(namespace: str, name: str, workload: dict, settings: OperatorSettings,
                     post_event: PostEvent) -> None:
    """Recomputes Ready and Progressing, and the progress of a rollout, from a child
    workload that just changed, if it is the workload of the ModelDeployment's current mode."""
    def observe(status: dict, body: dict) -> None:
        generation = body["metadata"].get("generation")
        if status.get("observedGeneration") != generation:
            return  # the reconcile of this generation has not recorded yet; it reads the workload itself
        mode = body["spec"]["mode"]
        owned = any(ref.get("uid") == body["metadata"]["uid"] and ref.get("kind") == KIND
                    for ref in workload["metadata"].get("ownerReferences", []))
        if owned and workload["metadata"].get("labels", {}).get(MODE_LABEL) == mode:
            auto_rollback = (body["spec"].get("rollout") or {}).get("autoRollback", True)
            _observe_workload(status, mode, workload, generation, auto_rollback)

    if _announce(update_status(namespace, name, observe), post_event):
        _reconcile_again(namespace, name, settings, post_event)


def child_deleted(namespace: str, name: str, child: dict, settings: OperatorSettings, post_event: PostEvent) -> None:
    """Re-creates what was deleted from outside, from the version status has pinned (a
    deleted workload must not silently change version). Children pruned by a mode switch
    or an edit, or collected with their ModelDeployment or namespace, stay deleted."""
    try:
        body = resource().get(name=name, namespace=namespace).to_dict()
    except NotFoundError:
        return
    status = body.get("status") or {}
    mode = body["spec"]["mode"]
    if (body["metadata"].get("deletionTimestamp") or "modelVersion" not in status
            or child["metadata"].get("labels", {}).get(MODE_LABEL) != mode):
        return
    deployment = parse_manifest(body, check_rules=False)
    model = rollout.rendered(status, deployment.spec.model.name)
    try:
        written = apply_children(render(deployment, model, settings.render))
    except ForbiddenError:
        return  # the namespace is being deleted
    if written:
        post_event("Restored", f"re-created {child['kind']}/{child['metadata']['name']}, deleted from outside, "
                               f"at version {model.version}", True)


def _observe_workload(status: dict, mode: str, workload: dict | None, generation: int | None,
                      auto_rollback: bool) -> None:
    observed, times = workload_conditions(mode, workload)
    for entry in observed:
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


def _announce(changed: tuple[dict, dict] | None, post_event: PostEvent) -> bool:
    """Posts the Events a status change is worth; True if it rolled back, which the
    workload must follow."""
    if changed is None:
        return False
    _announce_ready_change(*changed, post_event)
    for reason, message, warning in rollout.news(*changed):
        post_event(reason, message, warning)
    before, after = changed
    return after.get(rollout.FAILED_VERSION) not in (None, before.get(rollout.FAILED_VERSION))


def _announce_ready_change(before_status: dict, after_status: dict, post_event: PostEvent) -> None:
    before, after = condition(before_status, READY) or {}, condition(after_status, READY) or {}
    if not after or before.get("status") == after.get("status"):
        return
    if not before and after["status"] != "True" and after["reason"] not in FAILURES:
        return  # a new workload not ready *yet* is no news; its becoming Ready is
    post_event(f"Ready{after['status']}", f"{after['reason']}: {after['message']}", after["reason"] in FAILURES)
