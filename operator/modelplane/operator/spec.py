"""The ModelDeployment resource: the one source of truth for its CRD.

The CRD's schema in `crds/` is generated from these models (`crd.py`), field
descriptions included (they are the docstrings below). Cross-field rules are written
once, in CEL, beside the model they guard: the API server enforces them from the CRD's
`x-kubernetes-validations`, and `validate_manifest` evaluates the same expressions, so a
manifest checked on a laptop is refused for the same reason and with the same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from modelplane.contract import STREAM_URL_PATTERN, DataFormat

GROUP = "modelplane.io"
VERSION = "v1alpha1"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class Rule:
    """A CEL rule on the object it is attached to (`self`); `field` names the field the
    message is about, relative to that object, as the CRD's `fieldPath`."""

    cel: str
    message: str
    field: str | None = None


class _Spec(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )


def _rules(*rules: Rule) -> ConfigDict:
    return {"json_schema_extra": {"x-kubernetes-validations": [_cel_entry(r) for r in rules]}}


def _cel_entry(rule: Rule) -> JsonDict:
    entry: JsonDict = {"rule": rule.cel, "message": rule.message}
    if rule.field:
        entry["fieldPath"] = rule.field
    return entry


class Mode(str, Enum):
    online = "online"
    batch = "batch"
    streaming = "streaming"


class SecretReference(_Spec):
    name: str = Field(min_length=1, max_length=253)
    """Name of a Secret in the ModelDeployment's namespace. Its keys become environment
    variables of the serving container, e.g. MLFLOW_TRACKING_USERNAME and
    MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN."""


REGISTRY_RULES = (
    Rule(
        # No user name or password (credentials belong in secretRef), no query or fragment
        # (they would change which path of the server is asked).
        cel=r"!has(self.uri) || self.uri.matches('^(?i:https?)://[^/?#@\\s]+(/[^?#@\\s]*)?$')",
        message="spec.model.registry.uri must be an http:// or https:// address with no user name, password, "
        "query or fragment, e.g. http://mlflow.mlflow.svc:5000 (credentials go in secretRef)",
        field=".uri",
    ),
)


class Registry(_Spec):
    model_config = _rules(*REGISTRY_RULES)

    uri: str | None = Field(default=None, min_length=1, max_length=2048)
    """MLflow tracking and registry URI, e.g. http://mlflow.mlflow.svc:5000. Defaults to
    the operator's default registry."""

    secret_ref: SecretReference | None = None
    """Credentials for the registry: passed to the serving container as environment, and
    read by the operator to resolve an alias. Without it, the operator asks a registry
    other than its default one anonymously: its own credentials never leave its default
    registry."""


MODEL_RULES = (
    Rule(
        cel="has(self.version) != has(self.alias)",
        message="set exactly one of spec.model.version (a fixed version) or spec.model.alias (e.g. champion)",
    ),
)


class ModelReference(_Spec):
    model_config = _rules(*MODEL_RULES)

    name: str = Field(min_length=1, max_length=256)
    """Name of the registered model in the MLflow model registry."""

    version: str | None = Field(default=None, pattern=r"^[1-9][0-9]*$", max_length=20)
    """A fixed registry version, e.g. "3". Exactly one of version or alias."""

    alias: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$", max_length=256)
    """A registry alias, e.g. champion. It is resolved to a version, which is pinned in
    status and in the workloads. Exactly one of version or alias."""

    registry: Registry = Field(default_factory=Registry, json_schema_extra={"default": {}})
    """Where the registry is and how to authenticate to it."""


@dataclass(frozen=True)
class ResolvedModel:
    """What the registry resolved a ModelReference to: one version, as the registry
    described it. Recorded in status, rendered into the workloads."""

    name: str
    version: str
    run_id: str | None = None
    source: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


class Autoscaling(_Spec):
    model_config = _rules(
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message="spec.online.autoscaling.minReplicas must not exceed maxReplicas",
            field=".minReplicas",
        )
    )

    min_replicas: int = Field(default=1, ge=1, le=1000)
    """Fewest replicas the autoscaler keeps."""

    max_replicas: int = Field(ge=1, le=1000)
    """Most replicas the autoscaler scales to."""

    target_cpu_utilization_percentage: int = Field(default=70, ge=1, le=100, alias="targetCPUUtilizationPercentage")
    """Average CPU use, as a percentage of the CPU request, that the autoscaler aims for."""


