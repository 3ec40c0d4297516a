"""A model's MLmodel file, read without MLflow: its flavors, its signature, its example.

Importing MLflow's model machinery takes longer than loading and scoring most models, so
a model in one of the formats Modelplane reads itself starts without it. MLflow's own
types (its Schema, its PyFuncModel) are built from the same file only when something
asks for them.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from mlflow.models import Model
    from mlflow.types import Schema

# The column types of MLflow's signatures that a request's values are checked against
# one by one (dataplane.columns); any other input is read by MLflow's parsers.
COLUMN_TYPES = ("double", "float", "long", "integer", "boolean", "string", "binary", "datetime")
# Those whose values MLflow's enforcement hands the model as they are, given arrays of the
# type's own dtype (it turns strings into pandas' string type, and decodes binary).
UNCHANGED_TYPES = ("double", "float", "long", "integer", "boolean", "datetime")
_COLUMN_KEYS = {"type", "name", "required"}


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str  # one of COLUMN_TYPES
    required: bool


class Specs:
    """One side of a model's signature, its inputs or its outputs, as the JSON MLflow
    writes into the MLmodel file."""

    def __init__(self, json_text: str | None) -> None:
        self.json = json_text
        specs = _specs(json_text)
        # The named, typed columns a request is checked against; None for a signature of
        # tensors or of nested types, or for no signature.
        self.columns = _columns(specs)
        # Whether every spec is one this reading knows MLflow reads without complaint:
        # typed columns, or tensors. Any other is read by MLflow at load, so that a spec
        # it refuses ends start-up rather than fails a request.
        self.understood = specs is None or self.columns is not None or _well_formed_tensors(specs)

    @cached_property
    def schema(self) -> Schema | None:
        """MLflow's Schema of the same specs, for MLflow's parsers and documents."""
        if self.json is None:
            return None
        from mlflow.types import Schema

        # MLflow leaves from_json unannotated; it returns a Schema.
        return cast("Schema", Schema.from_json(self.json))


def _specs(json_text: str | None) -> list[dict[str, Any]] | None:
    if json_text is None:
        return None
    try:
        specs = json.loads(json_text)
    except ValueError as error:
        raise ValueError(f"its signature is not JSON: {error}") from None
    if not isinstance(specs, list) or not all(isinstance(spec, dict) for spec in specs):
        raise ValueError("its signature is not a list of column or tensor specs")
    return specs


def _columns(specs: list[dict[str, Any]] | None) -> tuple[ColumnSpec, ...] | None:
    # The same reading as MLflow's ColSpec.from_json_dict, for the specs it covers.
    if not specs:
        return None
    columns = []
    for spec in specs:
        name, required = spec.get("name"), spec.get("required", True)
        if not spec.keys() <= _COLUMN_KEYS or spec.get("type") not in COLUMN_TYPES:
            return None
        if type(name) is not str or not name or type(required) is not bool:
            return None
        columns.append(ColumnSpec(name, spec["type"], required))
    if len({column.name for column in columns}) < len(columns):
        return None  # a frame cannot hold two columns of one name
    return tuple(columns)


_TENSOR_KEYS = {"type", "name", "tensor-spec"}


def _well_formed_tensors(specs: list[dict[str, Any]]) -> bool:
    """Whether MLflow's Schema.from_json reads `specs` as tensors: each a known numpy
    dtype without a size and a list of whole dimensions, named if there are several."""
    import numpy as np

    if not specs:
        return False  # MLflow refuses a signature side without specs
    for spec in specs:
        tensor = spec.get("tensor-spec")
        if spec.get("type") != "tensor" or not spec.keys() <= _TENSOR_KEYS or not isinstance(tensor, dict):
            return False
        if tensor.keys() != {"dtype", "shape"} or not isinstance(tensor["dtype"], str):
            return False
        shape = tensor["shape"]
        if not isinstance(shape, list) or not all(type(size) is int and size >= -1 for size in shape):
            return False
        try:
            dtype = np.dtype(tensor["dtype"])
        except (TypeError, ValueError):
            return False
        if dtype.char in "US" and not dtype.name.isalpha():
            return False
    names = [spec.get("name") for spec in specs]
    if len(specs) > 1:
        return all(type(name) is str and name for name in names) and len(set(names)) == len(names)
    return names[0] is None or (type(names[0]) is str and bool(names[0]))


# A model without a signature.
NO_SPECS = Specs(None)


@dataclass(frozen=True)
class ModelFile:
    """What the MLmodel file of the model in `folder` says."""

    document: dict[str, Any]  # the file as YAML reads it, for MLflow's Model
    flavors: dict[str, Any]
    inputs: Specs
    outputs: Specs
    has_params: bool
    saved_input_example_info: dict[str, Any] | None
    model_uuid: str | None

    @classmethod
    def read(cls, mlmodel: Path) -> ModelFile:
        """The MLmodel file `mlmodel`, already known to lie inside its model's folder.
        ValueError says what is wrong with it."""
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            document = yaml.load(mlmodel.read_text(), Loader=loader)
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise ValueError(f"its MLmodel file is not YAML: {str(error).splitlines()[0]}") from None
        if not isinstance(document, dict) or not all(isinstance(key, str) for key in document):
            raise ValueError("its MLmodel file is not a YAML mapping of names")
        flavors = document.get("flavors") or {}
        signature = document.get("signature")
        if signature is None:
            signature = {}
        elif isinstance(signature, dict) and not any(signature.get(side) for side in ("inputs", "outputs", "params")):
            raise ValueError("its signature declares no inputs, outputs or params")
        if not isinstance(flavors, dict) or not isinstance(signature, dict):
            raise ValueError("its MLmodel file's flavors and signature must be mappings")
        # Read now, as MLflow's Model would read them later: a list of names, and a mapping
        # (MLflow takes text for the path of a file to read it from, which is not the model's to name).
        env_vars = document.get("env_vars")
        if env_vars is not None and not (isinstance(env_vars, list) and all(isinstance(v, str) for v in env_vars)):
            raise ValueError("its MLmodel file's env_vars must be a list of variable names")
        if document.get("resources") is not None and not isinstance(document["resources"], dict):
            raise ValueError("its MLmodel file's resources must be a mapping")
        example = document.get("saved_input_example_info")
        uuid = document.get("model_uuid")
        return cls(
            document=document,
            flavors=flavors,
            inputs=Specs(_text(signature.get("inputs"), "inputs")),
            outputs=Specs(_text(signature.get("outputs"), "outputs")),
            has_params=bool(signature.get("params")),
            saved_input_example_info=example if isinstance(example, dict) else None,
            model_uuid=uuid if isinstance(uuid, str) else None,
        )

    def mlflow_model(self) -> Model:
        """MLflow's Model of the same file, as it was read: not read again, so it cannot
        say otherwise than what the runtime checks against."""
        from mlflow.models import Model

        return Model.from_dict(copy.deepcopy(self.document))


def _text(value: object, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value or None  # MLflow reads an empty side as none
    raise ValueError(f"its signature's {what} must be MLflow's JSON text")
