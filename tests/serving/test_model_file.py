"""The MLmodel file read without MLflow: its signature means what MLflow's reading of it
means, and a file that cannot be read stops start-up with its reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mlflow.types import ColSpec, Schema, TensorSpec
from mlflow.types.schema import AnyType, Array, Map, Object, Property

from modelplane.serving.errors import ModelLoadError
from modelplane.serving.model import load
from modelplane.serving.model_file import Specs

SIGNATURES = {
    "numbers": Schema([ColSpec("double", "x"), ColSpec("long", "n"), ColSpec("float", "f", required=False)]),
    "every-column-type": Schema(
        [
            ColSpec(name, name, required=index % 2 == 0)
            for index, name in enumerate(
                ["double", "float", "long", "integer", "boolean", "string", "binary", "datetime"]
            )
        ]
    ),
    "unnamed-columns": Schema([ColSpec("double"), ColSpec("double")]),
    "tensor": Schema([TensorSpec(np.dtype("float64"), (-1, 4))]),
    "named-tensors": Schema([TensorSpec(np.dtype("int64"), (-1,), "a"), TensorSpec(np.dtype("int64"), (-1,), "b")]),
    "array-column": Schema([ColSpec("double", "x"), ColSpec(Array("double"), "v")]),
    "object-column": Schema([ColSpec(Object([Property("p", "string")]), "o")]),
    "map-column": Schema([ColSpec(Map("long"), "m")]),
    "any-column": Schema([ColSpec(AnyType(), "a")]),
}


def _mlflows_columns(schema: Schema) -> list[tuple[str, str, bool]] | None:
    """The named, typed columns MLflow's Schema holds, None if it holds anything else."""
    if schema.is_tensor_spec() or not schema.has_input_names():
        return None
    columns = []
    for spec in schema.inputs:
        if not isinstance(spec, ColSpec) or type(spec.type).__name__ != "DataType":
            return None
        columns.append((spec.name, spec.type.name, spec.required))
    return columns


@pytest.mark.parametrize("schema", SIGNATURES.values(), ids=SIGNATURES.keys())
def test_a_signature_reads_as_mlflow_reads_it(schema: Schema):
    specs = Specs(schema.to_json())

    read = None if specs.columns is None else [(c.name, c.type, c.required) for c in specs.columns]
    assert read == _mlflows_columns(schema)
    assert specs.schema == schema


def test_a_column_spec_mlflow_would_read_differently_is_left_to_mlflow():
    # Keys or values MLflow's ColSpec takes otherwise (or refuses) are never guessed at.
    assert Specs('[{"type": "double", "name": "x", "optional": true}]').columns is None
    assert Specs('[{"type": "double", "name": 3}]').columns is None
    assert Specs('[{"type": "double", "name": "x", "required": "no"}]').columns is None
    assert Specs("[]").columns is None


@pytest.mark.parametrize(
    ("mlmodel", "reason"),
    [
        ("flavors: [unclosed", "its MLmodel file is not YAML"),
        ("- a list", "its MLmodel file is not a YAML mapping"),
        # A tag that builds a Python object runs code under an unsafe loader.
        ("flavors: !!python/object/apply:os.system ['true']", "its MLmodel file is not YAML"),
        ("flavors: {}\nsignature:\n  inputs: '[{\"type\": '\n", "its signature is not JSON"),
        ('flavors: {}\nsignature:\n  inputs: \'{"type": "double"}\'\n', "its signature is not a list"),
        ("flavors: {}\nsignature:\n  inputs: [1, 2]\n", "its signature's inputs must be MLflow's JSON text"),
    ],
    ids=["not-yaml", "not-a-mapping", "python-tag", "signature-not-json", "signature-not-a-list", "signature-not-text"],
)
def test_an_mlmodel_file_that_cannot_be_read_stops_start_up_with_its_reason(
    tmp_path: Path, mlmodel: str, reason: str, monkeypatch: pytest.MonkeyPatch
):
    # Loading sets it for MLflow's loaders; set here, it is put back as it was for the
    # tests after this one, which load with them.
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "MLmodel").write_text(mlmodel)

    with pytest.raises(ModelLoadError) as refused:
        load(str(folder), tmp_path / "cache", allow_pickle=False)

    assert str(refused.value).startswith(f"{folder} could not be loaded: {reason}")
