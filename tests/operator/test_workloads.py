"""What the live workloads report: Ready and Progressing as a Deployment, a Job or a
CronJob tells them, the model version its pod template runs, and a batch's last runs.
Pure: no test bed."""

from __future__ import annotations

import pytest

from modelplane.operator import workloads
from modelplane.operator.render.common import DEPLOYMENT_LABEL, MODEL_VERSION_LABEL
from modelplane.operator.spec import Mode
from modelplane.operator.status import PROGRESSING, READY, WorkloadReport


def _labels(version: str | None) -> dict:
    return {"metadata": {"labels": {MODEL_VERSION_LABEL: version}}} if version is not None else {}


def _deployment(
    replicas: int | None = 2,
    generation: int = 3,
    observed_generation: int = 3,
    available: int = 0,
    updated: int = 0,
    total: int | None = None,
    progressing: dict | None = None,
    version: str | None = None,
) -> dict:
    """A Deployment as the API server reports it."""
    status: dict = {
        "observedGeneration": observed_generation,
        "availableReplicas": available,
        "updatedReplicas": updated,
        "replicas": updated if total is None else total,
    }
    if progressing is not None:
        status["conditions"] = [{"type": "Available", "status": "False"}, {"type": "Progressing", **progressing}]
    spec: dict = {} if replicas is None else {"replicas": replicas}
    if version is not None:
        spec["template"] = _labels(version)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "iris", "generation": generation},
        "spec": spec,
        "status": status,
    }


def _job(completions: int = 2, version: str | None = None, **status) -> dict:
    spec: dict = {"completions": completions, "parallelism": completions}
    if version is not None:
        spec["template"] = _labels(version)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "iris-1a2b3c4d"},
        "spec": spec,
        "status": status,
    }


def _cronjob(suspend: bool = False, version: str | None = None, **status) -> dict:
    spec: dict = {"schedule": "*/5 * * * *", "suspend": suspend}
    if version is not None:
        spec["jobTemplate"] = {"spec": {"template": _labels(version)}}
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "iris"},
        "spec": spec,
        "status": status,
    }


def _said(report: WorkloadReport) -> dict[str, tuple[str, str, str]]:
    """(status, reason, message) of Ready and Progressing."""
    assert (report.ready.type, report.progressing.type) == (READY, PROGRESSING)
    return {entry.type: (entry.status, entry.reason, entry.message) for entry in (report.ready, report.progressing)}


def _times(report: WorkloadReport) -> dict[str, str]:
    """The batch run times the report fills, by their status field."""
    times = {"lastScheduleTime": report.last_schedule_time, "lastSuccessfulTime": report.last_successful_time}
    return {key: value for key, value in times.items() if value is not None}


@pytest.mark.parametrize("mode", [Mode.online, Mode.streaming])
def test_a_deployment_not_made_yet_is_missing(mode: Mode):
    report = workloads.report(mode, None)

    assert _said(report) == {
        "Ready": ("False", "WorkloadMissing", "the Deployment does not exist yet"),
        "Progressing": ("True", "Creating", "creating the Deployment"),
    }
    assert _times(report) == {}
    assert report.version is None


def test_a_deployment_rolling_out_is_not_ready_and_says_how_far_it_got():
    report = workloads.report(Mode.online, _deployment(available=1, updated=2))

    message = "1/2 replicas available, 2 updated"
    assert _said(report) == {
        "Ready": ("False", "ReplicasNotReady", message),
        "Progressing": ("True", "RollingOut", message),
    }
    assert _times(report) == {}


def test_a_deployment_rolled_out_is_ready():
    report = workloads.report(Mode.streaming, _deployment(available=2, updated=2))

    message = "2/2 replicas available, 2 updated"
    assert _said(report) == {
        "Ready": ("True", "MinimumReplicasAvailable", message),
        "Progressing": ("False", "RolloutComplete", message),
    }


def test_a_deployment_without_replicas_in_its_spec_wants_one():
    """An autoscaled Deployment is rendered without replicas: the API server's default of 1 holds."""
    report = workloads.report(Mode.online, _deployment(replicas=None, available=1, updated=1))

    assert _said(report)["Ready"] == ("True", "MinimumReplicasAvailable", "1/1 replicas available, 1 updated")


@pytest.mark.parametrize(
    "deployment",
    [
        _deployment(generation=4, observed_generation=3, available=2, updated=2),
        _deployment(available=2, updated=2, total=3),
        _deployment(available=2, updated=1),
    ],
    ids=["its-controller-has-not-seen-the-new-template", "old-pods-still-running", "old-pods-still-available"],
)
def test_a_deployment_is_not_rolled_out_until_only_pods_of_its_current_template_run(deployment: dict):
    report = workloads.report(Mode.online, deployment)

    assert _said(report)["Ready"][:2] == ("False", "ReplicasNotReady")
    assert _said(report)["Progressing"][:2] == ("True", "RollingOut")


