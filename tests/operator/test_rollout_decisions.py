"""What a rollout decides from status and the live workload: which versions to render,
when a rollout starts, completes, is rolled back (or, with autoRollback off, is not),
when a canary is Ready, promoted or aborted, and which Events a change is worth. Pure:
no test bed (tests/operator/test_rollout.py runs rollouts on it)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from modelplane.operator import rollout
from modelplane.operator.render.common import MODEL_VERSION_LABEL, ResolvedModel
from modelplane.operator.status import condition

MODEL = "iris"
RUN_1, RUN_2, RUN_3 = "1" * 32, "2" * 32, "3" * 32
V1 = ResolvedModel(MODEL, "1", RUN_1, "models:/m-1")
V2 = ResolvedModel(MODEL, "2", RUN_2, "models:/m-2")
V3 = ResolvedModel(MODEL, "3", RUN_3, "models:/m-3")
GENERATION = 4
DEADLINE_MESSAGE = 'ReplicaSet "iris-canary-5d8f" has timed out progressing.'


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


def _rolled_out(status: dict) -> tuple[str, str, str]:
    found = condition(status, rollout.ROLLED_OUT)
    assert found is not None, status
    return found["status"], found["reason"], found["message"]


def _versions(status: dict) -> tuple[str | None, str | None, str | None]:
    return status.get("modelVersion"), status.get("targetVersion"), status.get(rollout.FAILED_VERSION)


# begin: recording what the reference names


def test_the_first_version_is_recorded_as_serving_without_a_rollout():
    status: dict = {}

    rollout.begin(status, V1, GENERATION)

    assert status == _serving(V1)


@pytest.mark.parametrize(
    ("canary", "reason", "message"),
    [
        (False, "RollingOut", "rolling out version 2 to replace version 1"),
        (True, "CanaryRunning", "running version 2 as a canary beside version 1"),
    ],
)
def test_a_new_version_becomes_the_target_beside_the_serving_one(canary: bool, reason: str, message: str):
    status = _serving(V1)

    rollout.begin(status, V2, GENERATION, canary)

    assert {key: value for key, value in status.items() if key != "conditions"} == _rolling_out(V2)
    assert _rolled_out(status) == ("False", reason, message)
    assert condition(status, rollout.ROLLED_OUT)["observedGeneration"] == GENERATION


def test_a_target_replaced_by_a_newer_version_loses_its_canary_record():
    status = _rolling_out(V2, canaryReadyTime="2026-12-02T10:00:00Z", canaryPromoted=True)

    rollout.begin(status, V3, GENERATION, canary=True)

    assert _versions(status) == ("1", "3", None)
    assert status["targetRunId"] == RUN_3
    assert rollout.CANARY_READY_TIME not in status and rollout.CANARY_PROMOTED not in status


def test_the_serving_version_named_again_cancels_the_rollout():
    status = _rolling_out(V2)

    rollout.begin(status, V1, GENERATION)

    assert _versions(status) == ("1", None, None)
    assert "targetRunId" not in status and "targetSource" not in status
    assert _rolled_out(status) == ("True", "RolloutCancelled", "version 2 is no longer wanted; version 1 stays")


def test_a_version_that_failed_its_rollout_is_not_tried_again():
    status = _serving(V1, failedVersion="2")

    assert rollout.choose(status, V2) == V1
    rollout.begin(status, V2, GENERATION)

    assert status == _serving(V1, failedVersion="2")


def test_a_reference_moved_on_from_the_failed_version_is_rolled_out_and_forgets_it():
    status = _serving(V1, failedVersion="2")

    assert rollout.choose(status, V3) == V3
    rollout.begin(status, V3, GENERATION)

    assert _versions(status) == ("1", "3", None)


def test_a_reference_back_on_the_serving_version_forgets_the_failed_one():
    status = _serving(V1, failedVersion="2")

    rollout.begin(status, V1, GENERATION)

    assert status == _serving(V1)


def test_the_serving_version_newly_described_by_the_registry_is_recorded():
    status = _serving(V1)
    described = ResolvedModel(MODEL, "1", RUN_1, "models:/m-1-moved")

    rollout.begin(status, described, GENERATION)

    assert status == _serving(described)


# plan: which versions to render


def test_the_plan_renders_the_target_once_a_rollout_begins():
    assert rollout.plan(_serving(V1), MODEL, canary=False) == (V1, None)
    assert rollout.plan(_rolling_out(V2), MODEL, canary=False) == (V2, None)


def test_a_canary_runs_the_target_beside_the_serving_version_until_promoted():
    assert rollout.plan(_serving(V1), MODEL, canary=True) == (V1, None)
    assert rollout.plan(_rolling_out(V2), MODEL, canary=True) == (V1, V2)
    assert rollout.plan(_rolling_out(V2, canaryPromoted=True), MODEL, canary=True) == (V2, None)


# advance: ending a rollout from the workload


def test_a_workload_ready_at_the_target_completes_the_rollout():
    status = _ready(_rolling_out(V2), "True", "MinimumReplicasAvailable")

    rollout.advance(status, _deployment("2"), auto_rollback=True, generation=GENERATION)

    assert {key: status[key] for key in ("modelVersion", "modelRunId", "modelSource")} == {
        "modelVersion": "2",
        "modelRunId": RUN_2,
        "modelSource": "models:/m-2",
    }
    assert "targetVersion" not in status and "targetRunId" not in status
    assert _rolled_out(status) == ("True", "RolloutComplete", "version 2 replaced version 1")


def test_a_workload_ready_at_the_old_version_does_not_complete_the_rollout():
    """Ready still describes the old template until the new one is applied."""
    status = _ready(_rolling_out(V2), "True", "MinimumReplicasAvailable")

    rollout.advance(status, _deployment("1"), auto_rollback=True, generation=GENERATION)

    assert _versions(status) == ("1", "2", None)
    assert condition(status, rollout.ROLLED_OUT) is None


def test_a_schedule_at_the_target_completes_the_rollout():
    """A CronJob's version is in its Job template: its next run uses it."""
    status = _ready(_rolling_out(V2), "True", "Scheduled")

    rollout.advance(status, _cronjob("1"), auto_rollback=True, generation=GENERATION)
    assert _versions(status) == ("1", "2", None)

    rollout.advance(status, _cronjob("2"), auto_rollback=True, generation=GENERATION)
    assert _versions(status) == ("2", None, None)
    assert _rolled_out(status)[1] == "RolloutComplete"


