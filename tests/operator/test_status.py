"""Conditions from what the workloads report: Ready and Progressing as a Deployment, a
Job or a CronJob tells them, and a condition's transition time kept until its status
flips. Pure: no test bed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modelplane.operator.status import Observed, condition, set_condition, workload_conditions

READY_AND_PROGRESSING = ("Ready", "Progressing")


def _deployment(
    replicas: int | None = 2,
    generation: int = 3,
    observed_generation: int = 3,
    available: int = 0,
    updated: int = 0,
    total: int | None = None,
    progressing: dict | None = None,
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
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "iris", "generation": generation},
        "spec": {} if replicas is None else {"replicas": replicas},
        "status": status,
    }


def _job(completions: int = 2, **status) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "iris-1a2b3c4d"},
        "spec": {"completions": completions, "parallelism": completions},
        "status": status,
    }


def _cronjob(suspend: bool = False, **status) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "iris"},
        "spec": {"schedule": "*/5 * * * *", "suspend": suspend},
        "status": status,
    }


def _said(observed: list[Observed]) -> dict[str, tuple[str, str, str]]:
    """(status, reason, message) of Ready and Progressing."""
    by_type = {entry.type: (entry.status, entry.reason, entry.message) for entry in observed}
    assert tuple(by_type) == READY_AND_PROGRESSING
    return by_type


@pytest.mark.parametrize("mode", ["online", "streaming"])
def test_a_deployment_not_made_yet_is_missing(mode: str):
    observed, times = workload_conditions(mode, None)

    assert _said(observed) == {
        "Ready": ("False", "WorkloadMissing", "the Deployment does not exist yet"),
        "Progressing": ("True", "Creating", "creating the Deployment"),
    }
    assert times == {}


def test_a_deployment_rolling_out_is_not_ready_and_says_how_far_it_got():
    observed, times = workload_conditions("online", _deployment(available=1, updated=2))

    message = "1/2 replicas available, 2 updated"
    assert _said(observed) == {
        "Ready": ("False", "ReplicasNotReady", message),
        "Progressing": ("True", "RollingOut", message),
    }
    assert times == {}


def test_a_deployment_rolled_out_is_ready():
    observed, _ = workload_conditions("streaming", _deployment(available=2, updated=2))

    message = "2/2 replicas available, 2 updated"
    assert _said(observed) == {
        "Ready": ("True", "MinimumReplicasAvailable", message),
        "Progressing": ("False", "RolloutComplete", message),
    }


def test_a_deployment_without_replicas_in_its_spec_wants_one():
    """An autoscaled Deployment is rendered without replicas: the API server's default of 1 holds."""
    observed, _ = workload_conditions("online", _deployment(replicas=None, available=1, updated=1))

    assert _said(observed)["Ready"] == ("True", "MinimumReplicasAvailable", "1/1 replicas available, 1 updated")


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
    observed, _ = workload_conditions("online", deployment)

    assert _said(observed)["Ready"][:2] == ("False", "ReplicasNotReady")
    assert _said(observed)["Progressing"][:2] == ("True", "RollingOut")


def test_a_deployment_scaled_to_zero_is_ready():
    observed, _ = workload_conditions("online", _deployment(replicas=0, available=0, updated=0))

    message = "0/0 replicas available, 0 updated"
    assert _said(observed) == {
        "Ready": ("True", "ScaledToZero", message),
        "Progressing": ("False", "RolloutComplete", message),
    }


DEADLINE = {
    "status": "False",
    "reason": "ProgressDeadlineExceeded",
    "message": 'ReplicaSet "iris-5d8f" has timed out progressing.',
}


def test_a_deployment_past_its_progress_deadline_says_so_with_its_message():
    observed, _ = workload_conditions("online", _deployment(available=1, updated=2, progressing=DEADLINE))

    assert _said(observed) == {
        "Ready": ("False", "ProgressDeadlineExceeded", DEADLINE["message"]),
        "Progressing": ("False", "ProgressDeadlineExceeded", DEADLINE["message"]),
    }


def test_a_progress_deadline_without_a_message_reports_the_counts():
    silent = {key: value for key, value in DEADLINE.items() if key != "message"}

    observed, _ = workload_conditions("online", _deployment(available=1, updated=2, progressing=silent))

    assert _said(observed)["Ready"] == ("False", "ProgressDeadlineExceeded", "1/2 replicas available, 2 updated")