def test_a_deployment_scaled_to_zero_is_ready():
    report = workloads.report(Mode.online, _deployment(replicas=0, available=0, updated=0))

    message = "0/0 replicas available, 0 updated"
    assert _said(report) == {
        "Ready": ("True", "ScaledToZero", message),
        "Progressing": ("False", "RolloutComplete", message),
    }


DEADLINE = {
    "status": "False",
    "reason": "ProgressDeadlineExceeded",
    "message": 'ReplicaSet "iris-5d8f" has timed out progressing.',
}


def test_a_deployment_past_its_progress_deadline_says_so_with_its_message():
    report = workloads.report(Mode.online, _deployment(available=1, updated=2, progressing=DEADLINE))

    assert _said(report) == {
        "Ready": ("False", "ProgressDeadlineExceeded", DEADLINE["message"]),
        "Progressing": ("False", "ProgressDeadlineExceeded", DEADLINE["message"]),
    }


def test_a_progress_deadline_without_a_message_reports_the_counts():
    silent = {key: value for key, value in DEADLINE.items() if key != "message"}

    report = workloads.report(Mode.online, _deployment(available=1, updated=2, progressing=silent))

    assert _said(report)["Ready"] == ("False", "ProgressDeadlineExceeded", "1/2 replicas available, 2 updated")


def test_a_progress_deadline_missed_by_an_earlier_template_says_nothing_of_the_current_one():
    deployment = _deployment(generation=4, observed_generation=3, available=1, updated=2, progressing=DEADLINE)

    report = workloads.report(Mode.online, deployment)

    assert _said(report) == {
        "Ready": ("False", "ReplicasNotReady", "1/2 replicas available, 2 updated"),
        "Progressing": ("True", "RollingOut", "1/2 replicas available, 2 updated"),
    }


def test_a_progressing_deployment_is_not_past_its_deadline():
    progressing = {"status": "True", "reason": "ReplicaSetUpdated", "message": "progressing"}

    report = workloads.report(Mode.online, _deployment(available=1, updated=2, progressing=progressing))

    assert _said(report)["Ready"][:2] == ("False", "ReplicasNotReady")


STOPPED = "cannot load models:/iris/2: the model needs --allow-pickle"


def test_a_deployment_whose_model_container_stopped_with_a_message_says_why():
    report = workloads.report(Mode.online, _deployment(available=1, updated=2), STOPPED)

    assert _said(report) == {
        "Ready": ("False", "ContainerFailed", STOPPED),
        "Progressing": ("True", "RollingOut", "1/2 replicas available, 2 updated"),
    }


def test_a_stop_message_does_not_outweigh_a_rolled_out_deployment_or_its_missed_deadline():
    rolled_out = workloads.report(Mode.online, _deployment(available=2, updated=2), STOPPED)
    late = workloads.report(Mode.online, _deployment(available=1, updated=2, progressing=DEADLINE), STOPPED)

    assert _said(rolled_out)["Ready"][:2] == ("True", "MinimumReplicasAvailable")
    assert _said(late)["Ready"] == ("False", "ProgressDeadlineExceeded", DEADLINE["message"])


def test_a_job_not_made_yet_is_missing():
    report = workloads.report(Mode.batch, None)

    assert _said(report) == {
        "Ready": ("False", "WorkloadMissing", "the Job does not exist yet"),
        "Progressing": ("True", "Creating", "creating the Job"),
    }
    assert _times(report) == {}
    assert report.version is None


STARTED, COMPLETED = "2026-12-02T10:00:00Z", "2026-12-02T10:04:30Z"


def test_a_running_job_is_not_ready_and_its_start_is_the_last_schedule_time():
    report = workloads.report(Mode.batch, _job(active=2, succeeded=1, startTime=STARTED))

    assert _said(report) == {
        "Ready": ("False", "JobRunning", "1/2 shards succeeded"),
        "Progressing": ("True", "JobRunning", "1/2 shards succeeded"),
    }
    assert _times(report) == {"lastScheduleTime": STARTED}


def test_a_job_not_started_has_no_times():
    report = workloads.report(Mode.batch, {**_job(), "status": None})

    assert _said(report)["Ready"] == ("False", "JobRunning", "0/2 shards succeeded")
    assert _times(report) == {}


def test_a_complete_job_is_ready_and_its_completion_is_the_last_successful_time():
    job = _job(
        succeeded=2,
        startTime=STARTED,
        completionTime=COMPLETED,
        conditions=[{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}],
    )

    report = workloads.report(Mode.batch, job)

    assert _said(report) == {
        "Ready": ("True", "JobComplete", "2/2 shards succeeded"),
        "Progressing": ("False", "JobComplete", "2/2 shards succeeded"),
    }
    assert _times(report) == {"lastScheduleTime": STARTED, "lastSuccessfulTime": COMPLETED}


def test_a_job_condition_that_is_not_true_has_not_happened():
    job = _job(succeeded=1, startTime=STARTED, conditions=[{"type": "Complete", "status": "False"}])

    report = workloads.report(Mode.batch, job)

    assert _said(report)["Ready"][:2] == ("False", "JobRunning")


