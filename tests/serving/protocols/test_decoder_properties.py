"""Property-based tests of the request decoders: whatever body arrives, decoding it either
gives model input or refuses it as the client's mistake (4xx, with a message); it never
fails with an error of ours, which the server would answer with a 500."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mlflow.types import ColSpec, Schema, TensorSpec

from modelplane.serving.errors import ServingError
from modelplane.serving.http.routes import error_body
from modelplane.serving.model_file import NO_SPECS, Specs
from modelplane.serving.protocols import mlflow_scoring, open_inference

pytestmark = pytest.mark.slow

COLUMNS = Schema(
    [
        ColSpec("double", "length"),
        ColSpec("long", "count"),
        ColSpec("string", "label"),
        ColSpec("boolean", "flag", required=False),
        ColSpec("binary", "blob", required=False),
    ]
)
TENSOR = Schema([TensorSpec(np.dtype("float64"), (-1, 4))])
SCHEMAS = {"columns": Specs(COLUMNS.to_json()), "tensor": Specs(TENSOR.to_json()), "none": NO_SPECS}
NAMES = ["length", "count", "label", "flag", "blob"]

# Fixed examples, so a CI run tries the same bodies as the run before it.
PROPERTY = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(NAMES)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6) | st.sampled_from(NAMES), inner, max_size=6)
    ),
    max_leaves=40,
)
records = st.lists(st.dictionaries(st.sampled_from(NAMES), scalars, max_size=5), max_size=5)
split = st.fixed_dictionaries(
    {"data": st.lists(st.lists(scalars, max_size=6), max_size=5)},
    optional={"columns": st.lists(st.sampled_from(NAMES), max_size=6) | json_values, "index": json_values},
)
column_lists = st.dictionaries(st.sampled_from(NAMES), st.lists(scalars, max_size=4) | scalars, max_size=5)
mlflow_requests = st.builds(
    lambda key, value, params: {key: value, **params},
    st.sampled_from(mlflow_scoring.FORMATS),
    records | split | column_lists | json_values,
    st.just({}) | st.fixed_dictionaries({"params": json_values}),
)

shapes = st.lists(st.integers(min_value=0, max_value=5), max_size=4) | json_values
tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from(NAMES) | json_values,
        "shape": shapes,
        "datatype": st.sampled_from(list(open_inference.DTYPES)) | json_values,
        "data": st.lists(scalars, max_size=8) | st.lists(st.lists(scalars, max_size=4), max_size=4) | json_values,
    }
)
v2_requests = st.fixed_dictionaries(
    {"inputs": st.lists(tensors, min_size=1, max_size=4) | json_values},
    optional={"parameters": json_values, "id": json_values},
)


def _body(payload) -> bytes:
    # NaN and Infinity included: clients written in Python send them.
    return json.dumps(payload, allow_nan=True).encode()


def _decodes_or_refuses(decode, *arguments) -> None:
    try:
        decode(*arguments)
    except ServingError as error:
        assert 400 <= error.status_code < 500, f"{error.status_code}: {error.message}"
        assert error.message and "Traceback" not in error.message
        # The refusal must reach the client too, in either protocol's shape.
        for path in ("/invocations", "/v2/models/m/infer"):
            assert json.loads(error_body(path, error))


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
@PROPERTY
@given(payload=mlflow_requests)
# The findings that once got a 500, tried on every run besides the generated bodies.
@example(payload={"dataframe_split": {"columns": 5, "data": [[1.0]]}})
@example(payload={"dataframe_split": {"columns": [["length"]], "data": [[1.0]]}})
@example(payload={"dataframe_split": {"columns": NAMES, "data": []}})
@example(payload={"dataframe_records": [{"length": 10**400, "count": 1, "label": "a"}]})
@example(payload={"dataframe_records": [{"length": 1.0, "count": 1, "label": "a"}], "params": "x"})
@example(payload={"dataframe_records": [{"length": 1.0, "count": 1, "label": "\ud800"}]})
@example(payload={"dataframe_records": [{"\udc00": 1.0}]})
def test_mlflow_scoring_requests_decode_or_are_refused_as_4xx(schema, payload):
    _decodes_or_refuses(mlflow_scoring.Decoder(schema).decode, _body(payload), "application/json")


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
@PROPERTY
@given(payload=json_values)
def test_any_json_is_decoded_or_refused_as_4xx_by_both_protocols(schema, payload):
    _decodes_or_refuses(mlflow_scoring.Decoder(schema).decode, _body(payload), "application/json")
    _decodes_or_refuses(open_inference.Decoder(schema).decode, _body(payload))


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
@PROPERTY
@given(body=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_mlflow_scoring_any_bytes_as_json_or_csv_decode_or_refuse_as_4xx(schema, body):
    decoder = mlflow_scoring.Decoder(schema)
    _decodes_or_refuses(decoder.decode, body, "application/json")
    _decodes_or_refuses(decoder.decode, body, "text/csv")


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
@PROPERTY
@given(payload=v2_requests)
@example(payload={"inputs": [{"name": ["length"], "shape": [1], "datatype": "FP64", "data": [1.0]}]})
@example(payload={"inputs": [{"name": "length", "shape": [1], "datatype": ["FP64"], "data": [1.0]}]})
@example(
    payload={"inputs": [{"name": "length", "shape": [2, 2], "datatype": "FP64", "data": [[1.0, 2.0, 3.0], [4.0]]}]}
)
@example(payload={"inputs": [{"name": "length", "shape": [0], "datatype": "FP64", "data": []}]})
@example(payload={"inputs": [{"name": "length", "shape": [1], "datatype": "UINT8", "data": [None]}]})
@example(payload={"id": "\ud800", "inputs": [{"name": "length", "shape": [1], "datatype": "FP64", "data": [1.0]}]})
def test_open_inference_requests_decode_or_are_refused_as_4xx(schema, payload):
    _decodes_or_refuses(open_inference.Decoder(schema).decode, _body(payload))


@pytest.mark.parametrize("depth", [2_000, 200_000])
def test_deeply_nested_json_is_refused_as_4xx(depth):
    nested = b"[" * depth + b"]" * depth
    for schema in SCHEMAS.values():
        with pytest.raises(ServingError, match="nests arrays or objects too deeply") as refused:
            mlflow_scoring.Decoder(schema).decode(b'{"inputs": ' + nested + b"}", "application/json")
        assert refused.value.status_code == 400
        with pytest.raises(ServingError, match="too deeply"):
            open_inference.Decoder(schema).decode(nested)


def test_a_value_nested_nearly_as_deep_as_json_may_go_is_refused_as_4xx():
    deep = b"[" * 1015 + b"]" * 1015  # orjson reads 1024 levels, the request's own included
    for schema in SCHEMAS.values():
        _decodes_or_refuses(
            mlflow_scoring.Decoder(schema).decode,
            b'{"dataframe_records": [{"length": ' + deep + b', "count": 1, "label": "a"}]}',
            "application/json",
        )
        _decodes_or_refuses(
            open_inference.Decoder(schema).decode,
            b'{"inputs": [{"name": "length", "shape": [1], "datatype": "FP64", "data": [' + deep + b"]}]}",
        )
