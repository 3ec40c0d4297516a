"""The serving runtime's settings: each a command-line flag with a MODELPLANE_* twin.

The operator configures a pod through the environment alone, so every setting must be
reachable that way; a flag given on the command line wins over its variable.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any, TypeVar

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelplane.contract import ENV_PREFIX, STREAM_URL_PATTERN, DataFormat, Env


class ModelSettings(BaseSettings):
    """What every command that loads a model needs."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, use_attribute_docstrings=True, frozen=True)

    model: str = Field(min_length=1)
    """MLflow model URI: models:/NAME/VERSION, models:/NAME@ALIAS, runs:/RUN/PATH or a local path."""

    model_cache: Path = Path.home() / ".cache" / "modelplane" / "models"
    """Folder the model is downloaded to, once per resolved version (the pod's emptyDir)."""

    allow_pickle: bool = False
    """Load model formats that unpickle (running code from the artifact); off by default."""

    strict_deps: bool = False
    """Refuse to start when a package the model requires is not installed."""


class ServeSettings(ModelSettings):
    host: str = "0.0.0.0"
    """Address to listen on."""

    port: int = Field(default=8080, ge=1, le=65535)
    """Port of the HTTP API."""

    workers: str = Field(default="1", pattern=r"^(auto|[1-9][0-9]{0,2})$")
    """Server processes: a number, or auto for one per CPU of the container's quota."""

    max_batch_size: int = Field(default=32, ge=1, le=4096)
    """Most requests scored together in one predict call."""

    max_batch_wait_ms: float = Field(default=2.0, ge=0, le=10_000)
    """Longest a request waits for others to join its batch; a lone request never waits."""

    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    """Largest request body accepted; a larger one gets 413."""

    header_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    """Longest a connection may take to send a request's headers; then it is closed."""

    body_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    """Longest a request's body may take to arrive after its headers; then the connection
    is closed."""

    ui: bool = True
    """Serve the prediction page at / and the API's page at /docs."""


class BatchSettings(ModelSettings):
    input: str = Field(min_length=1)
    """File, folder or glob to score: a local path or any fsspec URL."""

    output: str = Field(min_length=1)
    """Folder the predictions are written to."""

    format: DataFormat = DataFormat.parquet
    """Format of the output files."""

    id_column: str | None = None
    """Input column written beside each prediction; the row number in its file when unset."""

    shard_index: int = Field(
        default=0,
        ge=0,
        validation_alias=AliasChoices("shard_index", f"{ENV_PREFIX}SHARD_INDEX", Env.JOB_COMPLETION_INDEX),
    )
    """This process's shard (an Indexed Job sets JOB_COMPLETION_INDEX)."""

    shard_count: int = Field(default=1, ge=1)
    """How many processes split the input between them."""

    only_new: bool = False
    """Score only input files no earlier run has scored (a ledger beside the output)."""

    chunk_rows: int = Field(default=65_536, ge=1)
    """Rows read, scored and written at a time: memory is bounded by this, not the input."""


class StreamSettings(ModelSettings):
    source: str = Field(min_length=1, pattern=STREAM_URL_PATTERN)
    """Stream to consume: kafka://host:port/topic, redis://host:port/stream or
    nats://host:port/subject?stream=NAME."""

    sink: str = Field(min_length=1, pattern=STREAM_URL_PATTERN)
    """Stream the predictions are written to."""

    dead_letter: str | None = Field(default=None, pattern=STREAM_URL_PATTERN)
    """Stream for events that cannot be decoded or scored; unset: they are logged."""

    consumer_group: str = Field(default="modelplane", min_length=1)
    """Consumer group (Kafka, Redis) or durable consumer (NATS) shared by every replica."""

    consumer_name: str = Field(default_factory=socket.gethostname, min_length=1)
    """This consumer within its group (Redis); the pod name by default, so a restarted pod
    re-reads what it had not acknowledged."""

    batch_size: int = Field(default=256, ge=1, le=65_536)
    """Most events fetched and scored together in one predict call."""

    batch_wait_ms: float = Field(default=50.0, ge=0, le=60_000)
    """Longest a fetch waits for events when the stream is idle."""

    max_attempts: int = Field(default=3, ge=1, le=100)
    """Times an event whose scoring fails is tried before it is dead-lettered."""

    metrics_host: str = "0.0.0.0"
    """Address of /metrics, /healthz and /readyz."""

    metrics_port: int = Field(default=9090, ge=1, le=65535)
    """Port of /metrics, /healthz and /readyz."""


Settings = TypeVar("Settings", bound=BaseSettings)


def from_flags(settings: type[Settings], overrides: dict[str, Any]) -> Settings | None:
    """Flags given on the command line over MODELPLANE_* variables over defaults, or None
    after printing which flag (and variable) is wrong."""
    try:
        return settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as error:
        for problem in error.errors():
            field = str(problem["loc"][0])
            print(
                f"error: --{field.replace('_', '-')} ({ENV_PREFIX}{field.upper()}): {problem['msg']}", file=sys.stderr
            )
        return None
