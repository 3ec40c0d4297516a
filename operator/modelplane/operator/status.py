"""A ModelDeployment's status, typed, and the one place it changes: conditions, the
versions it runs, and the moves of a rollout from one version to the next. Pure: what
the workloads say comes in as reports (`workloads`); `status_store` writes the result.

Status holds the serving version (`modelVersion`, with its run and source), the version
rolling out (`targetVersion`, likewise), and a version that failed its rollout
(`failedVersion`), which is not tried again until the reference names another one. A
canary adds when it became Ready (`canaryReadyTime`) and whether it was promoted
(`canaryPromoted`): until then the target runs only on the canary's share of replicas.
The CRD's status schema is generated from these models, field descriptions included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from modelplane.operator.objects import Object
from modelplane.operator.spec import ResolvedModel

READY = "Ready"
MODEL_RESOLVED = "ModelResolved"
PROGRESSING = "Progressing"
ROLLED_OUT = "RolledOut"
# Ready's reason while the workload's model container exits with a message (a model
# refused at load, an input file that cannot be read): the message is the container's.
CONTAINER_FAILED = "ContainerFailed"
# Ready's reason while a child's name is taken by an object this ModelDeployment does not
# control: it stays until a pass of the generation applies every child.
CHILD_CONFLICT = "ChildConflict"
# Ready reasons worth a Warning; the rest (not ready *yet*) are Normal.
FAILURES = frozenset({"ProgressDeadlineExceeded", "JobFailed", CONTAINER_FAILED})
# Manual control: the value names the target version, so a stale annotation never acts
# on a later rollout.
PROMOTE_ANNOTATION = "modelplane.io/promote-canary"
ABORT_ANNOTATION = "modelplane.io/abort-rollout"


def now() -> str:
    return _timestamp(datetime.now(UTC))


def _timestamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(timestamp: str) -> datetime:
    return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Observed:
    """One condition's worth of observation, before it is stamped with times."""

    type: str
    status: str  # "True", "False" or "Unknown"
    reason: str
    message: str = ""


@dataclass(frozen=True)
class WorkloadReport:
    """What a live workload says of itself, as status reads it (see `workloads`)."""

    ready: Observed
    progressing: Observed
    version: str | None = None
    """The model version its pod template runs; None for a workload that does not exist."""

    last_schedule_time: str | None = None
    last_successful_time: str | None = None


class News(NamedTuple):
    """An Event a change of status is worth."""

    reason: str
    message: str
    warning: bool


class _Status(BaseModel):
    # Not frozen: status is changed by its own methods. Fields it does not know (written by
    # another version of the operator) are dropped when read, not refused.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", use_attribute_docstrings=True
    )


class ConditionStatus(str, Enum):
    true = "True"
    false = "False"
    unknown = "Unknown"


class Condition(_Status):
    type: str = Field(max_length=316)
    """Condition type: Ready (the summary), ModelResolved, Progressing or RolledOut."""

    status: ConditionStatus
    """True, False or Unknown."""

    reason: str = Field(max_length=1024)
    """One CamelCase word saying why, e.g. MinimumReplicasAvailable or RegistryUnreachable."""

    message: str = Field(default="", max_length=32768)
    """What happened, for a person."""

    observed_generation: int | None = Field(default=None, ge=0)
    """The metadata.generation this condition was computed from."""

    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    """When the status last changed."""


