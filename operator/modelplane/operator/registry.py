"""Asking the MLflow model registry which version a ModelDeployment means.

The operator speaks the registry's REST API directly rather than through the MLflow
client: importing MLflow alone would more than double the operator's memory. The
credentials are MLflow's own variables (MLFLOW_TRACKING_TOKEN, or _USERNAME and
_PASSWORD), read from the operator's environment.
"""

from __future__ import annotations

import os
from functools import cache

import requests

from modelplane.operator.render.common import ResolvedModel
from modelplane.operator.spec import ModelReference

TIMEOUT_SECONDS = 10


class RegistryError(Exception):
    """The registry could not say; `reason` is the CamelCase word status reports."""

    reason = "RegistryError"


class RegistryUnreachable(RegistryError):
    reason = "RegistryUnreachable"


class ModelNotFound(RegistryError):
    reason = "ModelNotFound"


@cache
def _session() -> requests.Session:
    session = requests.Session()
    if token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
        session.headers["Authorization"] = f"Bearer {token}"
    elif username := os.environ.get("MLFLOW_TRACKING_USERNAME"):
        session.auth = (username, os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
    return session


def resolve(reference: ModelReference, default_uri: str | None) -> ResolvedModel:
    """The version `reference` names (its alias resolved), with its run and source."""
    uri = (reference.registry.uri or default_uri or "").rstrip("/")
    if not uri.startswith(("http://", "https://")):
        raise RegistryUnreachable(
            f"no MLflow tracking server to ask ({uri or 'none set'}): set spec.model.registry.uri, "
            "or the operator's default registry, to its http(s):// address"
        )
    if reference.alias:
        wanted = f"models:/{reference.name}@{reference.alias}"
        path, query = "registered-models/alias", {"name": reference.name, "alias": reference.alias}
    else:
        wanted = f"models:/{reference.name}/{reference.version}"
        path, query = "model-versions/get", {"name": reference.name, "version": reference.version}
    try:
        response = _session().get(f"{uri}/api/2.0/mlflow/{path}", params=query, timeout=TIMEOUT_SECONDS)
    except requests.RequestException as error:
        raise RegistryUnreachable(f"cannot reach the registry at {uri} to resolve {wanted}: {error}") from None
    if response.status_code == 404 or (response.status_code == 400 and "RESOURCE_DOES_NOT_EXIST" in response.text):
        raise ModelNotFound(f"{wanted} is not in the registry at {uri}: {_message(response)}")
    if response.status_code != 200:
        raise RegistryUnreachable(f"the registry at {uri} failed to resolve {wanted}: "
                                  f"HTTP {response.status_code} {_message(response)}")
    found = response.json()["model_version"]
    return ResolvedModel(name=found["name"], version=str(found["version"]),
                         run_id=found.get("run_id") or None, source=found.get("source"))


def _message(response: requests.Response) -> str:
    try:
        return response.json().get("message", response.text)
    except ValueError:
        return response.text[:200]
