"""Moving a ModelDeployment from the version it serves to the one its model reference
names, as status records it: which version to render, when a rollout is done, and when
it has failed and goes back. Pure functions of status and the live workload; the
reconciler does the writing.

Status holds the serving version (`modelVersion`, with its run and source), the version
rolling out (`targetVersion`, likewise), and a version that failed its rollout
(`failedVersion`), which is not tried again until the reference names another one. A
canary adds when it became Ready (`canaryReadyTime`) and whether it was promoted
(`canaryPromoted`): until then the target runs only on the canary's share of replicas.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from modelplane.operator.objects import Object
from modelplane.operator.render.common import MODEL_VERSION_LABEL, ResolvedModel
from modelplane.operator.status import READY, Observed, condition, now, set_condition, workload_conditions

ROLLED_OUT = "RolledOut"
SERVING, TARGET = "model", "target"
FAILED_VERSION = "failedVersion"
CANARY_READY_TIME, CANARY_PROMOTED = "canaryReadyTime", "canaryPromoted"
# Manual control: the value names the target version, so a stale annotation never acts
# on a later rollout.
PROMOTE_ANNOTATION = "modelplane.io/promote-canary"
ABORT_ANNOTATION = "modelplane.io/abort-rollout"


def recorded(status: Object, name: str, role: str = SERVING) -> ResolvedModel | None:
    """The serving (or target) version status records, None if there is none."""
    version = status.get(f"{role}Version")
    if version is None:
        return None
    return ResolvedModel(name, version, status.get(f"{role}RunId"), status.get(f"{role}Source"))


def rendered(status: Object, name: str) -> ResolvedModel | None:
    """The version the workload is meant to run now: the one rolling out, else the serving one."""
    return recorded(status, name, TARGET) or recorded(status, name, SERVING)


def plan(status: Object, name: str, canary: bool) -> tuple[ResolvedModel | None, ResolvedModel | None]:
    """(stable, canary): the versions to render. Under a canary strategy, the target runs
    beside the serving version until the canary is promoted."""
    target = recorded(status, name, TARGET)
    if canary and target is not None and not status.get(CANARY_PROMOTED):
        return recorded(status, name, SERVING), target
    return rendered(status, name), None


def _record(status: Object, role: str, model: ResolvedModel | None) -> None:
    if role == TARGET:  # a canary belongs to one target
        status.pop(CANARY_READY_TIME, None)
        status.pop(CANARY_PROMOTED, None)
    for key, value in (
        ("Version", model and model.version),
        ("RunId", model and model.run_id),
        ("Source", model and model.source),
    ):
        if value is None:
            status.pop(f"{role}{key}", None)
        else:
            status[f"{role}{key}"] = value


def choose(status: Object, wanted: ResolvedModel) -> ResolvedModel:
    """The version to render: `wanted`, unless it is the one that failed its rollout."""
    serving = recorded(status, wanted.name)
    if serving is not None and wanted.version != serving.version and wanted.version == status.get(FAILED_VERSION):
        return serving
    return wanted


def begin(status: Object, wanted: ResolvedModel, generation: int | None, canary: bool = False) -> None:
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
            set_condition(
                status,
                Observed(
                    ROLLED_OUT,
                    "True",
                    "RolloutCancelled",
                    f"version {target} is no longer wanted; version {serving.version} stays",
                ),
                generation,
            )
        if serving != chosen:  # the same version, newly described by the registry
            _record(status, SERVING, chosen)
    elif chosen.version != status.get("targetVersion"):
        _record(status, TARGET, chosen)
        if canary:
            started = Observed(
                ROLLED_OUT,
                "False",
                "CanaryRunning",
                f"running version {chosen.version} as a canary beside version {serving.version}",
            )
        else:
            started = Observed(
                ROLLED_OUT,
                "False",
                "RollingOut",
                f"rolling out version {chosen.version} to replace version {serving.version}",
            )
        set_condition(status, started, generation)


def _template_version(workload: Object) -> str | None:
    spec = workload.get("spec") or {}
    if workload["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return (spec.get("template", {}).get("metadata", {}).get("labels") or {}).get(MODEL_VERSION_LABEL)


def advance(status: Object, workload: Object | None, auto_rollback: bool, generation: int | None) -> None:
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
        set_condition(
            status,
            Observed(ROLLED_OUT, "True", "RolloutComplete", f"version {target.version} replaced version {previous}"),
            generation,
        )
    elif ready.get("reason") == "ProgressDeadlineExceeded" and auto_rollback:
        _fail(
            status,
            "RolledBack",
            f"version {target.version} did not become Ready in time ({ready.get('message')})",
            generation,
        )


def _fail(status: Object, reason: str, why: str, generation: int | None) -> None:
    """Back to the serving version; the target is not tried again until the alias moves."""
    failed, serving = status["targetVersion"], status["modelVersion"]
    status[FAILED_VERSION] = failed
    _record(status, TARGET, None)
    set_condition(
        status,
        Observed(
            ROLLED_OUT,
            "False",
            reason,
            f"{why}; back to version {serving}, and version {failed} is not tried again until the alias moves",
        ),
        generation,
    )


def advance_canary(status: Object, canary: Object | None, auto_rollback: bool, generation: int | None) -> None:
    """Follows the canary Deployment: when it became Ready (its duration counts from then,
    and starts over if it stops being Ready), or that it missed its progress deadline."""
    target = status.get("targetVersion")
    if target is None or status.get(CANARY_PROMOTED) or canary is None or _template_version(canary) != target:
        return
    ready = next(entry for entry in workload_conditions("online", canary)[0] if entry.type == READY)
    if ready.status == "True" and CANARY_READY_TIME not in status:
        status[CANARY_READY_TIME] = now()
        set_condition(
            status,
            Observed(
                ROLLED_OUT,
                "False",
                "CanaryReady",
                f"the canary of version {target} is Ready beside version {status['modelVersion']}: {ready.message}",
            ),
            generation,
        )
    elif ready.status != "True":
        status.pop(CANARY_READY_TIME, None)
        if ready.reason == "ProgressDeadlineExceeded" and auto_rollback:
            _fail(
                status,
                "RolledBack",
                f"the canary of version {target} did not become Ready in time ({ready.message})",
                generation,
            )


def settle(
    status: Object, annotations: Mapping[str, str], canary_seconds: int | None, generation: int | None, at: datetime
) -> None:
    """Acts on time and manual control: aborts a rollout annotated with its version;
    promotes a canary (`canary_seconds` is its duration; None: not a canary) that stayed
    Ready that long, or that is annotated with its version."""
    target = status.get("targetVersion")
    if target is None:
        return
    if annotations.get(ABORT_ANNOTATION) == target:
        _fail(
            status,
            "RolloutAborted",
            f"the rollout of version {target} was aborted ({ABORT_ANNOTATION}={target})",
            generation,
        )
        return
    if canary_seconds is None or status.get(CANARY_PROMOTED):
        return
    if annotations.get(PROMOTE_ANNOTATION) == target:
        why = f"promoted by {PROMOTE_ANNOTATION}={target}"
    elif (ready_time := status.get(CANARY_READY_TIME)) and at >= _parse(ready_time) + timedelta(seconds=canary_seconds):
        why = f"Ready for {canary_seconds} s"
    else:
        return
    status[CANARY_PROMOTED] = True
    set_condition(
        status,
        Observed(
            ROLLED_OUT,
            "False",
            "CanaryPromoted",
            f"the canary of version {target} was {why}: rolling it out to every replica "
            f"to replace version {status['modelVersion']}",
        ),
        generation,
    )


def _parse(timestamp: str) -> datetime:
    return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def news(before: Object, after: Object) -> list[tuple[str, str, bool]]:
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
    rolled_out = (condition(after, ROLLED_OUT) or {}).get("message", "")
    if after.get(CANARY_READY_TIME) and not before.get(CANARY_READY_TIME):
        found.append(("CanaryReady", rolled_out, False))
    if after.get(CANARY_PROMOTED) and not before.get(CANARY_PROMOTED):
        found.append(("CanaryPromoted", rolled_out, False))
    if now_serving != serving:
        found.append(("RolledOut", f"version {now_serving} replaced version {serving}", False))
    if now_failed not in (None, failed):
        found.append(("RolledBack", rolled_out, True))
    elif target is not None and now_target is None and now_serving == serving:
        found.append(("RolloutCancelled", f"version {target} is no longer wanted; version {serving} stays", False))
    return found
