"""The serving runtime's settings: each a command-line flag with a MODELPLANE_* twin.

The operator configures a pod through the environment alone, so every setting must be
reachable that way; a flag given on the command line wins over its variable.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELPLANE_", use_attribute_docstrings=True, frozen=True)

    model: str = Field(min_length=1)
    """MLflow model URI: models:/NAME/VERSION, models:/NAME@ALIAS, runs:/RUN/PATH or a local path."""

    host: str = "0.0.0.0"
    """Address to listen on."""

    port: int = Field(default=8080, ge=1, le=65535)
    """Port of the HTTP API."""

    model_cache: Path = Path.home() / ".cache" / "modelplane" / "models"
    """Folder the model is downloaded to, once per resolved version (the pod's emptyDir)."""

    max_batch_size: int = Field(default=32, ge=1, le=4096)
    """Most requests scored together in one predict call."""

    max_batch_wait_ms: float = Field(default=2.0, ge=0, le=10_000)
    """Longest a request waits for others to join its batch; a lone request never waits."""

    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    """Largest request body accepted; a larger one gets 413."""

    allow_pickle: bool = False
    """Load model formats that unpickle (running code from the artifact); off by default."""