def test_a_target_past_its_progress_deadline_is_rolled_back():
    status = _ready(_rolling_out(V2), "False", "ProgressDeadlineExceeded", DEADLINE_MESSAGE)

    rollout.advance(status, _deployment("2", rolled_out=False), auto_rollback=True, generation=GENERATION)

    assert _versions(status) == ("1", None, "2")
    assert status["modelRunId"] == RUN_1 and "targetRunId" not in status
    assert _rolled_out(status) == (
        "False",
        "RolledBack",
        f"version 2 did not become Ready in time ({DEADLINE_MESSAGE}); back to version 1, "
        "and version 2 is not tried again until the alias moves",
    )


def test_with_auto_rollback_off_a_target_past_its_deadline_stays():
    status = _ready(_rolling_out(V2), "False", "ProgressDeadlineExceeded", DEADLINE_MESSAGE)
    before = copy.deepcopy(status)

    rollout.advance(status, _deployment("2", rolled_out=False), auto_rollback=False, generation=GENERATION)

    assert status == before
    assert rollout.plan(status, MODEL, canary=False) == (V2, None)


@pytest.mark.parametrize("reason", ["ReplicasNotReady", "ContainerFailed"])
def test_a_target_not_ready_yet_is_waited_for(reason: str):
    status = _ready(_rolling_out(V2), "False", reason)

    rollout.advance(status, _deployment("2", rolled_out=False), auto_rollback=True, generation=GENERATION)

    assert _versions(status) == ("1", "2", None)


