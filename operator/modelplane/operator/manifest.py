"""Reading a ModelDeployment manifest without a cluster, with the CRD's own rules.

The API server checks a manifest against the CRD's schema, applies its defaults, then
evaluates its CEL rules. This does the same from the same source: the pydantic models
check types, bounds and enums and fill in defaults, and the CEL rules are read from the
generated schema and evaluated with a CEL interpreter, so `modelplane render` and
`modelplane run` refuse exactly what `kubectl apply` refuses, with the same message.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from modelplane.operator.crd import structural_schema
from modelplane.operator.objects import Object
from modelplane.operator.spec import API_VERSION, KIND, ModelDeploymentSpec

if TYPE_CHECKING:
    import celpy
    from celpy.adapter import JSON
    from celpy.celtypes import Value


class ManifestError(ValueError):
    """A manifest that cannot be used; each problem names its field and the fix."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        super().__init__(
            f"{source}: " + "; ".join(problems)
            if len(problems) == 1
            else f"{source}:\n" + "\n".join(f"  - {p}" for p in problems)
        )


@dataclass(frozen=True)
class ModelDeployment:
    name: str
    namespace: str | None
    spec: ModelDeploymentSpec
    uid: str | None = None
    generation: int | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)


def load_manifests(path: Path) -> list[ModelDeployment]:
    """Every ModelDeployment in a YAML file (other kinds are refused, not skipped)."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as error:
        raise ManifestError(str(path), [f"not valid YAML: {error}"]) from None
    except OSError as error:
        raise ManifestError(str(path), [error.strerror or str(error)]) from None
    if not documents:
        raise ManifestError(str(path), [f"holds no {KIND}"])
    return [
        parse_manifest(document, f"{path}[{index}]" if len(documents) > 1 else str(path))
        for index, document in enumerate(documents)
    ]


def parse_manifest(document: object, source: str = "manifest", check_rules: bool = True) -> ModelDeployment:
    """The typed ModelDeployment of `document`. `check_rules=False` skips the CEL rules,
    for objects the API server has already checked (the operator's)."""
    if not isinstance(document, dict):
        raise ManifestError(
            source, [f"must be a mapping with apiVersion, kind, metadata and spec, not {type(document).__name__}"]
        )
    problems = []
    if document.get("apiVersion") != API_VERSION:
        problems.append(f"apiVersion: must be {API_VERSION}, not {document.get('apiVersion')!r}")
    if document.get("kind") != KIND:
        problems.append(f"kind: must be {KIND}, not {document.get('kind')!r}")
    metadata = document.get("metadata") or {}
    if not isinstance(metadata, dict) or not metadata.get("name"):
        problems.append("metadata.name: required; name the ModelDeployment, e.g. metadata.name: iris")
    if "spec" not in document:
        problems.append("spec: required; set at least spec.model and spec.mode")
    if problems:
        raise ManifestError(source, problems)
    spec = parse_spec(document["spec"], source, check_rules)
    return ModelDeployment(
        name=metadata["name"],
        namespace=metadata.get("namespace"),
        spec=spec,
        uid=metadata.get("uid"),
        generation=metadata.get("generation"),
        annotations=metadata.get("annotations") or {},
    )


def parse_spec(spec: object, source: str = "manifest", check_rules: bool = True) -> ModelDeploymentSpec:
    try:
        parsed = ModelDeploymentSpec.model_validate(spec)
    except ValidationError as error:
        raise ManifestError(source, [_describe(e) for e in error.errors()]) from None
    if not check_rules:
        return parsed
    defaulted = parsed.model_dump(mode="json", by_alias=True, exclude_none=True)
    problems = list(_broken_rules(_spec_schema(), defaulted))
    if problems:
        raise ManifestError(source, problems)
    return parsed


def _describe(error: ErrorDetails) -> str:
    where = ".".join(["spec", *(str(part) for part in error["loc"])])
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown field; check its spelling against `kubectl explain modeldeployment.spec`"
    if error["type"] == "missing":
        return f"{where}: required"
    return f"{where}: {error['msg']}"


@cache
def _spec_schema() -> Object:
    return structural_schema(ModelDeploymentSpec)


@cache
def _program(rule: str) -> celpy.Runner:
    import celpy  # only where rules are checked: the operator leaves that to the API server

    environment = celpy.Environment()
    return environment.program(environment.compile(rule))


def _broken_rules(schema: Object, value: JSON) -> Iterator[str]:
    """The messages of the CEL rules `value` breaks, children first as the API server
    does. Each message names its field itself (a test holds every rule to that)."""
    if isinstance(value, dict):
        for name, child_schema in schema.get("properties", {}).items():
            if name in value:
                yield from _broken_rules(child_schema, value[name])
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            yield from _broken_rules(schema["items"], item)
    for rule in schema.get("x-kubernetes-validations", []):
        if not _program(rule["rule"]).evaluate({"self": _cel_value(value)}):
            yield rule["message"]


def _cel_value(value: JSON) -> Value:
    from celpy.adapter import json_to_cel

    return json_to_cel(value)
