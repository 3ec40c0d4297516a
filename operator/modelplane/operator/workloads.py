"""What a live workload (Deployment, Job or CronJob) says of a ModelDeployment: its Ready
and Progressing, the model version its pod template runs, and a batch's last runs.
Pure functions of the objects the API server reports; `status` takes the reports in."""

from __future__ import annotations

from modelplane.operator.objects import Object
from modelplane.operator.render.common import DEPLOYMENT_LABEL, MODEL_VERSION_LABEL
from modelplane.operator.spec import Mode
from modelplane.operator.status import CONTAINER_FAILED, PROGRESSING, READY, Observed, WorkloadReport


def report(mode: Mode, workload: Object | None, stopped: str | None = None) -> WorkloadReport:
    """What the live workload of `mode` says (None: it does not exist yet), with
    `stopped`, why its pods' model container last exited, if it did."""
    if mode is not Mode.batch:
        ready, progressing = _deployment_conditions(workload, stopped)
        return WorkloadReport(ready, progressing, template_version(workload))
    if workload is not None and workload["kind"] == "CronJob":
        ready, progressing = _cronjob_conditions(workload)
        cron_status = workload.get("status") or {}
        return WorkloadReport(
            ready,
            progressing,
            template_version(workload),
            cron_status.get("lastScheduleTime") or None,
            cron_status.get("lastSuccessfulTime") or None,
        )
    ready, progressing = _job_conditions(workload, stopped)
    job_status = (workload or {}).get("status") or {}
    return WorkloadReport(
        ready,
        progressing,
        template_version(workload),
        job_status.get("startTime") or None,
        job_status.get("completionTime") or None,
    )


def _pod_template(workload: Object) -> Object:
    spec = workload.get("spec") or {}
    if workload.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template: Object = spec.get("template") or {}
    return template


def template_version(workload: Object | None) -> str | None:
    """The model version the workload's pods run, as its pod template's label says."""
    if workload is None:
        return None
    labels = (_pod_template(workload).get("metadata") or {}).get("labels") or {}
    version: str | None = labels.get(MODEL_VERSION_LABEL)
    return version


def stopped_pods_key(workload: Object | None) -> tuple[str, str, str] | None:
    """(namespace, ModelDeployment, model version) of the workload's pods, under which the
    cache keeps why they last stopped; None when its template does not say."""
    if workload is None:
        return None
    labels = (_pod_template(workload).get("metadata") or {}).get("labels") or {}
    if DEPLOYMENT_LABEL not in labels or MODEL_VERSION_LABEL not in labels:
        return None
    return workload["metadata"]["namespace"], labels[DEPLOYMENT_LABEL], labels[MODEL_VERSION_LABEL]


def _deployment_conditions(deployment: Object | None, stopped: str | None) -> tuple[Observed, Observed]:
    if deployment is None:
        return (
            Observed(READY, "False", "WorkloadMissing", "the Deployment does not exist yet"),
            Observed(PROGRESSING, "True", "Creating", "creating the Deployment"),
        )
    spec, status = deployment.get("spec", {}), deployment.get("status") or {}
    wanted = spec.get("replicas", 1)
    available = status.get("availableReplicas") or 0
    updated = status.get("updatedReplicas") or 0
    counts = f"{available}/{wanted} replicas available, {updated} updated"
    # A deadline missed by an earlier template says nothing of the current one.
    current = (status.get("observedGeneration") or 0) >= deployment["metadata"].get("generation", 0)
    progressing = next((c for c in status.get("conditions") or [] if c["type"] == "Progressing"), None)
    if current and progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return (
            Observed(READY, "False", "ProgressDeadlineExceeded", progressing.get("message") or counts),
            Observed(PROGRESSING, "False", "ProgressDeadlineExceeded", progressing.get("message") or counts),
        )
    rolled_out = current and updated >= wanted and available >= wanted and (status.get("replicas") or 0) <= wanted
    if rolled_out:
        reason = "ScaledToZero" if wanted == 0 else "MinimumReplicasAvailable"
        return Observed(READY, "True", reason, counts), Observed(PROGRESSING, "False", "RolloutComplete", counts)
    if stopped:
        return Observed(READY, "False", CONTAINER_FAILED, stopped), Observed(PROGRESSING, "True", "RollingOut", counts)
    return Observed(READY, "False", "ReplicasNotReady", counts), Observed(PROGRESSING, "True", "RollingOut", counts)


def _job_conditions(job: Object | None, stopped: str | None) -> tuple[Observed, Observed]:
    if job is None:
        return (
            Observed(READY, "False", "WorkloadMissing", "the Job does not exist yet"),
            Observed(PROGRESSING, "True", "Creating", "creating the Job"),
        )
    status = job.get("status") or {}
    done = {c["type"]: c for c in status.get("conditions") or [] if c.get("status") == "True"}
    shards = f"{status.get('succeeded') or 0}/{job['spec'].get('completions', 1)} shards succeeded"
    if "Complete" in done:
        return Observed(READY, "True", "JobComplete", shards), Observed(PROGRESSING, "False", "JobComplete", shards)
    if "Failed" in done:
        message = done["Failed"].get("message") or shards
        message = f"{message}; a shard said: {stopped}" if stopped else message
        return Observed(READY, "False", "JobFailed", message), Observed(PROGRESSING, "False", "JobFailed", message)
    if stopped:
        return Observed(READY, "False", CONTAINER_FAILED, stopped), Observed(PROGRESSING, "True", "JobRunning", shards)
    return Observed(READY, "False", "JobRunning", shards), Observed(PROGRESSING, "True", "JobRunning", shards)


def _cronjob_conditions(cronjob: Object) -> tuple[Observed, Observed]:
    if cronjob["spec"].get("suspend"):
        return (
            Observed(READY, "False", "Suspended", "the schedule is suspended (spec.batch.suspend)"),
            Observed(PROGRESSING, "False", "Suspended", ""),
        )
    return (
        Observed(READY, "True", "Scheduled", f"runs on schedule {cronjob['spec']['schedule']!r}"),
        Observed(PROGRESSING, "False", "Scheduled", ""),
    )