def test_without_a_target_or_a_workload_nothing_advances():
    serving = _ready(_serving(V1), "True", "MinimumReplicasAvailable")
    missing = _ready(_rolling_out(V2), "True", "MinimumReplicasAvailable")

    rollout.advance(serving, _deployment("1"), auto_rollback=True, generation=GENERATION)
    rollout.advance(missing, None, auto_rollback=True, generation=GENERATION)

    assert _versions(serving) == ("1", None, None) and condition(serving, rollout.ROLLED_OUT) is None
    assert _versions(missing) == ("1", "2", None)


# advance_canary: following the canary Deployment


def test_a_canary_that_becomes_ready_records_when():
    status = _rolling_out(V2)
    before = datetime.now(UTC).replace(microsecond=0)

    rollout.advance_canary(status, _deployment("2"), auto_rollback=True, generation=GENERATION)

    ready_at = datetime.strptime(status[rollout.CANARY_READY_TIME], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= ready_at <= datetime.now(UTC)
    assert _rolled_out(status) == (
        "False",
        "CanaryReady",
        "the canary of version 2 is Ready beside version 1: 1/1 replicas available, 1 updated",
    )


def test_a_canary_ready_again_keeps_the_time_it_first_became_ready():
    status = _rolling_out(V2, canaryReadyTime="2026-12-02T10:00:00Z")

    rollout.advance_canary(status, _deployment("2"), auto_rollback=True, generation=GENERATION)

    assert status[rollout.CANARY_READY_TIME] == "2026-12-02T10:00:00Z"


def test_a_canary_that_stops_being_ready_starts_its_duration_over():
    status = _rolling_out(V2, canaryReadyTime="2026-12-02T10:00:00Z")

    rollout.advance_canary(status, _deployment("2", rolled_out=False), auto_rollback=True, generation=GENERATION)

    assert rollout.CANARY_READY_TIME not in status
    assert _versions(status) == ("1", "2", None)


def test_a_canary_past_its_progress_deadline_is_rolled_back():
    status = _rolling_out(V2, canaryReadyTime="2026-12-02T10:00:00Z")
    late = _deployment("2", rolled_out=False, deadline_missed=True)

    rollout.advance_canary(status, late, auto_rollback=True, generation=GENERATION)

    assert _versions(status) == ("1", None, "2")
    assert rollout.CANARY_READY_TIME not in status
    assert rollout.plan(status, MODEL, canary=True) == (V1, None)
    assert _rolled_out(status) == (
        "False",
        "RolledBack",
        f"the canary of version 2 did not become Ready in time ({DEADLINE_MESSAGE}); back to version 1, "
        "and version 2 is not tried again until the alias moves",
    )


def test_with_auto_rollback_off_a_canary_past_its_deadline_stays():
    status = _rolling_out(V2)
    late = _deployment("2", rolled_out=False, deadline_missed=True)

    rollout.advance_canary(status, late, auto_rollback=False, generation=GENERATION)

    assert status == _rolling_out(V2)
    assert rollout.plan(status, MODEL, canary=True) == (V1, V2)


@pytest.mark.parametrize(
    ("status", "canary"),
    [
        (_rolling_out(V2), _deployment("3")),
        (_rolling_out(V2, canaryPromoted=True), _deployment("2")),
        (_rolling_out(V2), None),
        (_serving(V1), _deployment("2")),
    ],
    ids=["another-versions-canary", "promoted", "no-canary", "no-rollout"],
)
def test_a_canary_that_is_not_the_targets_is_not_followed(status: dict, canary: dict | None):
    before = copy.deepcopy(status)

    rollout.advance_canary(status, canary, auto_rollback=True, generation=GENERATION)

    assert status == before


# settle: time and annotations


AT = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC)


def test_a_rollout_annotated_with_its_version_is_aborted():
    status = _rolling_out(V2)

    rollout.settle(status, {rollout.ABORT_ANNOTATION: "2"}, None, GENERATION, AT)

    assert _versions(status) == ("1", None, "2")
    assert _rolled_out(status) == (
        "False",
        "RolloutAborted",
        "the rollout of version 2 was aborted (modelplane.io/abort-rollout=2); back to version 1, "
        "and version 2 is not tried again until the alias moves",
    )