def test_a_progress_deadline_missed_by_an_earlier_template_says_nothing_of_the_current_one():
    deployment = _deployment(generation=4, observed_generation=3, available=1, updated=2, progressing=DEADLINE)

    observed, _ = workload_conditions("online", deployment)

    assert _said(observed) == {
        "Ready": ("False", "ReplicasNotReady", "1/2 replicas available, 2 updated"),
        "Progressing": ("True", "RollingOut", "1/2 replicas available, 2 updated"),
    }


def test_a_progressing_deployment_is_not_past_its_deadline():
    progressing = {"status": "True", "reason": "ReplicaSetUpdated", "message": "progressing"}

    observed, _ = workload_conditions("online", _deployment(available=1, updated=2, progressing=progressing))

    assert _said(observed)["Ready"][:2] == ("False", "ReplicasNotReady")


STOPPED = "cannot load models:/iris/2: the model needs --allow-pickle"


def test_a_deployment_whose_model_container_stopped_with_a_message_says_why():
    observed, _ = workload_conditions("online", _deployment(available=1, updated=2), STOPPED)

    assert _said(observed) == {
        "Ready": ("False", "ContainerFailed", STOPPED),
        "Progressing": ("True", "RollingOut", "1/2 replicas available, 2 updated"),
    }


def test_a_stop_message_does_not_outweigh_a_rolled_out_deployment_or_its_missed_deadline():
    rolled_out, _ = workload_conditions("online", _deployment(available=2, updated=2), STOPPED)
    late, _ = workload_conditions("online", _deployment(available=1, updated=2, progressing=DEADLINE), STOPPED)

    assert _said(rolled_out)["Ready"][:2] == ("True", "MinimumReplicasAvailable")
    assert _said(late)["Ready"] == ("False", "ProgressDeadlineExceeded", DEADLINE["message"])


def test_a_job_not_made_yet_is_missing():
    observed, times = workload_conditions("batch", None)

    assert _said(observed) == {
        "Ready": ("False", "WorkloadMissing", "the Job does not exist yet"),
        "Progressing": ("True", "Creating", "creating the Job"),
    }
    assert times == {}


STARTED, COMPLETED = "2026-12-02T10:00:00Z", "2026-12-02T10:04:30Z"


def test_a_running_job_is_not_ready_and_its_start_is_the_last_schedule_time():
    observed, times = workload_conditions("batch", _job(active=2, succeeded=1, startTime=STARTED))

    assert _said(observed) == {
        "Ready": ("False", "JobRunning", "1/2 shards succeeded"),
        "Progressing": ("True", "JobRunning", "1/2 shards succeeded"),
    }
    assert times == {"lastScheduleTime": STARTED}


def test_a_job_not_started_has_no_times():
    observed, times = workload_conditions("batch", {**_job(), "status": None})

    assert _said(observed)["Ready"] == ("False", "JobRunning", "0/2 shards succeeded")
    assert times == {}


def test_a_complete_job_is_ready_and_its_completion_is_the_last_successful_time():
    job = _job(
        succeeded=2,
        startTime=STARTED,
        completionTime=COMPLETED,
        conditions=[{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}],
    )

    observed, times = workload_conditions("batch", job)

    assert _said(observed) == {
        "Ready": ("True", "JobComplete", "2/2 shards succeeded"),
        "Progressing": ("False", "JobComplete", "2/2 shards succeeded"),
    }
    assert times == {"lastScheduleTime": STARTED, "lastSuccessfulTime": COMPLETED}


def test_a_job_condition_that_is_not_true_has_not_happened():
    job = _job(succeeded=1, startTime=STARTED, conditions=[{"type": "Complete", "status": "False"}])

    observed, _ = workload_conditions("batch", job)

    assert _said(observed)["Ready"][:2] == ("False", "JobRunning")


BACKOFF = "Job has reached the specified backoff limit"
FAILED = [{"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True", "message": BACKOFF}]


def test_a_failed_job_says_what_its_controller_said():
    observed, times = workload_conditions("batch", _job(failed=4, startTime=STARTED, conditions=FAILED))

    assert _said(observed) == {
        "Ready": ("False", "JobFailed", BACKOFF),
        "Progressing": ("False", "JobFailed", BACKOFF),
    }
    assert times == {"lastScheduleTime": STARTED}


