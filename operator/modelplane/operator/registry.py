"""Asking the MLflow model registry which version a ModelDeployment means."""

from __future__ import annotations

from modelplane.operator.render.common import ResolvedModel
from modelplane.operator.spec import ModelReference


class RegistryError(Exception):
    """The registry could not say; `reason` is the CamelCase word status reports."""

    reason = "RegistryError"


class RegistryUnreachable(RegistryError):
    reason = "RegistryUnreachable"


class ModelNotFound(RegistryError):
    reason = "ModelNotFound"


def resolve(reference: ModelReference, default_uri: str | None) -> ResolvedModel:
    """The version `reference` names (its alias resolved), with its run and source."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException, RestException

    uri = reference.registry.uri or default_uri
    if not uri:
        raise RegistryUnreachable(
            "no registry: set spec.model.registry.uri, or the operator's default registry (MLFLOW_TRACKING_URI)"
        )
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    wanted = f"models:/{reference.name}@{reference.alias}" if reference.alias else f"models:/{reference.name}/{reference.version}"
    try:
        if reference.alias:
            found = client.get_model_version_by_alias(reference.name, reference.alias)
        else:
            found = client.get_model_version(reference.name, reference.version)
    except RestException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise ModelNotFound(f"{wanted} is not in the registry at {uri}: {error.message}") from None
        raise RegistryUnreachable(f"the registry at {uri} failed to resolve {wanted}: {error.message}") from None
    except MlflowException as error:
        raise RegistryUnreachable(f"cannot reach the registry at {uri} to resolve {wanted}: {error.message}") from None
    return ResolvedModel(name=found.name, version=str(found.version), run_id=found.run_id or None, source=found.source)