class Batching(_Spec):
    max_batch_size: int = Field(default=32, ge=1, le=4096)
    """Most requests scored together in one predict call."""

    max_latency_ms: int = Field(default=2, ge=0, le=10000)
    """Longest a request waits for others to join its batch, in milliseconds. A lone
    request is scored at once."""


class Online(_Spec):
    replicas: int = Field(default=1, ge=0, le=1000)
    """Serving replicas; ignored when autoscaling is set."""

    port: int = Field(default=8080, ge=1024, le=65535)
    """Container and Service port of the HTTP API."""

    autoscaling: Autoscaling | None = None
    """Scale on CPU with a HorizontalPodAutoscaler."""

    batching: Batching = Field(default_factory=Batching, json_schema_extra={"default": {}})
    """Adaptive batching of concurrent requests."""

    ui: bool = True
    """Serve a prediction page generated from the model's signature at / (and the API's
    page at /docs); false serves neither. The OpenAPI document is always at /openapi.json."""


class ConcurrencyPolicy(str, Enum):
    Allow = "Allow"
    Forbid = "Forbid"
    Replace = "Replace"


BATCH_RULES = (
    Rule(
        cel=r"!has(self.schedule) || self.schedule.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\\S+\\s+){4}\\S+)$')",
        message="spec.batch.schedule must be a cron expression of five fields, e.g. '0 * * * *', or a macro such as @daily",
        field=".schedule",
    ),
)


class Batch(_Spec):
    model_config = _rules(*BATCH_RULES)

    schedule: str | None = Field(default=None, max_length=256)
    """Cron schedule, e.g. "0 2 * * *". Without it, one Job runs once."""

    input: str = Field(min_length=1, max_length=4096)
    """File, folder or glob to score: a local path in the pod or any fsspec URL (s3://, gs://, ...)."""

    output: str = Field(min_length=1, max_length=4096)
    """Folder the predictions are written to, atomically, with a _SUCCESS marker."""

    format: DataFormat = DataFormat.parquet
    """Format of the output files."""

    id_column: str | None = Field(default=None, max_length=256)
    """Input column copied beside each prediction; the row index when unset."""

    parallelism: int = Field(default=1, ge=1, le=1000)
    """Shards of an Indexed Job, each scoring a disjoint part of the input."""

    suspend: bool = False
    """Pause the schedule without deleting anything."""

    concurrency_policy: ConcurrencyPolicy = ConcurrencyPolicy.Forbid
    """What to do when a run is due while the previous one still runs."""


class LagAutoscaling(_Spec):
    model_config = _rules(
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message="spec.streaming.autoscaling.minReplicas must not exceed maxReplicas",
            field=".minReplicas",
        )
    )

    min_replicas: int = Field(default=1, ge=0, le=1000)
    """Fewest consumers kept; 0 lets an idle stream scale them away."""

    max_replicas: int = Field(ge=1, le=1000)
    """Most consumers; more than the topic's partitions only adds idle ones on Kafka."""

    lag_threshold: int = Field(default=1000, ge=1)
    """Events behind per consumer that add a consumer."""

    nats_monitoring_port: int = Field(default=8222, ge=1, le=65535)
    """Port of the NATS server's HTTP monitoring endpoint, where KEDA reads JetStream lag."""


class Streaming(_Spec):
    model_config = _rules(
        *(
            Rule(
                cel=f"!self.{field}.startsWith('nats://') || self.{field}.contains('stream=')",
                message=f"spec.streaming.{name} names a NATS subject: add its JetStream stream, as ?stream=NAME",
                field=f".{field}",
            )
            for field, name in (("source", "source"), ("sink", "sink"))
        )
    )

    source: str = Field(min_length=1, max_length=2048, pattern=STREAM_URL_PATTERN)
    """Stream to consume, e.g. kafka://broker:9092/transactions, redis://redis:6379/events, nats://nats:4222/orders."""

    sink: str = Field(min_length=1, max_length=2048, pattern=STREAM_URL_PATTERN)
    """Stream the predictions are written to."""

    dead_letter: str | None = Field(default=None, max_length=2048, pattern=STREAM_URL_PATTERN)
    """Stream that receives messages which cannot be decoded or scored, with the error."""

    consumer_group: str | None = Field(default=None, max_length=256, pattern=r"^[A-Za-z0-9._-]+$")
    """Consumer group shared by all replicas; defaults to the ModelDeployment's namespace and name."""

    replicas: int = Field(default=1, ge=0, le=1000)
    """Consumer replicas, sharing one consumer group."""

    autoscaling: LagAutoscaling | None = None
    """Scale consumers on the group's lag with a KEDA ScaledObject, where KEDA is installed
    (its CRD present when the operator starts); without KEDA, `replicas` stays."""


