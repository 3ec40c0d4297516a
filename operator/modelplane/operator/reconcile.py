"""One level-based pass over a ModelDeployment: resolve its model, render its children,
apply them, prune what its mode no longer needs, and report in status. Every step is
idempotent with deterministic names, so a pass cut short by a crash is safe to repeat."""

from __future__ import annotations

from collections.abc import Callable

from modelplane.operator.apply import apply_children, owned_children, prune_children
from modelplane.operator.manifest import parse_manifest
from modelplane.operator.registry import RegistryError, resolve
from modelplane.operator.render import ResolvedModel, render
from modelplane.operator.render.common import MODE_LABEL
from modelplane.operator.render.online import endpoint
from modelplane.operator.settings import OperatorSettings
from modelplane.operator.status import (
    MODEL_RESOLVED, READY, Observed, condition, set_condition, update_status, workload_conditions,
)

# post_event(reason, message, warning) records a Kubernetes Event on the ModelDeployment.
PostEvent = Callable[[str, str, bool], None]
# Ready reasons worth a Warning; the rest (not ready *yet*) are Normal.
FAILURES = {"ProgressDeadlineExceeded", "JobFailed"}


def reconcile(body: dict, settings: OperatorSettings, post_event: PostEvent) -> ResolvedModel:
    deployment = parse_manifest(body)
    namespace, name = deployment.namespace, deployment.name
    reference = deployment.spec.model
    try:
        model = resolve(reference, settings.render.registry_uri)
    except RegistryError as error:
        # Existing children keep serving the version they run; only the condition says so.
        update_status(namespace, name, lambda status, _: set_condition(
            status, Observed(MODEL_RESOLVED, "False", error.reason, str(error)), deployment.generation))
        raise
    children = render(deployment, model, settings.render)
    written = apply_children(children)
    pruned = prune_children(namespace, name, deployment.uid, children)
    if written:
        post_event("Applied", f"applied {written} of {len(children)} children for version {model.version}", False)
    if pruned:
        post_event("Pruned", f"removed what mode {deployment.spec.mode.value} no longer needs: {', '.join(pruned)}", False)

    def record(status: dict, _: dict) -> None:
        wanted = f"alias {reference.alias!r}" if reference.alias else "the fixed version"
        set_condition(status, Observed(MODEL_RESOLVED, "True", "Resolved",
                                       f"{wanted} of {model.name} is version {model.version}"), deployment.generation)
        status.update(observedGeneration=deployment.generation, modelVersion=model.version,
                      modelRunId=model.run_id, modelSource=model.source)
        status["endpoint"] = endpoint(deployment) if deployment.spec.mode.value == "online" else None

    update_status(namespace, name, record)
    refresh_status(namespace, name, post_event)
    return model


def refresh_status(namespace: str, name: str, post_event: PostEvent) -> None:
    """Recomputes Ready and Progressing from the live children of the current mode."""
    def observe(status: dict, body: dict) -> None:
        mode = body["spec"]["mode"]
        children = [child for child in owned_children(namespace, name, body["metadata"]["uid"])
                    if child["metadata"].get("labels", {}).get(MODE_LABEL) == mode]
        observed, times = workload_conditions(mode, children)
        for entry in observed:
            set_condition(status, entry, body["metadata"].get("generation"))
        for key in ("lastScheduleTime", "lastSuccessfulTime"):
            status[key] = times.get(key, status.get(key) if mode == "batch" else None)
        for key in [key for key, value in status.items() if value is None]:
            del status[key]

    changed = update_status(namespace, name, observe)
    if changed is None:
        return
    before, after = (condition(side, READY) or {} for side in changed)
    if before.get("status") != after.get("status"):
        post_event(f"Ready{after['status']}", f"{after['reason']}: {after['message']}", after["reason"] in FAILURES)
