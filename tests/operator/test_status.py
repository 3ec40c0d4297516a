"""A ModelDeployment's status and the one place it changes: a condition's transition time
kept until its status flips; which versions to render; a rollout that starts, completes,
is rolled back (or, with autoRollback off, is not); a canary Ready, promoted or aborted;
and which Events a change is worth. What the workloads say comes in as reports from
`workloads`, as the reconciler passes them. Pure: no test bed
(tests/operator/test_rollout.py runs rollouts on it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelplane.operator import workloads
from modelplane.operator.render.common import MODEL_VERSION_LABEL
from modelplane.operator.spec import Mode, ResolvedModel
from modelplane.operator.status import (
    ABORT_ANNOTATION,
    CHILD_CONFLICT,
    PROMOTE_ANNOTATION,
    READY,
    ROLLED_OUT,
    ModelDeploymentStatus,
    News,
    Observed,
)

MODEL = "iris"
RUN_1, RUN_2, RUN_3 = "1" * 32, "2" * 32, "3" * 32
V1 = ResolvedModel(MODEL, "1", RUN_1, "models:/m-1")
V2 = ResolvedModel(MODEL, "2", RUN_2, "models:/m-2")
V3 = ResolvedModel(MODEL, "3", RUN_3, "models:/m-3")
GENERATION = 4
DEADLINE_MESSAGE = 'ReplicaSet "iris-canary-5d8f" has timed out progressing.'


def _status(fields: dict) -> ModelDeploymentStatus:
    """The status of an object whose status is `fields`."""
    return ModelDeploymentStatus.of({"status": fields})


def _serving(model: ResolvedModel = V1, **more) -> dict:
    return {"modelVersion": model.version, "modelRunId": model.run_id, "modelSource": model.source, **more}


def _rolling_out(target: ResolvedModel = V2, **more) -> dict:
    return _serving(targetVersion=target.version, targetRunId=target.run_id, targetSource=target.source, **more)


def _ready(status: dict, value: str, reason: str, message: str = "") -> dict:
    """`status` with the Ready condition the workload's observation wrote."""
    ready = {"type": "Ready", "status": value, "reason": reason, "message": message, "lastTransitionTime": "x"}
    return {**status, "conditions": [ready]}


def _deployment(version: str, rolled_out: bool = True, deadline_missed: bool = False) -> dict:
    """A Deployment whose pod template runs `version`, as the API server reports it."""
    status: dict = {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": int(rolled_out)}
    if deadline_missed:
        status["conditions"] = [
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": DEADLINE_MESSAGE,
            }
        ]
    return {
        "kind": "Deployment",
        "metadata": {"name": "iris-canary", "generation": 2},
        "spec": {"replicas": 1, "template": {"metadata": {"labels": {MODEL_VERSION_LABEL: version}}}},
        "status": status,
    }


def _cronjob(version: str) -> dict:
    template = {"metadata": {"labels": {MODEL_VERSION_LABEL: version}}}
    return {
        "kind": "CronJob",
        "metadata": {"name": "iris"},
        "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": template}}},
    }


def _observe(
    status: ModelDeploymentStatus,
    workload: dict | None,
    auto_rollback: bool = True,
    mode: Mode = Mode.online,
    stopped: str | None = None,
) -> None:
    """What the reconciler does with the live workload of the current mode."""
    status.observe_workload(
        workloads.report(mode, workload, stopped), GENERATION, auto_rollback, batch=mode is Mode.batch
    )


def _observe_canary(status: ModelDeploymentStatus, canary: dict | None, auto_rollback: bool = True) -> None:
    """What the reconciler does with the live canary Deployment (None: not seen)."""
    report = workloads.report(Mode.online, canary) if canary is not None else None
    status.observe_canary(report, auto_rollback, GENERATION)


def _rolled_out(status: ModelDeploymentStatus) -> tuple[str, str, str]:
    found = status.condition(ROLLED_OUT)
    assert found is not None, status
    return found.status.value, found.reason, found.message