def test_a_failed_job_adds_what_a_shard_said_when_it_stopped():
    unreadable = "cannot read /data/in/a.csv: line 3 has 5 fields, expected 4"

    observed, _ = workload_conditions("batch", _job(failed=4, conditions=FAILED), unreadable)

    message = f"{BACKOFF}; a shard said: {unreadable}"
    assert _said(observed) == {
        "Ready": ("False", "JobFailed", message),
        "Progressing": ("False", "JobFailed", message),
    }


def test_a_failed_job_without_a_message_reports_the_shards():
    silent = [{"type": "Failed", "status": "True"}]

    observed, _ = workload_conditions("batch", _job(succeeded=1, failed=4, conditions=silent))

    assert _said(observed)["Ready"] == ("False", "JobFailed", "1/2 shards succeeded")


def test_a_running_job_whose_shard_stopped_with_a_message_says_why():
    observed, _ = workload_conditions("batch", _job(active=1, startTime=STARTED), STOPPED)

    assert _said(observed) == {
        "Ready": ("False", "ContainerFailed", STOPPED),
        "Progressing": ("True", "JobRunning", "0/2 shards succeeded"),
    }


def test_a_suspended_schedule_is_not_ready():
    observed, times = workload_conditions("batch", _cronjob(suspend=True))

    assert _said(observed) == {
        "Ready": ("False", "Suspended", "the schedule is suspended (spec.batch.suspend)"),
        "Progressing": ("False", "Suspended", ""),
    }
    assert times == {}


def test_a_schedule_is_ready_and_reports_its_runs_times():
    cronjob = _cronjob(lastScheduleTime=STARTED, lastSuccessfulTime=COMPLETED, active=[])

    observed, times = workload_conditions("batch", cronjob)

    assert _said(observed) == {
        "Ready": ("True", "Scheduled", "runs on schedule '*/5 * * * *'"),
        "Progressing": ("False", "Scheduled", ""),
    }
    assert times == {"lastScheduleTime": STARTED, "lastSuccessfulTime": COMPLETED}


def test_a_schedule_that_has_not_run_has_no_times():
    assert workload_conditions("batch", _cronjob())[1] == {}
    assert workload_conditions("batch", _cronjob(lastScheduleTime=STARTED))[1] == {"lastScheduleTime": STARTED}


LONG_AGO = "2020-01-01T00:00:00Z"


def _stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def test_a_new_condition_is_stamped_now():
    before = datetime.now(UTC).replace(microsecond=0)
    status: dict = {}

    set_condition(status, Observed("Ready", "False", "ReplicasNotReady", "0/1"), 1)

    written = condition(status, "Ready")
    assert {key: value for key, value in written.items() if key != "lastTransitionTime"} == {
        "type": "Ready",
        "status": "False",
        "reason": "ReplicasNotReady",
        "message": "0/1",
        "observedGeneration": 1,
    }
    assert before <= _stamp(written["lastTransitionTime"]) <= datetime.now(UTC)


def test_a_condition_keeps_its_transition_time_while_its_status_stays():
    status = {
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "ReplicasNotReady",
                "message": "0/1",
                "observedGeneration": 1,
                "lastTransitionTime": LONG_AGO,
            }
        ]
    }

    set_condition(status, Observed("Ready", "False", "ProgressDeadlineExceeded", "timed out"), 2)

    assert status["conditions"] == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": "timed out",
            "observedGeneration": 2,
            "lastTransitionTime": LONG_AGO,
        }
    ]


def test_a_condition_whose_status_flips_is_stamped_anew_and_the_others_stay():
    resolved = {
        "type": "ModelResolved",
        "status": "True",
        "reason": "Resolved",
        "message": "",
        "observedGeneration": 1,
        "lastTransitionTime": LONG_AGO,
    }
    status = {"conditions": [resolved.copy(), {**resolved, "type": "Ready", "status": "False", "reason": "Waiting"}]}
    before = datetime.now(UTC).replace(microsecond=0)

    set_condition(status, Observed("Ready", "True", "MinimumReplicasAvailable", "1/1"), 1)

    assert [entry["type"] for entry in status["conditions"]] == ["ModelResolved", "Ready"]
    assert condition(status, "ModelResolved") == resolved
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == ("True", "MinimumReplicasAvailable", "1/1")
    assert _stamp(ready["lastTransitionTime"]) >= before
