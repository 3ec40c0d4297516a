"""Moving a ModelDeployment from the version it serves to the one its model reference
names, as status records it: which version to render, when a rollout is done, and when
it has failed and goes back. Pure functions of status and the live workload; the
reconciler does the writing.

Status holds the serving version (`modelVersion`, with its run and source), the version
rolling out (`targetVersion`, likewise), and a version that failed its rollout
(`failedVersion`), which is not tried again until the reference names another one.
"""

from __future__ import annotations

from modelplane.operator.render.common import MODEL_VERSION_LABEL, ResolvedModel
from modelplane.operator.status import READY, Observed, condition, set_condition

ROLLED_OUT = "RolledOut"
SERVING, TARGET = "model", "target"
FAILED_VERSION = "failedVersion"


def recorded(status: dict, name: str, role: str = SERVING) -> ResolvedModel | None:
    """The serving (or target) version status records, None if there is none."""
    version = status.get(f"{role}Version")
    if version is None:
        return None
    return ResolvedModel(name, version, status.get(f"{role}RunId"), status.get(f"{role}Source"))


def rendered(status: dict, name: str) -> ResolvedModel | None:
    """The version the workload is meant to run now: the one rolling out, else the serving one."""
    return recorded(status, name, TARGET) or recorded(status, name, SERVING)


def _record(status: dict, role: str, model: ResolvedModel | None) -> None:
    for key, value in (("Version", model and model.version), ("RunId", model and model.run_id),
                       ("Source", model and model.source)):
        if value is None:
            status.pop(f"{role}{key}", None)
        else:
            status[f"{role}{key}"] = value


def choose(status: dict, wanted: ResolvedModel) -> ResolvedModel:
    """The version to render: `wanted`, unless it is the one that failed its rollout."""
    serving = recorded(status, wanted.name)
    if serving is not None and wanted.version != serving.version and wanted.version == status.get(FAILED_VERSION):
        return serving
    return wanted


def begin(status: dict, wanted: ResolvedModel, generation: int | None) -> None:
    """Records the version `choose` picked for `wanted`: the serving one at creation, else
    the target of a rollout, or no target when it is the serving one again."""
    chosen = choose(status, wanted)
    serving = recorded(status, wanted.name)
    if wanted.version != status.get(FAILED_VERSION):
        status.pop(FAILED_VERSION, None)  # the reference moved on from the failed version
    if serving is None:
        _record(status, SERVING, chosen)
    elif chosen.version == serving.version:
        if (target := status.get("targetVersion")) is not None:
            _record(status, TARGET, None)
            set_condition(status, Observed(ROLLED_OUT, "True", "RolloutCancelled",
                                           f"version {target} is no longer wanted; version {serving.version} "
                                           "stays"), generation)
        if serving != chosen:  # the same version, newly described by the registry
            _record(status, SERVING, chosen)
    elif chosen.version != status.get("targetVersion"):
        _record(status, TARGET, chosen)
        set_condition(status, Observed(ROLLED_OUT, "False", "RollingOut",
                                       f"rolling out version {chosen.version} to replace version "
                                       f"{serving.version}"), generation)


def _template_version(workload: dict) -> str | None:
    spec = workload.get("spec") or {}
    if workload["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return (spec.get("template", {}).get("metadata", {}).get("labels") or {}).get(MODEL_VERSION_LABEL)


def advance(status: dict, workload: dict | None, auto_rollback: bool, generation: int | None) -> None:
    """Ends a rollout from the workload's Ready condition (already observed into status):
    done once the workload runs the target and is Ready; failed, and back to the serving
    version, once it missed its progress deadline."""
    target = recorded(status, "", TARGET)
    if target is None or workload is None or _template_version(workload) != target.version:
        return
    ready, previous = condition(status, READY) or {}, status["modelVersion"]
    if ready.get("status") == "True":
        _record(status, SERVING, target)
        _record(status, TARGET, None)
        set_condition(status, Observed(ROLLED_OUT, "True", "RolloutComplete",
                                       f"version {target.version} replaced version {previous}"), generation)
    elif ready.get("reason") == "ProgressDeadlineExceeded" and auto_rollback:
        status[FAILED_VERSION] = target.version
        _record(status, TARGET, None)
        set_condition(status, Observed(ROLLED_OUT, "False", "RolledBack",
                                       f"version {target.version} did not become Ready in time "
                                       f"({ready.get('message')}); back to version {previous}, and version "
                                       f"{target.version} is not tried again until the alias moves"), generation)


def news(before: dict, after: dict) -> list[tuple[str, str, bool]]:
    """The Events a status change is worth, (reason, message, warning): a rollout that
    started, finished, was rolled back or cancelled. One write may hold a whole rollout."""
    serving, target, failed = (before.get(key) for key in ("modelVersion", "targetVersion", FAILED_VERSION))
    now_serving, now_target, now_failed = (after.get(key) for key in ("modelVersion", "targetVersion", FAILED_VERSION))
    if serving is None:
        return []  # creation, not a rollout
    started = now_target if now_target not in (None, target) else None
    if now_serving != serving and now_serving != target:
        started = now_serving
    found = []
    if started is not None:
        found.append(("RolloutStarted", f"rolling out version {started} to replace version {serving}", False))
    if now_serving != serving:
        found.append(("RolledOut", f"version {now_serving} replaced version {serving}", False))
    if now_failed not in (None, failed):
        found.append(("RolledBack", (condition(after, ROLLED_OUT) or {}).get("message", ""), True))
    elif target is not None and now_target is None and now_serving == serving:
        found.append(("RolloutCancelled", f"version {target} is no longer wanted; version {serving} stays", False))
    return found