def _versions(status: ModelDeploymentStatus) -> tuple[str | None, str | None, str | None]:
    return status.model_version, status.target_version, status.failed_version


def _without_conditions(status: ModelDeploymentStatus) -> dict:
    return {key: value for key, value in status.to_object().items() if key != "conditions"}


# Conditions: stamped with times.


LONG_AGO = "2020-01-01T00:00:00Z"


def _stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def test_a_new_condition_is_stamped_now():
    before = datetime.now(UTC).replace(microsecond=0)
    status = ModelDeploymentStatus()

    status.set_condition(Observed("Ready", "False", "ReplicasNotReady", "0/1"), 1)

    [written] = status.to_object()["conditions"]
    assert {key: value for key, value in written.items() if key != "lastTransitionTime"} == {
        "type": "Ready",
        "status": "False",
        "reason": "ReplicasNotReady",
        "message": "0/1",
        "observedGeneration": 1,
    }
    assert before <= _stamp(written["lastTransitionTime"]) <= datetime.now(UTC)


def test_a_condition_keeps_its_transition_time_while_its_status_stays():
    status = _status(
        {
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
    )

    status.set_condition(Observed("Ready", "False", "ProgressDeadlineExceeded", "timed out"), 2)

    assert status.to_object()["conditions"] == [
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
    status = _status(
        {"conditions": [resolved.copy(), {**resolved, "type": "Ready", "status": "False", "reason": "Waiting"}]}
    )
    before = datetime.now(UTC).replace(microsecond=0)

    status.set_condition(Observed("Ready", "True", "MinimumReplicasAvailable", "1/1"), 1)

    conditions = status.to_object()["conditions"]
    assert [entry["type"] for entry in conditions] == ["ModelResolved", "Ready"]
    assert conditions[0] == resolved
    ready = status.condition("Ready")
    assert ready is not None
    assert (ready.status.value, ready.reason, ready.message) == ("True", "MinimumReplicasAvailable", "1/1")
    assert _stamp(ready.last_transition_time) >= before


def test_a_condition_without_a_generation_leaves_it_out_of_the_object():
    """The one intended change of form: unset fields are left out, observedGeneration too."""
    status = ModelDeploymentStatus()

    status.set_condition(Observed("Ready", "False", "ReplicasNotReady", "0/1"), None)

    [written] = status.to_object()["conditions"]
    assert "observedGeneration" not in written
    assert status.to_object() == {"conditions": [written]}


def test_a_status_without_conditions_has_none_in_its_object_form():
    """As the old dicts had it: the first version recorded is exactly its fields."""
    status = ModelDeploymentStatus()

    status.begin_rollout(V1, GENERATION)

    assert status.to_object() == _serving(V1)


# begin_rollout: recording what the reference names


def test_the_first_version_is_recorded_as_serving_without_a_rollout():
    status = ModelDeploymentStatus()

    status.begin_rollout(V1, GENERATION)

    assert status == _status(_serving(V1))


@pytest.mark.parametrize(
    ("canary", "reason", "message"),
    [
        (False, "RollingOut", "rolling out version 2 to replace version 1"),
        (True, "CanaryRunning", "running version 2 as a canary beside version 1"),
    ],
)
def test_a_new_version_becomes_the_target_beside_the_serving_one(canary: bool, reason: str, message: str):
    status = _status(_serving(V1))

    status.begin_rollout(V2, GENERATION, canary)

    assert _without_conditions(status) == _rolling_out(V2)
    assert _rolled_out(status) == ("False", reason, message)
    assert status.condition(ROLLED_OUT).observed_generation == GENERATION


def test_a_target_replaced_by_a_newer_version_loses_its_canary_record():
    status = _status(_rolling_out(V2, canaryReadyTime="2026-12-02T10:00:00Z", canaryPromoted=True))

    status.begin_rollout(V3, GENERATION, canary=True)

    assert _versions(status) == ("1", "3", None)
    assert status.target_run_id == RUN_3
    assert status.canary_ready_time is None and status.canary_promoted is None
    assert "canaryReadyTime" not in status.to_object() and "canaryPromoted" not in status.to_object()


def test_the_serving_version_named_again_cancels_the_rollout():
    status = _status(_rolling_out(V2))

    status.begin_rollout(V1, GENERATION)

    assert _versions(status) == ("1", None, None)
    assert "targetRunId" not in status.to_object() and "targetSource" not in status.to_object()
    assert _rolled_out(status) == ("True", "RolloutCancelled", "version 2 is no longer wanted; version 1 stays")


def test_a_version_that_failed_its_rollout_is_not_tried_again():
    status = _status(_serving(V1, failedVersion="2"))

    assert status.choose(V2) == V1
    status.begin_rollout(V2, GENERATION)

    assert status == _status(_serving(V1, failedVersion="2"))


def test_a_reference_moved_on_from_the_failed_version_is_rolled_out_and_forgets_it():
    status = _status(_serving(V1, failedVersion="2"))

    assert status.choose(V3) == V3
    status.begin_rollout(V3, GENERATION)

    assert _versions(status) == ("1", "3", None)


def test_a_reference_back_on_the_serving_version_forgets_the_failed_one():
    status = _status(_serving(V1, failedVersion="2"))

    status.begin_rollout(V1, GENERATION)

    assert status == _status(_serving(V1))


def test_the_serving_version_newly_described_by_the_registry_is_recorded():
    status = _status(_serving(V1))
    described = ResolvedModel(MODEL, "1", RUN_1, "models:/m-1-moved")

    status.begin_rollout(described, GENERATION)

    assert status == _status(_serving(described))


# plan: which versions to render


def test_the_plan_renders_the_target_once_a_rollout_begins():
    assert _status(_serving(V1)).plan(MODEL, canary=False) == (V1, None)
    assert _status(_rolling_out(V2)).plan(MODEL, canary=False) == (V2, None)


def test_a_canary_runs_the_target_beside_the_serving_version_until_promoted():
    assert _status(_serving(V1)).plan(MODEL, canary=True) == (V1, None)
    assert _status(_rolling_out(V2)).plan(MODEL, canary=True) == (V1, V2)
    assert _status(_rolling_out(V2, canaryPromoted=True)).plan(MODEL, canary=True) == (V2, None)


# observe_workload: ending a rollout from the workload (its Ready observed, then advance_rollout)


def test_a_workload_ready_at_the_target_completes_the_rollout():
    status = _status(_ready(_rolling_out(V2), "True", "MinimumReplicasAvailable"))

    _observe(status, _deployment("2"), auto_rollback=True)

    assert {key: status.to_object()[key] for key in ("modelVersion", "modelRunId", "modelSource")} == {
        "modelVersion": "2",
        "modelRunId": RUN_2,
        "modelSource": "models:/m-2",
    }
    assert "targetVersion" not in status.to_object() and "targetRunId" not in status.to_object()
    assert _rolled_out(status) == ("True", "RolloutComplete", "version 2 replaced version 1")


def test_a_workload_ready_at_the_old_version_does_not_complete_the_rollout():
    """Ready still describes the old template until the new one is applied."""
    status = _status(_ready(_rolling_out(V2), "True", "MinimumReplicasAvailable"))

    _observe(status, _deployment("1"), auto_rollback=True)

    assert _versions(status) == ("1", "2", None)
    assert status.condition(ROLLED_OUT) is None


def test_a_schedule_at_the_target_completes_the_rollout():
    """A CronJob's version is in its Job template: its next run uses it."""
    status = _status(_ready(_rolling_out(V2), "True", "Scheduled"))

    _observe(status, _cronjob("1"), auto_rollback=True, mode=Mode.batch)
    assert _versions(status) == ("1", "2", None)

    _observe(status, _cronjob("2"), auto_rollback=True, mode=Mode.batch)
    assert _versions(status) == ("2", None, None)
    assert _rolled_out(status)[1] == "RolloutComplete"


def test_a_target_past_its_progress_deadline_is_rolled_back():
    status = _status(_ready(_rolling_out(V2), "False", "ProgressDeadlineExceeded", DEADLINE_MESSAGE))

    _observe(status, _deployment("2", rolled_out=False, deadline_missed=True), auto_rollback=True)

    assert _versions(status) == ("1", None, "2")
    assert status.model_run_id == RUN_1 and "targetRunId" not in status.to_object()
    assert _rolled_out(status) == (
        "False",
        "RolledBack",
        f"version 2 did not become Ready in time ({DEADLINE_MESSAGE}); back to version 1, "
        "and version 2 is not tried again until the alias moves",
    )


def test_with_auto_rollback_off_a_target_past_its_deadline_stays():
    status = _status(_ready(_rolling_out(V2), "False", "ProgressDeadlineExceeded", DEADLINE_MESSAGE))

    _observe(status, _deployment("2", rolled_out=False, deadline_missed=True), auto_rollback=False)

    assert _without_conditions(status) == _rolling_out(V2)
    assert status.condition(ROLLED_OUT) is None
    assert status.plan(MODEL, canary=False) == (V2, None)


@pytest.mark.parametrize(
    ("reason", "stopped"),
    [("ReplicasNotReady", None), ("ContainerFailed", "cannot load models:/iris/2")],
    ids=["ReplicasNotReady", "ContainerFailed"],
)
def test_a_target_not_ready_yet_is_waited_for(reason: str, stopped: str | None):
    status = _status(_ready(_rolling_out(V2), "False", reason))

    _observe(status, _deployment("2", rolled_out=False), auto_rollback=True, stopped=stopped)

    assert status.reason(READY) == reason
    assert _versions(status) == ("1", "2", None)


def test_without_a_target_or_a_workload_nothing_advances():
    serving = _status(_ready(_serving(V1), "True", "MinimumReplicasAvailable"))
    missing = _status(_ready(_rolling_out(V2), "True", "MinimumReplicasAvailable"))
    observed_missing = _status(_ready(_rolling_out(V2), "True", "MinimumReplicasAvailable"))

    _observe(serving, _deployment("1"), auto_rollback=True)
    # No workload runs no version, whatever Ready says; observed, it is not Ready either.
    missing.advance_rollout(workloads.template_version(None), auto_rollback=True, generation=GENERATION)
    _observe(observed_missing, None, auto_rollback=True)

    assert _versions(serving) == ("1", None, None) and serving.condition(ROLLED_OUT) is None
    assert _versions(missing) == ("1", "2", None)
    assert _versions(observed_missing) == ("1", "2", None)


def test_a_child_conflict_keeps_its_ready_while_the_workload_is_observed():
    """What reconcile._observe_workload did: Ready names the object in the way until a pass
    applies every child; Progressing is observed all the same."""
    status = _status(_serving(V1))
    status.record_conflict("Deployment/iris is not ours", GENERATION)

    _observe(status, _deployment("1"))

    assert (status.reason(READY), status.condition(READY).message) == (CHILD_CONFLICT, "Deployment/iris is not ours")
    assert status.reason("Progressing") == "RolloutComplete"


STARTED, COMPLETED = "2026-12-02T10:00:00Z", "2026-12-02T10:04:30Z"


def _job(**status) -> dict:
    return {"kind": "Job", "metadata": {"name": "iris-1a2b"}, "spec": {"completions": 1}, "status": status}


def test_a_batch_keeps_its_last_runs_where_the_workload_no_longer_says():
    status = _status(_serving(V1, lastScheduleTime="2026-12-01T10:00:00Z", lastSuccessfulTime="2026-12-01T10:04:00Z"))

    _observe(status, _job(startTime=STARTED), mode=Mode.batch)
    assert (status.last_schedule_time, status.last_successful_time) == (STARTED, "2026-12-01T10:04:00Z")

    _observe(status, None, mode=Mode.batch)
    assert (status.last_schedule_time, status.last_successful_time) == (STARTED, "2026-12-01T10:04:00Z")

    _observe(status, _job(startTime=STARTED, completionTime=COMPLETED), mode=Mode.batch)
    assert (status.last_schedule_time, status.last_successful_time) == (STARTED, COMPLETED)


def test_a_workload_that_is_not_a_batch_has_no_last_runs():
    status = _status(_serving(V1, lastScheduleTime=STARTED, lastSuccessfulTime=COMPLETED))

    _observe(status, _deployment("1"), mode=Mode.online)

    assert "lastScheduleTime" not in status.to_object() and "lastSuccessfulTime" not in status.to_object()


# observe_canary: following the canary Deployment


def test_a_canary_that_becomes_ready_records_when():
    status = _status(_rolling_out(V2))
    before = datetime.now(UTC).replace(microsecond=0)

    _observe_canary(status, _deployment("2"), auto_rollback=True)

    assert status.canary_ready_time is not None
    assert before <= _stamp(status.canary_ready_time) <= datetime.now(UTC)
    assert _rolled_out(status) == (
        "False",
        "CanaryReady",
        "the canary of version 2 is Ready beside version 1: 1/1 replicas available, 1 updated",
    )


def test_a_canary_ready_again_keeps_the_time_it_first_became_ready():
    status = _status(_rolling_out(V2, canaryReadyTime="2026-12-02T10:00:00Z"))

    _observe_canary(status, _deployment("2"), auto_rollback=True)

    assert status.canary_ready_time == "2026-12-02T10:00:00Z"


def test_a_canary_that_stops_being_ready_starts_its_duration_over():
    status = _status(_rolling_out(V2, canaryReadyTime="2026-12-02T10:00:00Z"))

    _observe_canary(status, _deployment("2", rolled_out=False), auto_rollback=True)

    assert status.canary_ready_time is None and "canaryReadyTime" not in status.to_object()
    assert _versions(status) == ("1", "2", None)


def test_a_canary_past_its_progress_deadline_is_rolled_back():
    status = _status(_rolling_out(V2, canaryReadyTime="2026-12-02T10:00:00Z"))
    late = _deployment("2", rolled_out=False, deadline_missed=True)

    _observe_canary(status, late, auto_rollback=True)

    assert _versions(status) == ("1", None, "2")
    assert status.canary_ready_time is None
    assert status.plan(MODEL, canary=True) == (V1, None)
    assert _rolled_out(status) == (
        "False",
        "RolledBack",
        f"the canary of version 2 did not become Ready in time ({DEADLINE_MESSAGE}); back to version 1, "
        "and version 2 is not tried again until the alias moves",
    )


def test_with_auto_rollback_off_a_canary_past_its_deadline_stays():
    status = _status(_rolling_out(V2))
    late = _deployment("2", rolled_out=False, deadline_missed=True)

    _observe_canary(status, late, auto_rollback=False)

    assert status == _status(_rolling_out(V2))
    assert status.plan(MODEL, canary=True) == (V1, V2)


@pytest.mark.parametrize(
    ("fields", "canary"),
    [
        (_rolling_out(V2), _deployment("3")),
        (_rolling_out(V2, canaryPromoted=True), _deployment("2")),
        (_rolling_out(V2), None),
        (_serving(V1), _deployment("2")),
    ],
    ids=["another-versions-canary", "promoted", "no-canary", "no-rollout"],
)
def test_a_canary_that_is_not_the_targets_is_not_followed(fields: dict, canary: dict | None):
    status = _status(fields)

    _observe_canary(status, canary, auto_rollback=True)

    assert status == _status(fields)


# settle_rollout: time and annotations


AT = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC)


def test_a_rollout_annotated_with_its_version_is_aborted():
    status = _status(_rolling_out(V2))

    status.settle_rollout({ABORT_ANNOTATION: "2"}, None, GENERATION, AT)

    assert _versions(status) == ("1", None, "2")
    assert _rolled_out(status) == (
        "False",
        "RolloutAborted",
        "the rollout of version 2 was aborted (modelplane.io/abort-rollout=2); back to version 1, "
        "and version 2 is not tried again until the alias moves",
    )


def test_annotations_naming_an_earlier_rollout_do_nothing():
    status = _status(_rolling_out(V3, canaryReadyTime="2026-12-02T09:59:59Z"))
    stale = {ABORT_ANNOTATION: "2", PROMOTE_ANNOTATION: "2"}

    status.settle_rollout(stale, 3600, GENERATION, AT)

    assert status == _status(_rolling_out(V3, canaryReadyTime="2026-12-02T09:59:59Z"))


def test_a_canary_annotated_with_its_version_is_promoted():
    status = _status(_rolling_out(V2))

    status.settle_rollout({PROMOTE_ANNOTATION: "2"}, 3600, GENERATION, AT)

    assert status.canary_promoted is True
    assert status.plan(MODEL, canary=True) == (V2, None)
    assert _rolled_out(status) == (
        "False",
        "CanaryPromoted",
        "the canary of version 2 was promoted by modelplane.io/promote-canary=2: rolling it out to every replica "
        "to replace version 1",
    )


def test_a_canary_ready_for_its_duration_is_promoted_and_not_a_second_earlier():
    ready_at = "2026-12-02T10:00:00Z"
    status = _status(_rolling_out(V2, canaryReadyTime=ready_at))

    status.settle_rollout({}, 600, GENERATION, AT + timedelta(seconds=599))
    assert status.canary_promoted is None

    status.settle_rollout({}, 600, GENERATION, AT + timedelta(seconds=600))
    assert status.canary_promoted is True
    assert _rolled_out(status)[1:] == (
        "CanaryPromoted",
        "the canary of version 2 was Ready for 600 s: rolling it out to every replica to replace version 1",
    )


def test_a_canary_not_ready_yet_is_not_promoted_by_time():
    status = _status(_rolling_out(V2))

    status.settle_rollout({}, 0, GENERATION, AT)

    assert status == _status(_rolling_out(V2))


def test_a_rollout_without_a_canary_is_not_promoted():
    status = _status(_rolling_out(V2, canaryReadyTime="2026-12-02T09:00:00Z"))

    status.settle_rollout({PROMOTE_ANNOTATION: "2"}, None, GENERATION, AT)

    assert status.canary_promoted is None


def test_a_promoted_canary_is_not_promoted_again():
    status = _status(_rolling_out(V2, canaryPromoted=True, canaryReadyTime="2026-12-02T09:00:00Z"))

    status.settle_rollout({PROMOTE_ANNOTATION: "2"}, 60, GENERATION, AT)

    assert status.condition(ROLLED_OUT) is None


# news_since: the Events a status change is worth


def _news(before: dict, after: dict) -> list[News]:
    return _status(after).news_since(_status(before))


def test_a_creation_is_not_a_rollout():
    assert _news({}, _serving(V1)) == []


def test_a_rollout_that_starts_and_ends_is_announced():
    started = _rolling_out(V2)
    done = _serving(V2)

    assert _news(_serving(V1), started) == [("RolloutStarted", "rolling out version 2 to replace version 1", False)]
    assert _news(started, done) == [("RolledOut", "version 2 replaced version 1", False)]


def test_a_whole_rollout_in_one_write_is_announced_whole():
    assert _news(_serving(V1), _serving(V2)) == [
        ("RolloutStarted", "rolling out version 2 to replace version 1", False),
        ("RolledOut", "version 2 replaced version 1", False),
    ]


def test_a_rollback_is_a_warning_with_the_condition_message():
    before = _status(_ready(_rolling_out(V2), "False", "ProgressDeadlineExceeded", DEADLINE_MESSAGE))
    after = before.model_copy(deep=True)
    _observe(after, _deployment("2", rolled_out=False, deadline_missed=True), auto_rollback=True)

    assert after.news_since(before) == [("RolledBack", _rolled_out(after)[2], True)]


def test_a_cancelled_rollout_is_announced():
    assert _news(_rolling_out(V2), _serving(V1)) == [
        ("RolloutCancelled", "version 2 is no longer wanted; version 1 stays", False)
    ]


def test_a_canary_ready_and_promoted_are_announced_with_the_condition_message():
    ready = _status(_rolling_out(V2))
    _observe_canary(ready, _deployment("2"), auto_rollback=True)
    promoted = ready.model_copy(deep=True)
    promoted.settle_rollout({PROMOTE_ANNOTATION: "2"}, 60, GENERATION, AT)

    assert ready.news_since(_status(_rolling_out(V2))) == [("CanaryReady", _rolled_out(ready)[2], False)]
    assert promoted.news_since(ready) == [("CanaryPromoted", _rolled_out(promoted)[2], False)]


# news_since: Ready changing (what reconcile._announce_ready_change posted)


COUNTS = "1/1 replicas available, 1 updated"
BACKOFF = "Job has reached the specified backoff limit"


@pytest.mark.parametrize(
    ("was", "failure", "message"),
    [
        ("JobRunning", "JobFailed", BACKOFF),
        ("ReplicasNotReady", "ContainerFailed", "cannot load models:/iris/2"),
        ("ReplicasNotReady", "ProgressDeadlineExceeded", DEADLINE_MESSAGE),
    ],
)
def test_a_failure_is_news_even_when_ready_was_false_already(was: str, failure: str, message: str):
    """A Job is not Ready while it runs: its failing is a Warning all the same."""
    not_ready = _ready({}, "False", was, "0/2")
    failed = _ready({}, "False", failure, message)

    assert _news(not_ready, failed) == [News("ReadyFalse", f"{failure}: {message}", True)]


def test_a_failure_is_news_once():
    failed = _ready({}, "False", "JobFailed", BACKOFF)

    assert _news(failed, _ready({}, "False", "JobFailed", f"{BACKOFF}; a shard said: no")) == []


def test_a_new_workload_not_ready_yet_is_no_news():
    assert _news({}, _ready({}, "False", "WorkloadMissing", "the Deployment does not exist yet")) == []
    assert _news({}, _ready({}, "False", "ReplicasNotReady", "0/1 replicas available, 0 updated")) == []


def test_a_new_workload_failing_from_the_start_is_news():
    assert _news({}, _ready({}, "False", "ProgressDeadlineExceeded", DEADLINE_MESSAGE)) == [
        News("ReadyFalse", f"ProgressDeadlineExceeded: {DEADLINE_MESSAGE}", True)
    ]


def test_becoming_ready_is_news():
    assert _news(
        _ready({}, "False", "ReplicasNotReady", "0/1"), _ready({}, "True", "MinimumReplicasAvailable", COUNTS)
    ) == [News("ReadyTrue", f"MinimumReplicasAvailable: {COUNTS}", False)]
    assert _news({}, _ready({}, "True", "MinimumReplicasAvailable", COUNTS)) == [
        News("ReadyTrue", f"MinimumReplicasAvailable: {COUNTS}", False)
    ]


def test_no_longer_being_ready_is_news_but_not_a_warning():
    assert _news(
        _ready({}, "True", "MinimumReplicasAvailable", COUNTS), _ready({}, "False", "ReplicasNotReady", "0/1")
    ) == [News("ReadyFalse", "ReplicasNotReady: 0/1", False)]


def test_ready_staying_as_it_was_is_no_news():
    assert (
        _news(_ready({}, "True", "MinimumReplicasAvailable", COUNTS), _ready({}, "True", "ScaledToZero", "0/0")) == []
    )
    assert _news(_ready({}, "False", "WorkloadMissing", "none"), _ready({}, "False", "ReplicasNotReady", "0/1")) == []
    assert _news(_ready({}, "True", "MinimumReplicasAvailable", COUNTS), {}) == []


def test_ready_news_comes_before_the_rollouts():
    before = _ready(_rolling_out(V2), "False", "ReplicasNotReady", "0/1")
    after = _ready(_serving(V2), "True", "MinimumReplicasAvailable", COUNTS)

    assert _news(before, after) == [
        News("ReadyTrue", f"MinimumReplicasAvailable: {COUNTS}", False),
        News("RolledOut", "version 2 replaced version 1", False),
    ]