def test_annotations_naming_an_earlier_rollout_do_nothing():
    status = _rolling_out(V3, canaryReadyTime="2026-12-02T09:59:59Z")
    stale = {rollout.ABORT_ANNOTATION: "2", rollout.PROMOTE_ANNOTATION: "2"}

    rollout.settle(status, stale, 3600, GENERATION, AT)

    assert status == _rolling_out(V3, canaryReadyTime="2026-12-02T09:59:59Z")


def test_a_canary_annotated_with_its_version_is_promoted():
    status = _rolling_out(V2)

    rollout.settle(status, {rollout.PROMOTE_ANNOTATION: "2"}, 3600, GENERATION, AT)

    assert status[rollout.CANARY_PROMOTED] is True
    assert rollout.plan(status, MODEL, canary=True) == (V2, None)
    assert _rolled_out(status) == (
        "False",
        "CanaryPromoted",
        "the canary of version 2 was promoted by modelplane.io/promote-canary=2: rolling it out to every replica "
        "to replace version 1",
    )


def test_a_canary_ready_for_its_duration_is_promoted_and_not_a_second_earlier():
    ready_at = "2026-12-02T10:00:00Z"
    status = _rolling_out(V2, canaryReadyTime=ready_at)

    rollout.settle(status, {}, 600, GENERATION, AT + timedelta(seconds=599))
    assert rollout.CANARY_PROMOTED not in status

    rollout.settle(status, {}, 600, GENERATION, AT + timedelta(seconds=600))
    assert status[rollout.CANARY_PROMOTED] is True
    assert _rolled_out(status)[1:] == (
        "CanaryPromoted",
        "the canary of version 2 was Ready for 600 s: rolling it out to every replica to replace version 1",
    )


def test_a_canary_not_ready_yet_is_not_promoted_by_time():
    status = _rolling_out(V2)

    rollout.settle(status, {}, 0, GENERATION, AT)

    assert status == _rolling_out(V2)


def test_a_rollout_without_a_canary_is_not_promoted():
    status = _rolling_out(V2, canaryReadyTime="2026-12-02T09:00:00Z")

    rollout.settle(status, {rollout.PROMOTE_ANNOTATION: "2"}, None, GENERATION, AT)

    assert rollout.CANARY_PROMOTED not in status


def test_a_promoted_canary_is_not_promoted_again():
    status = _rolling_out(V2, canaryPromoted=True, canaryReadyTime="2026-12-02T09:00:00Z")

    rollout.settle(status, {rollout.PROMOTE_ANNOTATION: "2"}, 60, GENERATION, AT)

    assert condition(status, rollout.ROLLED_OUT) is None


# news: the Events a status change is worth


def _news(before: dict, after: dict) -> list[tuple[str, str, bool]]:
    return rollout.news(before, after)


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
    before = _ready(_rolling_out(V2), "False", "ProgressDeadlineExceeded", DEADLINE_MESSAGE)
    after = copy.deepcopy(before)
    rollout.advance(after, _deployment("2", rolled_out=False), auto_rollback=True, generation=GENERATION)

    assert _news(before, after) == [("RolledBack", _rolled_out(after)[2], True)]


def test_a_cancelled_rollout_is_announced():
    assert _news(_rolling_out(V2), _serving(V1)) == [
        ("RolloutCancelled", "version 2 is no longer wanted; version 1 stays", False)
    ]


def test_a_canary_ready_and_promoted_are_announced_with_the_condition_message():
    ready = _rolling_out(V2)
    rollout.advance_canary(ready, _deployment("2"), auto_rollback=True, generation=GENERATION)
    promoted = copy.deepcopy(ready)
    rollout.settle(promoted, {rollout.PROMOTE_ANNOTATION: "2"}, 60, GENERATION, AT)

    assert _news(_rolling_out(V2), ready) == [("CanaryReady", _rolled_out(ready)[2], False)]
    assert _news(ready, promoted) == [("CanaryPromoted", _rolled_out(promoted)[2], False)]
