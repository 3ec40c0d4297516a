"""Generates the ModelDeployment CRD from the pydantic models in `spec.py` and `status.py`.

Kubernetes wants a structural schema: every node typed, no references, no `anyOf` for
optional fields. Pydantic's JSON schema has all three, so it is rewritten here: refs are
inlined, `X | None` becomes a plain optional `X`, titles are dropped, and the CEL rules the
models carry stay where they are. `python -m modelplane.operator.crd > crds/...` writes the
checked-in file; a test fails when it drifts.
"""

from __future__ import annotations

import sys

import yaml
from pydantic import BaseModel

from modelplane.operator.objects import Object
from modelplane.operator.spec import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    ModelDeploymentSpec,
)
from modelplane.operator.status import ModelDeploymentStatus

CRD_NAME = f"{PLURAL}.{GROUP}"

_DROPPED_KEYS = {"title"}


def structural_schema(model: type[BaseModel]) -> Object:
    raw = model.model_json_schema(by_alias=True)
    definitions = raw.pop("$defs", {})
    return _structural(raw, definitions)


def _structural(node: Object, definitions: Object) -> Object:
    node = dict(node)
    if "$ref" in node:
        target = definitions[node.pop("$ref").rsplit("/", 1)[-1]]
        # The field's own description and default win over those of the referenced type.
        node = {**_structural(target, definitions), **node}
    if "anyOf" in node:
        choices = [choice for choice in node.pop("anyOf") if choice != {"type": "null"}]
        if len(choices) != 1:
            raise ValueError(f"a union of several types has no structural schema: {choices}")
        node = {**_structural(choices[0], definitions), **node}
    if node.get("default", ...) is None:
        del node["default"]
    if "description" in node:
        # Docstrings wrap; kubectl explain re-wraps, so a description is one line.
        node["description"] = " ".join(node["description"].split())
    if node.get("x-kubernetes-preserve-unknown-fields") or node.get("additionalProperties") is False:
        node.pop("additionalProperties", None)
    result = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            value = {name: _structural(child, definitions) for name, child in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            value = _structural(value, definitions)
        result[key] = value
    return result


def _printer_column(name: str, path: str, type_: str = "string", priority: int = 0) -> Object:
    column: Object = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        column["priority"] = priority
    return column


def custom_resource_definition() -> Object:
    spec_schema = structural_schema(ModelDeploymentSpec)
    status_schema = structural_schema(ModelDeploymentStatus)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME, "labels": {"app.kubernetes.io/part-of": "modelplane"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["mdep"],
                "categories": ["modelplane"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        _printer_column("Mode", ".spec.mode"),
                        _printer_column("Model", ".spec.model.name"),
                        _printer_column("Version", ".status.modelVersion"),
                        _printer_column("Ready", '.status.conditions[?(@.type=="Ready")].status'),
                        _printer_column("Endpoint", ".status.endpoint"),
                        _printer_column("Age", ".metadata.creationTimestamp", "date"),
                        _printer_column("Reason", '.status.conditions[?(@.type=="Ready")].reason', priority=1),
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": f"A {KIND} puts one registered MLflow model into production: online, batch or streaming.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render_yaml() -> str:
    header = f"# Generated from operator/modelplane/operator/spec.py ({API_VERSION}); do not edit.\n"
    return header + yaml.safe_dump(custom_resource_definition(), sort_keys=False, width=120)


if __name__ == "__main__":
    sys.stdout.write(render_yaml())
