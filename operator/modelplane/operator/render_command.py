"""`modelplane render -f FILE`: the children the operator would apply, as YAML."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import yaml

from modelplane.operator.manifest import ManifestError, load_manifests
from modelplane.operator.registry import Registries, RegistryClient, RegistryError
from modelplane.operator.render import render
from modelplane.operator.settings import OperatorSettings, SettingsError
from modelplane.operator.spec import ResolvedModel


def main(path: Path, serving_image: str | None, registry_uri: str | None, version: str | None) -> int:
    # The operator's own settings, from the same variables, so that what this prints is
    # what an operator configured alike applies.
    try:
        defaults = OperatorSettings.from_environment().render
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    settings = dataclasses.replace(
        defaults,
        serving_image=serving_image or defaults.serving_image,
        registry_uri=registry_uri or defaults.registry_uri,
    )
    documents = []
    # No cluster to read a secretRef from: such a registry is asked anonymously.
    registry = RegistryClient(Registries(settings.registry_uri), kube=None)
    try:
        for deployment in load_manifests(path):
            reference = deployment.spec.model
            if version:
                model = ResolvedModel(reference.name, version)
            elif reference.version:
                # A fixed version needs no registry: render stays usable offline, in GitOps.
                model = ResolvedModel(reference.name, reference.version)
            else:
                model = registry.resolve(reference)
            documents += render(deployment, model, settings)
    except ManifestError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RegistryError as error:
        print(f"error: {error} (or pin one with --version)", file=sys.stderr)
        return 1
    yaml.safe_dump_all(documents, sys.stdout, sort_keys=False)
    return 0
