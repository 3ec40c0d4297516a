"""Status: conditions computed from what the children report. Pure: `status_store`
writes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from modelplane.operator.objects import Object

READY = "Ready"
MODEL_RESOLVED = "ModelResolved"
PROGRESSING = "Progressing"
# Ready's reason while the workload's model container exits with a message (a model
# refused at load, an input file that cannot be read): the message is the container's.
CONTAINER_FAILED = "ContainerFailed"


@dataclass(frozen=True)
class Observed:
    """One condition's worth of observation, before it is stamped with times."""

    type: str
    status: str  # "True", "False" or "Unknown"
    reason: str
    message: str = ""


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(status: Object, observed: Observed, generation: int | None) -> None:
    """Sets one condition, keeping its lastTransitionTime unless its status flips."""
    conditions = status.setdefault("conditions", [])
    current = next((c for c in conditions if c["type"] == observed.type), None)
    entry = {
        "type": observed.type,
        "status": observed.status,
        "reason": observed.reason,
        "message": observed.message,
        "observedGeneration": generation,
        "lastTransitionTime": current["lastTransitionTime"]
        if current and current["status"] == observed.status
        else now(),
    }
    if current is None:
        conditions.append(entry)
    else:
        current.update(entry)


def condition(status: Object, type_: str) -> Object | None:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), None)


def _deployment_conditions(deployment: Object | None, stopped: str | None) -> list[Observed]:
    if deployment is None:
        return [
            Observed(READY, "False", "WorkloadMissing", "the Deployment does not exist yet"),
            Observed(PROGRESSING, "True", "Creating", "creating the Deployment"),
        ]
    spec, status = deployment.get("spec", {}), deployment.get("status") or {}
    wanted = spec.get("replicas", 1)
    available = status.get("availableReplicas") or 0
    updated = status.get("updatedReplicas") or 0
    counts = f"{available}/{wanted} replicas available, {updated} updated"
    # A deadline missed by an earlier template says nothing of the current one.
    current = (status.get("observedGeneration") or 0) >= deployment["metadata"].get("generation", 0)
    progressing = next((c for c in status.get("conditions") or [] if c["type"] == "Progressing"), None)
    if current and progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return [
            Observed(READY, "False", "ProgressDeadlineExceeded", progressing.get("message") or counts),
            Observed(PROGRESSING, "False", "ProgressDeadlineExceeded", progressing.get("message") or counts),
        ]
    rolled_out = current and updated >= wanted and available >= wanted and (status.get("replicas") or 0) <= wanted
    if rolled_out:
        reason = "ScaledToZero" if wanted == 0 else "MinimumReplicasAvailable"
        return [Observed(READY, "True", reason, counts), Observed(PROGRESSING, "False", "RolloutComplete", counts)]
    if stopped:
        return [
            Observed(READY, "False", CONTAINER_FAILED, stopped),
            Observed(PROGRESSING, "True", "RollingOut", counts),
        ]
    return [Observed(READY, "False", "ReplicasNotReady", counts), Observed(PROGRESSING, "True", "RollingOut", counts)]


def _job_conditions(job: Object | None, stopped: str | None) -> list[Observed]:
    if job is None:
        return [
            Observed(READY, "False", "WorkloadMissing", "the Job does not exist yet"),
            Observed(PROGRESSING, "True", "Creating", "creating the Job"),
        ]
    status = job.get("status") or {}
    done = {c["type"]: c for c in status.get("conditions") or [] if c.get("status") == "True"}
    shards = f"{status.get('succeeded') or 0}/{job['spec'].get('completions', 1)} shards succeeded"
    if "Complete" in done:
        return [Observed(READY, "True", "JobComplete", shards), Observed(PROGRESSING, "False", "JobComplete", shards)]
    if "Failed" in done:
        message = done["Failed"].get("message") or shards
        message = f"{message}; a shard said: {stopped}" if stopped else message
        return [Observed(READY, "False", "JobFailed", message), Observed(PROGRESSING, "False", "JobFailed", message)]
    if stopped:
        return [
            Observed(READY, "False", CONTAINER_FAILED, stopped),
            Observed(PROGRESSING, "True", "JobRunning", shards),
        ]
    return [Observed(READY, "False", "JobRunning", shards), Observed(PROGRESSING, "True", "JobRunning", shards)]


def _cronjob_conditions(cronjob: Object) -> list[Observed]:
    if cronjob["spec"].get("suspend"):
        return [
            Observed(READY, "False", "Suspended", "the schedule is suspended (spec.batch.suspend)"),
            Observed(PROGRESSING, "False", "Suspended", ""),
        ]
    return [
        Observed(READY, "True", "Scheduled", f"runs on schedule {cronjob['spec']['schedule']!r}"),
        Observed(PROGRESSING, "False", "Scheduled", ""),
    ]


def workload_conditions(
    mode: str, workload: Object | None, stopped: str | None = None
) -> tuple[list[Observed], Object]:
    """Ready and Progressing as the live workload of `mode` tells them (None: it does not
    exist yet), with `stopped`, why its pods' model container last exited, if it did; and
    the status fields it fills (batch run times)."""
    if mode in ("online", "streaming"):
        return _deployment_conditions(workload, stopped), {}
    if workload and workload["kind"] == "CronJob":
        cron_status = workload.get("status") or {}
        times = {
            key: cron_status.get(key) for key in ("lastScheduleTime", "lastSuccessfulTime") if cron_status.get(key)
        }
        return _cronjob_conditions(workload), times
    job_status = (workload or {}).get("status") or {}
    times = {"lastScheduleTime": job_status.get("startTime"), "lastSuccessfulTime": job_status.get("completionTime")}
    return _job_conditions(workload, stopped), {key: value for key, value in times.items() if value}
