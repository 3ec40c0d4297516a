"""The Open Inference Protocol (KServe V2) over JSON: named, typed, shaped tensors.

A model with a column signature takes one tensor per column (shape [rows] or [rows, 1]),
checked like any other request (columns.py); a model with a tensor signature takes its
tensors as arrays of the declared type and shape. BYTES elements are UTF-8 strings, or
base64 for binary columns, as JSON cannot carry raw bytes.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeAlias, cast

import numpy as np
import pandas as pd

from modelplane.serving.dataplane import json_codec
from modelplane.serving.dataplane.columns import ColumnSchema
from modelplane.serving.dataplane.json_codec import JSON
from modelplane.serving.errors import InvalidInput
from modelplane.serving.model_file import Specs

if TYPE_CHECKING:
    from mlflow.models.utils import PyFuncOutput
    from mlflow.types import ColSpec, Schema, TensorSpec

    from modelplane.serving.model import Dependency

DTYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": object,
}
COLUMN_DATATYPES = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}


# Each input by name: its elements (flat), its shape and its datatype.
_Tensors: TypeAlias = "dict[str, tuple[list[JSON], list[int], str]]"


class Decoder:
    def __init__(self, specs: Specs) -> None:
        self.specs = specs
        self.columns = ColumnSchema.of(specs)

    @property
    def schema(self) -> Schema | None:
        return self.specs.schema

    def reads_itself(self) -> bool:
        """Whether requests are decoded by the checked-columns code, at a cost linear in
        their size (tensors of other models pass through numpy, pandas and MLflow)."""
        return self.columns is not None

    def decode(self, body: bytes) -> tuple[object, dict[str, JSON] | None, str | None]:
        """(model input, parameters, request id) of one inference request."""
        request = json_codec.loads(body)
        if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or not request["inputs"]:
            raise InvalidInput("an inference request is a JSON object with a non-empty list of inputs")
        tensors: _Tensors = {}
        for position, tensor in enumerate(request["inputs"]):
            name, values, shape = _tensor(tensor, position)
            if name in tensors:
                raise InvalidInput(f"inputs[{position}]: input {name!r} is given twice; name each input once")
            tensors[name] = (values, shape, tensor["datatype"])
        parameters = request.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise InvalidInput("parameters must be a JSON object")
        request_id = request.get("id")
        if request_id is not None and type(request_id) is not str:
            raise InvalidInput("id must be a string")
        return self._model_input(tensors), _model_params(parameters), request_id

    def _model_input(self, tensors: _Tensors) -> object:
        if self.columns is not None:
            for name, (_, shape, _) in tensors.items():
                if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
                    raise InvalidInput(
                        f"input {name!r}: the model takes columns, so its shape must be [rows] or "
                        f"[rows, 1], not {shape}"
                    )
            return self.columns.from_columns({name: values for name, (values, _, _) in tensors.items()})
        binary = (
            self.schema is not None
            and self.schema.is_tensor_spec()
            and any(spec.type.kind == "S" for spec in cast("list[TensorSpec]", self.schema.inputs))
        )
        arrays = {
            name: _array(name, values, shape, datatype, binary) for name, (values, shape, datatype) in tensors.items()
        }
        data = next(iter(arrays.values())) if len(arrays) == 1 else arrays
        if self.schema is not None:
            if self.schema.is_tensor_spec() and len(self.schema.inputs) > 1 and not isinstance(data, dict):
                # A model of several tensors names each of them.
                raise InvalidInput(
                    f"the model takes {len(self.schema.inputs)} named inputs: {', '.join(cast('list[str]', self.schema.input_names()))}"
                )
            if not self.schema.is_tensor_spec():
                data = pd.DataFrame({name: array.reshape(-1) for name, array in arrays.items()})
            _validate(data, self.schema)
        return data


def _tensor(tensor: JSON, position: int) -> tuple[str, list[JSON], list[int]]:
    if not isinstance(tensor, dict):
        raise InvalidInput(f"inputs[{position}] must be an object with name, shape, datatype and data")
    missing = [key for key in ("name", "shape", "datatype", "data") if key not in tensor]
    if missing:
        raise InvalidInput(f"inputs[{position}] lacks {', '.join(missing)}")
    name, shape, datatype = tensor["name"], tensor["shape"], tensor["datatype"]
    if type(name) is not str or not name:
        raise InvalidInput(f"inputs[{position}].name must be a non-empty string")
    if (
        not isinstance(shape, list)
        or not all(type(size) is int and size >= 0 for size in shape)
        or len(shape) > _MAX_DIMENSIONS
    ):
        raise InvalidInput(f"input {name!r}: shape must be a list of at most {_MAX_DIMENSIONS} non-negative integers")
    if type(datatype) is not str or datatype not in DTYPES:
        raise InvalidInput(f"input {name!r}: datatype {repr(datatype)[:40]} is not one of {', '.join(DTYPES)}")
    elements = math.prod(shape)
    if elements == 0:
        raise InvalidInput(f"input {name!r}: shape {shape} holds no data; send at least one element")
    values = _flatten(name, tensor["data"], shape)
    if len(values) != elements:
        raise InvalidInput(f"input {name!r}: shape {shape} holds {elements} elements, but data has {len(values)}")
    return name, values, shape


# numpy's own limit on dimensions (64 from numpy 2) is above what any model takes.
_MAX_DIMENSIONS = 32


def _flatten(name: str, data: JSON, shape: list[int]) -> list[JSON]:
    """The elements of `data`, given flat (row-major) or nested exactly as `shape` says."""
    if not isinstance(data, list):
        return [data]
    if not data or not isinstance(data[0], list):
        return data
    flat: list[JSON] = []

    def walk(items: JSON, depth: int) -> None:
        innermost = depth == len(shape) - 1
        if (
            depth == len(shape)
            or not isinstance(items, list)
            or len(items) != shape[depth]
            or (innermost and any(isinstance(item, list) for item in items))
        ):
            raise InvalidInput(
                f"input {name!r}: data is nested unevenly or not as shape {shape} says; send it "
                "nested exactly as the shape, or flat"
            )
        if innermost:
            flat.extend(items)
            return
        for item in items:
            walk(item, depth + 1)

    walk(data, 0)
    return flat


def _model_params(parameters: dict[str, JSON] | None) -> dict[str, JSON] | None:
    """The request parameters the model is given: V2's own ones (content_type, headers)
    describe the request, not the model's params, so they are left out."""
    if not parameters:
        return None
    params = {key: value for key, value in parameters.items() if key not in _PROTOCOL_PARAMETERS}
    return params or None