class RolloutStrategy(str, Enum):
    RollingUpdate = "RollingUpdate"
    Canary = "Canary"


class Canary(_Spec):
    weight: int = Field(default=10, ge=1, le=99)
    """Percent of the replicas, and so of the traffic, that run the new version while the
    canary lasts. Traffic splits by replica ratio through the one Service, so the share is
    rounded to whole replicas: at least one canary and one stable replica."""

    duration_seconds: int = Field(default=300, ge=0, le=604800)
    """How long the canary must stay Ready before it is promoted to every replica. Annotate
    modelplane.io/promote-canary=VERSION to promote it sooner."""


class Rollout(_Spec):
    strategy: RolloutStrategy = RolloutStrategy.RollingUpdate
    """How a new version reaches an online workload: RollingUpdate replaces the pods a few
    at a time; Canary first runs it beside the serving version on a share of the replicas
    (spec.rollout.canary). Batch and streaming workloads always roll."""

    canary: Canary = Field(default_factory=Canary, json_schema_extra={"default": {}})
    """The share and duration of a canary (strategy Canary)."""

    track: bool = True
    """Follow the alias when it moves in the registry; false pins the version resolved at creation."""

    poll_interval_seconds: int = Field(default=60, ge=5, le=86400)
    """How often the registry is asked where the alias points."""

    progress_deadline_seconds: int = Field(default=600, ge=10, le=86400)
    """How long a new version's pods may take to become Ready."""

    auto_rollback: bool = True
    """Return to the last Ready version when a new one misses the progress deadline."""


SPEC_RULES = (
    Rule(
        cel="self.mode != 'batch' || has(self.batch)",
        message="spec.batch is required when spec.mode is batch: set at least batch.input and batch.output",
        field=".batch",
    ),
    Rule(
        cel="self.mode != 'streaming' || has(self.streaming)",
        message="spec.streaming is required when spec.mode is streaming: set at least streaming.source and streaming.sink",
        field=".streaming",
    ),
)


class ModelDeploymentSpec(_Spec):
    model_config = _rules(*SPEC_RULES)

    model: ModelReference
    """The registered model to serve."""

    mode: Mode
    """How the model is put to work: online (an HTTP API), batch (scheduled scoring of
    files) or streaming (a consumer of an event stream). Changing it switches the workloads."""

    image: str | None = Field(default=None, max_length=1024)
    """Serving image; defaults to the operator's serving image."""

    # The Pod fields below pass through as given: `dict[Any, Any]`, not string keys, so that
    # their keys are checked no more than the CRD's schema checks them.
    resources: dict[Any, Any] | None = Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    """Compute resources of the serving container (requests and limits), as in a Pod. They
    replace the operator's default resources whole; {} for none."""

    env: list[dict[Any, Any]] | None = Field(
        default=None, json_schema_extra={"items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    )
    """Extra environment variables of the serving container, as in a Pod."""

    node_selector: dict[str, str] | None = None
    """Node labels the pods must match."""

    tolerations: list[dict[Any, Any]] | None = Field(
        default=None, json_schema_extra={"items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    )
    """Taints the pods tolerate, as in a Pod."""

    affinity: dict[Any, Any] | None = Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    """Affinity rules of the pods, as in a Pod."""

    online: Online | None = None
    """Settings of online mode."""

    batch: Batch | None = None
    """Settings of batch mode; required when mode is batch."""

    streaming: Streaming | None = None
    """Settings of streaming mode; required when mode is streaming."""

    rollout: Rollout = Field(default_factory=Rollout, json_schema_extra={"default": {}})
    """How new model versions reach the workloads."""
