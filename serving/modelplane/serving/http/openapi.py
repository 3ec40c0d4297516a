"""The OpenAPI 3.1 document of the scoring routes, generated from the served model's
signature and saved example request, so client generators and API gateways see the
routes as they are: MLflow's scoring protocol on /invocations, the Open Inference
Protocol (V2) on /v2/models/{name}/infer.

Schemas say what the decoders accept, no more: a column's JSON type (and null where it
is optional), a tensor's nesting and element type. Examples are the model's own.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from modelplane.serving.dataplane.columns import ColumnSchema
from modelplane.serving.model_file import Specs
from modelplane.serving.protocols import mlflow_scoring, open_inference

if TYPE_CHECKING:
    from mlflow.types import TensorSpec

    from modelplane.serving.model import LoadedModel

Document = dict[str, Any]

_COLUMN_TYPES: dict[str, Document] = {
    "double": {"type": "number"},
    "float": {"type": "number"},
    "long": {"type": "integer"},
    "integer": {"type": "integer"},
    "boolean": {"type": "boolean"},
    "string": {"type": "string"},
    "binary": {"type": "string", "contentEncoding": "base64"},
    "datetime": {"type": "string", "format": "date-time"},
}
_JSON_TYPES = {"b": "boolean", "i": "integer", "u": "integer", "f": "number"}
_V2_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_MLFLOW_ERROR = {
    "type": "object",
    "required": ["error_code", "message"],
    "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
}


def document(model: LoadedModel) -> Document:
    specs = model.inputs
    title = f"{model.name} (version {model.version})" if model.version else model.name
    v2_example = v2_request(model.serving_example, specs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": model.version or "unversioned",
            "description": f"Predictions of {model.uri}, served by Modelplane {version('modelplane')}.",
        },
        "paths": {
            "/invocations": {
                "post": {
                    "operationId": "invocations",
                    "summary": "Predict (MLflow scoring protocol)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": _with_example(
                                {"schema": mlflow_request_schema(specs)}, model.serving_example
                            ),
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    "responses": {
                        "200": _json_response(
                            "The predictions, one per row",
                            {
                                "type": "object",
                                "required": ["predictions"],
                                "properties": {"predictions": _predictions_schema(model.outputs)},
                            },
                        ),
                        **_errors(_MLFLOW_ERROR),
                    },
                }
            },
            "/v2/models/{name}/infer": {
                "post": {
                    "operationId": "infer",
                    "summary": "Predict (Open Inference Protocol, V2)",
                    "parameters": [
                        {
                            "name": "name",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": [model.name]},
                            "example": model.name,
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": _with_example({"schema": v2_request_schema(specs)}, v2_example)
                        },
                    },
                    "responses": {
                        "200": _json_response("The outputs as named tensors", _V2_RESPONSE),
                        **_errors(_V2_ERROR),
                    },
                }
            },
            "/v2/models/{name}": {
                "get": {
                    "operationId": "modelMetadata",
                    "summary": "The model's inputs, as V2 tensors",
                    "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": _json_response("The model's metadata", {"type": "object"}),
                        **_errors(_V2_ERROR),
                    },
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "ready",
                    "summary": "Ready: the model is loaded",
                    "responses": {
                        "200": {"description": "ok", "content": {"text/plain": {"schema": {"type": "string"}}}}
                    },
                }
            },
        },
    }


def mlflow_request_schema(specs: Specs) -> Document:
    """A JSON body of /invocations: exactly one of the formats, and optional params."""
    params = {"type": "object", "description": "The model's parameters by name"}
    formats: list[Document] = []
    for key, body in _mlflow_formats(specs).items():
        formats.append(
            {
                "type": "object",
                "required": [key],
                "properties": {key: body, "params": params},
                "additionalProperties": False,
            }
        )
    return {"oneOf": formats}


def _mlflow_formats(specs: Specs) -> dict[str, Document]:
    columns = ColumnSchema.of(specs)
    if columns is not None:
        by_name = {column.name: _column_schema(column.type, column.required) for column in columns.columns}
        required = [column.name for column in columns.columns if column.required]
        return {
            "dataframe_split": {
                "type": "object",
                "required": ["columns", "data"],
                "properties": {
                    "columns": {"type": "array", "items": {"enum": list(by_name)}, "uniqueItems": True},
                    "data": {
                        "type": "array",
                        "minItems": 1,
                        "description": "Rows, each a list of values in the order of columns",
                        "items": {"type": "array", "items": {"anyOf": _distinct(by_name.values())}},
                    },
                },
            },
            "dataframe_records": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": by_name,
                    "required": required,
                    "additionalProperties": False,
                },
            },
        }
    schema = specs.schema
    if schema is not None and schema.is_tensor_spec():
        tensor_specs = cast("list[TensorSpec]", schema.inputs)
        if len(tensor_specs) == 1 and not schema.has_input_names():
            tensors: Document = _tensor_schema(tensor_specs[0])
        else:
            tensors = {
                "type": "object",
                "properties": {spec.name: _tensor_schema(spec) for spec in tensor_specs},
                "required": [spec.name for spec in tensor_specs if spec.required],
            }
        return {"inputs": tensors, "instances": tensors}
    anything: Document = {}
    return dict.fromkeys(mlflow_scoring.FORMATS, anything)


def v2_request_schema(specs: Specs) -> Document:
    inputs = open_inference.input_metadata(specs)
    names: Document = {"enum": [described["name"] for described in inputs]} if inputs else {"type": "string"}
    tensor: Document = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": names,
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"enum": list(open_inference.DTYPES)},
            "data": {"description": "The elements, flat (row-major) or nested as the shape"},
            "parameters": {"type": "object"},
        },
    }
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "minItems": 1, "items": tensor},
        },
    }


_V2_RESPONSE: Document = {
    "type": "object",
    "required": ["model_name", "outputs"],
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": ["string", "null"]},
        "id": {"type": "string"},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "datatype", "shape", "data"],
                "properties": {
                    "name": {"type": "string"},
                    "datatype": {"type": "string"},
                    "shape": {"type": "array", "items": {"type": "integer"}},
                    "data": {"type": "array"},
                },
            },
        },
    },
}


def v2_request(example: dict[str, Any] | None, specs: Specs) -> Document | None:
    """The model's example request as a V2 inference request, where it converts plainly:
    columns become one tensor each, a single tensor keeps its shape."""
    if example is None:
        return None
    columns = ColumnSchema.of(specs)
    if columns is not None:
        values = _example_columns(example)
        if values is None:
            return None
        datatypes = {column.name: open_inference.COLUMN_DATATYPES[column.type] for column in columns.columns}
        if set(values) - set(datatypes):
            return None
        return {
            "inputs": [
                {"name": name, "shape": [len(data)], "datatype": datatypes[name], "data": data}
                for name, data in values.items()
            ]
        }
    inputs = example.get("inputs", example.get("instances"))
    schema = specs.schema
    if schema is None or not schema.is_tensor_spec() or not isinstance(inputs, list):
        return None
    spec = cast("list[TensorSpec]", schema.inputs)
    if len(spec) != 1:
        return None
    described = open_inference.input_metadata(specs)[0]
    try:
        shape = list(np.shape(inputs))
    except ValueError:  # ragged
        return None
    return {"inputs": [{"name": described["name"], "shape": shape, "datatype": described["datatype"], "data": inputs}]}


def _example_columns(example: dict[str, Any]) -> dict[str, list[Any]] | None:
    split = example.get("dataframe_split")
    if isinstance(split, dict) and isinstance(split.get("columns"), list) and isinstance(split.get("data"), list):
        names, rows = split["columns"], split["data"]
        if all(isinstance(row, list) and len(row) == len(names) for row in rows):
            return {str(name): [row[index] for row in rows] for index, name in enumerate(names)}
        return None
    records = example.get("dataframe_records")
    if isinstance(records, list) and records and all(isinstance(record, dict) for record in records):
        names = list(records[0])
        if all(list(record) == names for record in records):
            return {name: [record[name] for record in records] for name in names}
    return None


def _column_schema(type_name: str, required: bool) -> Document:
    described = dict(_COLUMN_TYPES[type_name])
    if not required:
        described["type"] = [described["type"], "null"]
    return described


def _tensor_schema(spec: TensorSpec) -> Document:
    kind = spec.type.kind
    element: Document = {"type": _JSON_TYPES[kind]} if kind in _JSON_TYPES else {"type": "string"}
    for size in reversed(spec.shape[1:]):
        element = {"type": "array", "items": element, **({"minItems": size, "maxItems": size} if size >= 0 else {})}
    return {"type": "array", "minItems": 1, "items": element}


def _predictions_schema(outputs: Specs) -> Document:
    output_schema = outputs.schema
    if output_schema is None:
        return {}
    if output_schema.is_tensor_spec():
        specs = cast("list[TensorSpec]", output_schema.inputs)
        if len(specs) == 1:
            return _tensor_schema(specs[0]) | {"minItems": 0}
        return {"type": "object"}
    columns = ColumnSchema.of(outputs)
    if columns is None:
        return {"type": "array"}
    if len(columns.columns) == 1:
        only = columns.columns[0]
        return {"type": "array", "items": {"anyOf": [_column_schema(only.type, only.required), {"type": "object"}]}}
    return {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {column.name: _column_schema(column.type, column.required) for column in columns.columns},
        },
    }


def _distinct(schemas: Any) -> list[Document]:
    found: list[Document] = []
    for schema in schemas:
        if schema not in found:
            found.append(schema)
    return found


def _with_example(media: Document, example: Document | None) -> Document:
    return media if example is None else {**media, "example": example}


def _json_response(description: str, schema: Document) -> Document:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(body: Document) -> Document:
    return {
        "400": _json_response("The request is not the model's input; the message names the field", body),
        "413": _json_response("The body is over the server's limit", body),
        "415": _json_response("The content type is not served", body),
    }