class ModelDeploymentStatus(_Status):
    observed_generation: int | None = Field(default=None, ge=0)
    """The metadata.generation the operator last acted on."""

    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Observed state, by the Kubernetes API conventions."""

    model_version: str | None = None
    """Registry version the workloads run."""

    model_run_id: str | None = None
    """MLflow run that produced the running version."""

    model_source: str | None = None
    """Artifact location of the running version."""

    target_version: str | None = None
    """Version being rolled out, while a rollout is in progress."""

    target_run_id: str | None = None
    """MLflow run that produced the version being rolled out."""

    target_source: str | None = None
    """Artifact location of the version being rolled out."""

    failed_version: str | None = None
    """Version whose rollout failed and was rolled back; not tried again until the alias moves."""

    canary_ready_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    """When the canary of the target version became Ready (strategy Canary)."""

    canary_promoted: bool | None = None
    """The canary of the target version was promoted: every replica is rolling to it."""

    endpoint: str | None = None
    """In-cluster address of the online API (Service DNS name and port)."""

    last_schedule_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    """When a batch run was last started."""

    last_successful_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    """When a batch run last completed successfully."""

    # Reading and writing the object's form.

    @classmethod
    def of(cls, body: Object) -> ModelDeploymentStatus:
        """The status of a ModelDeployment object (empty when it has none yet)."""
        return cls.model_validate(body.get("status") or {})

    def to_object(self) -> Object:
        """The status as the object holds it: camelCase, unset fields and an empty
        condition list left out (the status store sends what was dropped as null)."""
        form = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        if not form.get("conditions"):
            form.pop("conditions", None)
        return form

    # Conditions.

    def condition(self, type_: str) -> Condition | None:
        return next((entry for entry in self.conditions if entry.type == type_), None)

    def reason(self, type_: str) -> str | None:
        """The reason of a condition, None where it is not set."""
        found = self.condition(type_)
        return found.reason if found else None

    def set_condition(self, observed: Observed, generation: int | None) -> None:
        """Sets one condition, keeping its lastTransitionTime unless its status flips."""
        current = self.condition(observed.type)
        entry = Condition(
            type=observed.type,
            status=ConditionStatus(observed.status),
            reason=observed.reason,
            message=observed.message,
            observed_generation=generation,
            last_transition_time=current.last_transition_time
            if current is not None and current.status == observed.status
            else now(),
        )
        if current is None:
            self.conditions.append(entry)
        else:
            self.conditions[self.conditions.index(current)] = entry

    def remove_condition(self, type_: str) -> None:
        self.conditions = [entry for entry in self.conditions if entry.type != type_]

    # What a pass records.

    def record_resolved(self, wanted: ResolvedModel, subject: str, generation: int | None) -> None:
        """ModelResolved for the version the reference names now (`subject` says which
        reference), saying so when that version failed its rollout and another stays."""
        resolved = f"{subject} is version {wanted.version}"
        if wanted.version != self.choose(wanted).version:
            resolved += f", which failed its rollout: version {self.model_version} stays"
        self.set_condition(Observed(MODEL_RESOLVED, "True", "Resolved", resolved), generation)

    def record_unresolved(self, reason: str, message: str, generation: int | None) -> None:
        """ModelResolved=False: the registry could not say; the workloads keep their version."""
        self.set_condition(Observed(MODEL_RESOLVED, "False", reason, message), generation)

    def record_conflict(self, message: str, generation: int | None) -> None:
        """Ready=False, naming the object in the way of a child."""
        self.set_condition(Observed(READY, "False", CHILD_CONFLICT, message), generation)

    def record_applied(self, generation: int | None, endpoint: str | None) -> None:
        """A pass of `generation` applied every child: it is the one observed now."""
        self.observed_generation = generation
        self.endpoint = endpoint
        if self.reason(READY) == CHILD_CONFLICT:
            self.remove_condition(READY)

    def observe_workload(
        self, report: WorkloadReport, generation: int | None, auto_rollback: bool, batch: bool
    ) -> None:
        """Ready and Progressing from the workload of the current mode, the rollout's
        progress, and (in batch mode) its last runs, kept where the workload no longer says."""
        conflicted = self.reason(READY) == CHILD_CONFLICT
        if not conflicted:
            self.set_condition(report.ready, generation)
        self.set_condition(report.progressing, generation)
        self.advance_rollout(report.version, auto_rollback, generation)
        if batch:
            self.last_schedule_time = report.last_schedule_time or self.last_schedule_time
            self.last_successful_time = report.last_successful_time or self.last_successful_time
        else:
            self.last_schedule_time = self.last_successful_time = None

    # The versions recorded.

    def serving(self, name: str) -> ResolvedModel | None:
        """The serving version, None before the first is recorded."""
        if self.model_version is None:
            return None
        return ResolvedModel(name, self.model_version, self.model_run_id, self.model_source)

    def target(self, name: str) -> ResolvedModel | None:
        """The version rolling out, None when no rollout is in progress."""
        if self.target_version is None:
            return None
        return ResolvedModel(name, self.target_version, self.target_run_id, self.target_source)

    def rendered(self, name: str) -> ResolvedModel | None:
        """The version the workload is meant to run now: the one rolling out, else the serving one."""
        return self.target(name) or self.serving(name)

    def plan(self, name: str, canary: bool) -> tuple[ResolvedModel | None, ResolvedModel | None]:
        """(stable, canary): the versions to render. Under a canary strategy, the target runs
        beside the serving version until the canary is promoted."""
        target = self.target(name)
        if canary and target is not None and not self.canary_promoted:
            return self.serving(name), target
        return self.rendered(name), None

    def choose(self, wanted: ResolvedModel) -> ResolvedModel:
        """The version to render: `wanted`, unless it is the one that failed its rollout."""
        serving = self.serving(wanted.name)
        if serving is not None and wanted.version != serving.version and wanted.version == self.failed_version:
            return serving
        return wanted

    def _record_serving(self, model: ResolvedModel) -> None:
        self.model_version, self.model_run_id, self.model_source = model.version, model.run_id, model.source

    def _record_target(self, model: ResolvedModel | None) -> None:
        # A canary belongs to one target.
        self.canary_ready_time = self.canary_promoted = None
        self.target_version = model.version if model else None
        self.target_run_id = model.run_id if model else None
        self.target_source = model.source if model else None

    # A rollout: begun, advanced, failed or finished.

    def begin_rollout(self, wanted: ResolvedModel, generation: int | None, canary: bool = False) -> None:
        """Records the version `choose` picks for `wanted`: the serving one at creation, else
        the target of a rollout, or no target when it is the serving one again."""
        chosen = self.choose(wanted)
        serving = self.serving(wanted.name)
        if wanted.version != self.failed_version:
            self.failed_version = None  # the reference moved on from the failed version
        if serving is None:
            self._record_serving(chosen)
        elif chosen.version == serving.version:
            if (target := self.target_version) is not None:
                self._record_target(None)
                self.set_condition(
                    Observed(
                        ROLLED_OUT,
                        "True",
                        "RolloutCancelled",
                        f"version {target} is no longer wanted; version {serving.version} stays",
                    ),
                    generation,
                )
            if serving != chosen:  # the same version, newly described by the registry
                self._record_serving(chosen)
        elif chosen.version != self.target_version:
            self._record_target(chosen)
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
            self.set_condition(started, generation)

    def advance_rollout(self, workload_version: str | None, auto_rollback: bool, generation: int | None) -> None:
        """Ends a rollout from the workload's Ready condition (already observed into status),
        once the workload (its pod template: `workload_version`) runs the target: done once
        it is Ready; failed, and back to the serving version, once it missed its progress
        deadline."""
        target = self.target_version
        if target is None or workload_version != target:
            return
        ready = self.condition(READY)
        if ready is not None and ready.status == ConditionStatus.true:
            self._finish_rollout(generation)
        elif ready is not None and ready.reason == "ProgressDeadlineExceeded" and auto_rollback:
            self.fail_rollout(
                "RolledBack", f"version {target} did not become Ready in time ({ready.message})", generation
            )

    def _finish_rollout(self, generation: int | None) -> None:
        target, previous = self.target(""), self.model_version
        if target is None:
            return
        self._record_serving(target)
        self._record_target(None)
        self.set_condition(
            Observed(ROLLED_OUT, "True", "RolloutComplete", f"version {target.version} replaced version {previous}"),
            generation,
        )

    def fail_rollout(self, reason: str, why: str, generation: int | None) -> None:
        """Back to the serving version; the target is not tried again until the alias moves."""
        failed, serving = self.target_version, self.model_version
        self.failed_version = failed
        self._record_target(None)
        self.set_condition(
            Observed(
                ROLLED_OUT,
                "False",
                reason,
                f"{why}; back to version {serving}, and version {failed} is not tried again until the alias moves",
            ),
            generation,
        )

    def observe_canary(self, canary: WorkloadReport | None, auto_rollback: bool, generation: int | None) -> None:
        """Follows the canary Deployment (None: not seen): when it became Ready (its duration
        counts from then, and starts over if it stops being Ready), or that it missed its
        progress deadline."""
        target = self.target_version
        if target is None or self.canary_promoted or canary is None or canary.version != target:
            return
        ready = canary.ready
        if ready.status == "True" and self.canary_ready_time is None:
            self.canary_ready_time = now()
            self.set_condition(
                Observed(
                    ROLLED_OUT,
                    "False",
                    "CanaryReady",
                    f"the canary of version {target} is Ready beside version {self.model_version}: {ready.message}",
                ),
                generation,
            )
        elif ready.status != "True":
            self.canary_ready_time = None
            if ready.reason == "ProgressDeadlineExceeded" and auto_rollback:
                self.fail_rollout(
                    "RolledBack",
                    f"the canary of version {target} did not become Ready in time ({ready.message})",
                    generation,
                )

    def settle_rollout(
        self, annotations: Mapping[str, str], canary_seconds: int | None, generation: int | None, at: datetime
    ) -> None:
        """Acts on time and manual control: aborts a rollout annotated with its version;
        promotes a canary (`canary_seconds` is its duration; None: not a canary) that stayed
        Ready that long, or that is annotated with its version."""
        target = self.target_version
        if target is None:
            return
        if annotations.get(ABORT_ANNOTATION) == target:
            self.fail_rollout(
                "RolloutAborted",
                f"the rollout of version {target} was aborted ({ABORT_ANNOTATION}={target})",
                generation,
            )
            return
        if canary_seconds is None or self.canary_promoted:
            return
        if annotations.get(PROMOTE_ANNOTATION) == target:
            why = f"promoted by {PROMOTE_ANNOTATION}={target}"
        elif (ready_time := self.canary_ready_time) and at >= _parse(ready_time) + timedelta(seconds=canary_seconds):
            why = f"Ready for {canary_seconds} s"
        else:
            return
        self.canary_promoted = True
        self.set_condition(
            Observed(
                ROLLED_OUT,
                "False",
                "CanaryPromoted",
                f"the canary of version {target} was {why}: rolling it out to every replica "
                f"to replace version {self.model_version}",
            ),
            generation,
        )

    # What a change is worth telling.

    def news_since(self, before: ModelDeploymentStatus) -> list[News]:
        """The Events the change from `before` is worth: Ready changing (a failure even when
        it was not Ready already), and a rollout that started, finished, was rolled back or
        cancelled. One write may hold a whole rollout."""
        return [*self._ready_news(before), *self._rollout_news(before)]

    def _ready_news(self, before: ModelDeploymentStatus) -> list[News]:
        was, now_ready = before.condition(READY), self.condition(READY)
        if now_ready is None:
            return []
        # A failure is news even when Ready was False already: a Job is not Ready while it runs.
        failed = now_ready.reason in FAILURES and (was is None or was.reason != now_ready.reason)
        if was is not None and was.status == now_ready.status and not failed:
            return []
        if was is None and now_ready.status != ConditionStatus.true and not failed:
            return []  # a new workload not ready *yet* is no news; its becoming Ready is
        status = now_ready.status.value
        return [News(f"Ready{status}", f"{now_ready.reason}: {now_ready.message}", now_ready.reason in FAILURES)]

    def _rollout_news(self, before: ModelDeploymentStatus) -> list[News]:
        serving, target, failed = before.model_version, before.target_version, before.failed_version
        now_serving, now_target, now_failed = self.model_version, self.target_version, self.failed_version
        if serving is None:
            return []  # creation, not a rollout
        started = now_target if now_target not in (None, target) else None
        if now_serving != serving and now_serving != target:
            started = now_serving
        found = []
        if started is not None:
            found.append(News("RolloutStarted", f"rolling out version {started} to replace version {serving}", False))
        rolled_out = (self.condition(ROLLED_OUT) or _NO_CONDITION).message
        if self.canary_ready_time and not before.canary_ready_time:
            found.append(News("CanaryReady", rolled_out, False))
        if self.canary_promoted and not before.canary_promoted:
            found.append(News("CanaryPromoted", rolled_out, False))
        if now_serving != serving:
            found.append(News("RolledOut", f"version {now_serving} replaced version {serving}", False))
        if now_failed not in (None, failed):
            found.append(News("RolledBack", rolled_out, True))
        elif target is not None and now_target is None and now_serving == serving:
            found.append(
                News("RolloutCancelled", f"version {target} is no longer wanted; version {serving} stays", False)
            )
        return found


_NO_CONDITION = Condition(type="", status=ConditionStatus.unknown, reason="", last_transition_time="")