_PROTOCOL_PARAMETERS = {"content_type", "headers"}


_ALL_RIGHT = object()


def _array(name: str, values: list[JSON], shape: list[int], datatype: str, binary: bool) -> np.ndarray:
    if datatype == "BYTES":
        return np.array([_bytes(name, value, binary) for value in values], dtype=object).reshape(shape)
    kind = np.dtype(DTYPES[datatype]).kind
    wanted = {"b": (bool,), "f": (int, float)}.get(kind, (int,))  # exact types: a bool is not a number here
    wrong = next((value for value in values if type(value) not in wanted), _ALL_RIGHT)
    if wrong is not _ALL_RIGHT:
        raise InvalidInput(f"input {name!r}: {datatype} data cannot hold {json_codec.shown(wrong)}")
    try:
        return np.array(values, dtype=DTYPES[datatype]).reshape(shape)
    except (ValueError, OverflowError) as error:
        raise InvalidInput(f"input {name!r}: data do not fit {datatype}: {error}") from None


def _bytes(name: str, value: JSON, binary: bool) -> str | bytes:
    if type(value) is not str:
        raise InvalidInput(f"input {name!r}: BYTES elements must be strings (base64 for binary data)")
    if not binary:
        return value
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise InvalidInput(
            f"input {name!r}: the model takes binary data, sent as base64; an element is not valid base64"
        ) from None


def _validate(data: object, schema: Schema) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.models import validate_schema

    try:
        validate_schema(data, schema)
    except MlflowException as error:
        raise InvalidInput(error.message) from None


def encode(predictions: PyFuncOutput, model: str, version: str | None, request_id: str | None) -> bytes:
    if isinstance(predictions, pd.DataFrame):
        outputs = [_output(str(column), predictions[column].to_numpy()) for column in predictions.columns]
    elif isinstance(predictions, dict):
        outputs = [_output(str(name), np.asarray(value)) for name, value in predictions.items()]
    else:
        outputs = [_output("output-0", np.asarray(predictions))]
    response = {"model_name": model, "model_version": version, "outputs": outputs}
    if request_id is not None:
        response["id"] = request_id
    return json_codec.dumps(response)


def _output(name: str, array: np.ndarray) -> dict[str, JSON]:
    kind = array.dtype.kind
    if kind in "biuf":
        datatype = "BOOL" if kind == "b" else array.dtype.name.upper().replace("FLOAT", "FP")
        data = array.reshape(-1).tolist()
    else:
        datatype = "BYTES"
        data = [
            base64.b64encode(value).decode() if isinstance(value, bytes) else str(value)
            for value in array.reshape(-1).tolist()
        ]
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def metadata(specs: Specs, name: str, version: str | None, dependencies: Iterable[Dependency]) -> dict[str, JSON]:
    """The model metadata response, with the dependency check's result as a parameter."""
    return {
        "name": name,
        "versions": [version] if version else [],
        "platform": "mlflow",
        "inputs": input_metadata(specs),
        "parameters": {
            "dependencies": [
                {
                    "requirement": dependency.requirement,
                    "installed": dependency.installed,
                    "satisfied": dependency.satisfied,
                }
                for dependency in dependencies
            ]
        },
    }


def input_metadata(specs: Specs) -> list[dict[str, JSON]]:
    """The model's inputs as V2 tensors: name, datatype and shape (-1 for any size)."""
    if specs.columns is not None:
        return [
            {"name": column.name, "datatype": COLUMN_DATATYPES[column.type], "shape": [-1]} for column in specs.columns
        ]
    schema = specs.schema
    if schema is None:
        return []
    inputs: Iterable[ColSpec | TensorSpec] = schema.inputs
    described: list[dict[str, JSON]] = []
    for spec in inputs:
        if hasattr(spec, "shape"):  # a TensorSpec
            dtype = cast("TensorSpec", spec).type
            datatype = "BYTES" if dtype.kind in "OSU" else dtype.name.upper().replace("FLOAT", "FP")
            described.append({"name": spec.name or "input-0", "datatype": datatype, "shape": list(spec.shape)})
        else:
            described.append(
                {
                    "name": spec.name,
                    "datatype": COLUMN_DATATYPES.get(getattr(spec.type, "name", ""), "BYTES"),
                    "shape": [-1],
                }
            )
    return described
