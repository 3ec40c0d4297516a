"""The MLmodel file read without MLflow: its signature means what MLflow's reading of it
means, and a file that cannot be read stops start-up with its reason."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, Schema, TensorSpec
from mlflow.types.schema import AnyType, Array, Map, Object, Property

from modelplane.serving.errors import ModelLoadError, ModelUnusable, model_failure
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
    # MLflow's enforcement refuses an empty name, and a frame holds one column per name.
    assert Specs('[{"type": "double", "name": ""}]').columns is None
    assert Specs('[{"type": "double", "name": "x"}, {"type": "long", "name": "x"}]').columns is None


def _tensor(dtype: object = "float64", shape: object = (-1,), **more: object) -> dict[str, object]:
    return {"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}, **more}


# Specs MLflow reads, and ones it refuses, as tensors: only what it reads is understood.
TENSOR_SPECS = {
    "one": ([_tensor()], True),
    "strings": ([_tensor("str")], True),
    "objects": ([_tensor("object", [-1, 2])], True),
    "named": ([_tensor(name="a"), _tensor("int64", name="b")], True),
    "no-shape": ([{"type": "tensor", "tensor-spec": {"dtype": "float64"}}], False),
    "unknown-dtype": ([_tensor("float65")], False),
    "sized-string": ([_tensor("<U10")], False),
    "shape-not-a-list": ([_tensor(shape=3)], False),
    "two-unnamed": ([_tensor(), _tensor()], False),
    "named-and-unnamed": ([_tensor(name="a"), _tensor()], False),
    "not-a-type": ([{"type": "tensr", "tensor-spec": {"dtype": "float64", "shape": [-1]}}], False),
}


@pytest.mark.parametrize(("specs", "read"), TENSOR_SPECS.values(), ids=TENSOR_SPECS.keys())
def test_only_tensors_mlflow_reads_are_understood(specs: list[dict[str, object]], read: bool):
    text = json.dumps(specs)
    try:
        Schema.from_json(text)
        mlflow_reads = True
    except Exception:  # noqa: BLE001 - MLflow refuses with several kinds
        mlflow_reads = False

    assert mlflow_reads is read
    assert Specs(text).understood is read


def _skops_model(folder: Path) -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    features = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    model = LogisticRegression().fit(features, [0, 0, 1, 1])
    signature = infer_signature(features, model.predict(features))
    mlflow.sklearn.save_model(model, str(folder), signature=signature, serialization_format="skops")
    return folder


def test_outputs_mlflow_refuses_stop_start_up_rather_than_fail_a_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    folder = _skops_model(tmp_path / "model")
    mlmodel = folder / "MLmodel"
    document = yaml.safe_load(mlmodel.read_text())
    document["signature"]["outputs"] = json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "int64"}}])
    mlmodel.write_text(yaml.safe_dump(document))

    with pytest.raises(ModelLoadError) as refused:
        load(str(folder), tmp_path / "cache", allow_pickle=False)

    assert "Missing keys in TensorSpec JSON" in str(refused.value)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("env_vars", "PATH", "its MLmodel file's env_vars must be a list of variable names"),
        # MLflow reads text here as the path of a file to read the resources from.
        ("resources", "/etc/passwd", "its MLmodel file's resources must be a mapping"),
    ],
)
def test_fields_mlflow_would_refuse_when_it_builds_the_model_stop_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: str, reason: str
):
    # The model is scored without MLflow, which reads the whole file only when a request
    # first needs its model: refused then, it would fail that request instead of start-up.
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    folder = _skops_model(tmp_path / "model")
    mlmodel = folder / "MLmodel"
    document = yaml.safe_load(mlmodel.read_text())
    document[key] = value
    mlmodel.write_text(yaml.safe_dump(document))

    with pytest.raises(ModelLoadError) as refused:
        load(str(folder), tmp_path / "cache", allow_pickle=False)

    assert str(refused.value) == f"{folder} could not be loaded: {reason}"


def test_a_model_mlflow_cannot_build_later_fails_as_the_servers_fault_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Outputs only MLflow reads are read at load; should MLflow still fail to build its
    # model on the first input that needs it, that is a 500 of the server, never the
    # 422 of a client's input, and it is not tried again for every request.
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    model = load(str(_skops_model(tmp_path / "model")), tmp_path / "cache", allow_pickle=False)
    builds = []

    def fails() -> object:
        builds.append(1)
        raise MlflowException("bad", error_code=INVALID_PARAMETER_VALUE)

    broken = dataclasses.replace(model, make_pyfunc=fails)
    raised = []
    for _ in range(2):
        with pytest.raises(ModelUnusable) as failed:
            _ = broken.pyfunc
        assert model_failure(failed.value).status_code == 500
        raised.append(failed.value)
    assert len(builds) == 1
    assert raised[0] is not raised[1]  # a kept exception raised again would gather every caller's traceback


def test_the_model_is_built_once_by_threads_asking_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    model = load(str(_skops_model(tmp_path / "model")), tmp_path / "cache", allow_pickle=False)
    second_waiting = threading.Event()
    builds = []

    def build() -> object:
        builds.append(threading.current_thread().name)
        assert second_waiting.wait(60)
        return model.make_pyfunc()

    shared = dataclasses.replace(model, make_pyfunc=build)
    got: dict[str, object] = {}
    first = threading.Thread(target=lambda: got.setdefault("first", shared.pyfunc), name="first")
    second = threading.Thread(target=lambda: got.setdefault("second", shared.pyfunc), name="second")
    first.start()
    while not builds:
        time.sleep(0.01)
    second.start()
    # The second thread is inside the once-only build's lock wait while the first builds.
    while sys._current_frames().get(second.ident or 0) is None or (
        sys._current_frames()[second.ident or 0].f_code.co_name != "get"
    ):
        time.sleep(0.01)
    second_waiting.set()
    first.join()
    second.join()

    assert builds == ["first"]
    assert got["first"] is got["second"]


@pytest.mark.parametrize(
    ("mlmodel", "reason"),
    [
        ("flavors: [unclosed", "its MLmodel file is not YAML"),
        ("- a list", "its MLmodel file is not a YAML mapping"),
        # MLflow builds its Model with the file's keys as arguments' names.
        ("1: one\nflavors: {}", "its MLmodel file is not a YAML mapping of names"),
        ("flavors: {}\nsignature: {}", "its signature declares no inputs, outputs or params"),
        # A tag that builds a Python object runs code under an unsafe loader.
        ("flavors: !!python/object/apply:os.system ['true']", "its MLmodel file is not YAML"),
        ("flavors: {}\nsignature:\n  inputs: '[{\"type\": '\n", "its signature is not JSON"),
        ('flavors: {}\nsignature:\n  inputs: \'{"type": "double"}\'\n', "its signature is not a list"),
        ("flavors: {}\nsignature:\n  inputs: [1, 2]\n", "its signature's inputs must be MLflow's JSON text"),
    ],
    ids=[
        "not-yaml",
        "not-a-mapping",
        "key-not-a-name",
        "empty-signature",
        "python-tag",
        "signature-not-json",
        "signature-not-a-list",
        "signature-not-text",
    ],
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