BACKOFF = "Job has reached the specified backoff limit"
FAILED = [{"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True", "message": BACKOFF}]


def test_a_failed_job_says_what_its_controller_said():
    report = workloads.report(Mode.batch, _job(failed=4, startTime=STARTED, conditions=FAILED))

    assert _said(report) == {
        "Ready": ("False", "JobFailed", BACKOFF),
        "Progressing": ("False", "JobFailed", BACKOFF),
    }
    assert _times(report) == {"lastScheduleTime": STARTED}


def test_a_failed_job_adds_what_a_shard_said_when_it_stopped():
    unreadable = "cannot read /data/in/a.csv: line 3 has 5 fields, expected 4"

    report = workloads.report(Mode.batch, _job(failed=4, conditions=FAILED), unreadable)

    message = f"{BACKOFF}; a shard said: {unreadable}"
    assert _said(report) == {
        "Ready": ("False", "JobFailed", message),
        "Progressing": ("False", "JobFailed", message),
    }


def test_a_failed_job_without_a_message_reports_the_shards():
    silent = [{"type": "Failed", "status": "True"}]

    report = workloads.report(Mode.batch, _job(succeeded=1, failed=4, conditions=silent))

    assert _said(report)["Ready"] == ("False", "JobFailed", "1/2 shards succeeded")


def test_a_running_job_whose_shard_stopped_with_a_message_says_why():
    report = workloads.report(Mode.batch, _job(active=1, startTime=STARTED), STOPPED)

    assert _said(report) == {
        "Ready": ("False", "ContainerFailed", STOPPED),
        "Progressing": ("True", "JobRunning", "0/2 shards succeeded"),
    }


def test_a_suspended_schedule_is_not_ready():
    report = workloads.report(Mode.batch, _cronjob(suspend=True))

    assert _said(report) == {
        "Ready": ("False", "Suspended", "the schedule is suspended (spec.batch.suspend)"),
        "Progressing": ("False", "Suspended", ""),
    }
    assert _times(report) == {}


def test_a_schedule_is_ready_and_reports_its_runs_times():
    cronjob = _cronjob(lastScheduleTime=STARTED, lastSuccessfulTime=COMPLETED, active=[])

    report = workloads.report(Mode.batch, cronjob)

    assert _said(report) == {
        "Ready": ("True", "Scheduled", "runs on schedule '*/5 * * * *'"),
        "Progressing": ("False", "Scheduled", ""),
    }
    assert _times(report) == {"lastScheduleTime": STARTED, "lastSuccessfulTime": COMPLETED}


def test_a_schedule_that_has_not_run_has_no_times():
    assert _times(workloads.report(Mode.batch, _cronjob())) == {}
    assert _times(workloads.report(Mode.batch, _cronjob(lastScheduleTime=STARTED))) == {"lastScheduleTime": STARTED}


# The version a workload runs: its pod template's label.


@pytest.mark.parametrize(
    ("mode", "workload"),
    [
        (Mode.online, _deployment(version="2")),
        (Mode.streaming, _deployment(version="2")),
        (Mode.batch, _job(version="2")),
        (Mode.batch, _cronjob(version="2")),
    ],
    ids=["Deployment", "streaming-Deployment", "Job", "CronJob-in-its-Job-template"],
)
def test_a_workload_runs_the_version_its_pod_template_is_labelled_with(mode: Mode, workload: dict):
    assert workloads.template_version(workload) == "2"
    assert workloads.report(mode, workload).version == "2"


@pytest.mark.parametrize(
    "workload",
    [None, _deployment(), _job(), _cronjob(), {"kind": "Deployment", "metadata": {"name": "iris"}}],
    ids=["none", "Deployment", "Job", "CronJob", "no-spec"],
)
def test_a_workload_whose_template_is_not_labelled_runs_no_known_version(workload: dict | None):
    assert workloads.template_version(workload) is None


# Where the cache keeps why the workload's pods stopped.


def test_the_stopped_pods_key_is_the_namespace_deployment_and_version_of_the_template():
    labels = {DEPLOYMENT_LABEL: "iris", MODEL_VERSION_LABEL: "2"}
    template = {"metadata": {"labels": labels}}
    deployment = {"kind": "Deployment", "metadata": {"name": "iris", "namespace": "ml"}, "spec": {"template": template}}
    cronjob = {
        "kind": "CronJob",
        "metadata": {"name": "iris", "namespace": "ml"},
        "spec": {"jobTemplate": {"spec": {"template": template}}},
    }

    assert workloads.stopped_pods_key(deployment) == ("ml", "iris", "2")
    assert workloads.stopped_pods_key(cronjob) == ("ml", "iris", "2")


def test_a_workload_whose_template_does_not_say_has_no_stopped_pods_key():
    only_version = {**_deployment(version="2"), "metadata": {"name": "iris", "namespace": "ml"}}

    assert workloads.stopped_pods_key(None) is None
    assert workloads.stopped_pods_key(only_version) is None
