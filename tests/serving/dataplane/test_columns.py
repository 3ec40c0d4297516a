"""Column checks on their own, without a server: the cases the served `credit` model
(protocols/test_mlflow_scoring.py) cannot show, such as optional columns, whole columns
of one wrong type, values past a type's range and rows joined into a batch."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import pytest
from mlflow.types import ColSpec, Schema, TensorSpec

from modelplane.serving.dataplane.columns import Columns, ColumnSchema
from modelplane.serving.errors import InvalidInput
from modelplane.serving.model_file import COLUMN_TYPES, NO_SPECS, Specs

SCHEMA = ColumnSchema.of(
    Specs(
        Schema(
            [
                ColSpec("long", "count"),
                ColSpec("double", "length"),
                ColSpec("boolean", "flag", required=False),
                ColSpec("integer", "rank", required=False),
                ColSpec("binary", "blob", required=False),
            ]
        ).to_json()
    )
)
ROW = {"count": 1, "length": 2.5}


def _refused(build) -> str:
    with pytest.raises(InvalidInput) as refused:
        build()
    return refused.value.message


@pytest.mark.parametrize(
    ("column", "values", "words"),
    [
        # A column of nothing but booleans is still no integers (bool is an int in Python).
        ("count", [True, False], "column 'count' expects an integer (long); row 0 is true"),
        ("rank", [1, 2.5], "column 'rank' expects an integer (integer); row 1 is 2.5"),
        ("flag", [True, 0], "column 'flag' expects true or false (boolean); row 1 is 0"),
        ("flag", ["true"], "column 'flag' expects true or false (boolean); row 0 is"),
        ("length", [1.0, "2.0"], "column 'length' expects a number (double); row 1 is"),
        ("length", [1.0, [2.0]], "column 'length' expects a number (double); row 1 is a list of 1"),
    ],
)
def test_a_value_not_of_its_column_type_is_refused_with_column_and_row(column, values, words):
    mapping = {**{name: [value] * len(values) for name, value in ROW.items()}, column: values}

    assert words in _refused(lambda: SCHEMA.from_columns(mapping))


def test_an_integral_float_is_an_integer_and_kept_as_one():
    columns = SCHEMA.from_records([{**ROW, "count": 3.0}, {**ROW, "count": 4}])

    assert columns.arrays["count"].dtype == np.int64
    assert columns.arrays["count"].tolist() == [3, 4]


@pytest.mark.parametrize(
    ("column", "value", "words"),
    [
        ("count", None, "column 'count' is required (long), but row 1 is missing or null"),
        ("count", float("nan"), "column 'count' is required (long), but row 1 is NaN"),
        ("length", None, "column 'length' is required (double), but row 1 is missing or null"),
    ],
)
def test_a_null_in_a_required_column_is_refused(column, value, words):
    assert words in _refused(lambda: SCHEMA.from_records([ROW, {**ROW, column: value}]))


def test_a_required_column_left_out_is_refused_as_missing():
    assert "column 'length' is required (double), but row 0 is missing or null" in _refused(
        lambda: SCHEMA.from_records([{"count": 1}])
    )
    assert "column 'length' is required (double), but row 0 is missing or null" in _refused(
        lambda: SCHEMA.from_split({"columns": ["count"], "data": [[1]]})
    )


def test_nulls_in_optional_columns_keep_their_type_as_nullable_arrays():
    columns = SCHEMA.from_records([{**ROW, "flag": True, "rank": 2}, {**ROW, "flag": None}])

    assert str(columns.arrays["flag"].dtype) == "boolean" and columns.arrays["flag"][0]
    assert columns.arrays["flag"][1] is pd.NA
    assert str(columns.arrays["rank"].dtype) == "Int32" and columns.arrays["rank"][0] == 2
    assert columns.arrays["rank"][1] is pd.NA


def test_a_nan_in_a_number_column_is_left_for_the_model_to_judge():
    columns = SCHEMA.from_records([{**ROW, "length": float("nan")}])

    assert np.isnan(columns.arrays["length"][0])


def test_an_integer_past_the_column_type_range_is_refused():
    assert "column 'count' cannot be read as long" in _refused(lambda: SCHEMA.from_records([{**ROW, "count": 2**70}]))
    assert "column 'rank' cannot be read as integer" in _refused(lambda: SCHEMA.from_records([{**ROW, "rank": 2**40}]))


@pytest.mark.parametrize(
    "build",
    [
        lambda: SCHEMA.from_records([{**ROW, "colour": "red"}]),
        lambda: SCHEMA.from_split({"columns": ["count", "length", "colour"], "data": [[1, 2.5, "red"]]}),
        lambda: SCHEMA.from_columns({"count": [1], "length": [2.5], "colour": ["red"]}),
    ],
    ids=["records", "split", "columns"],
)
def test_an_unknown_column_is_refused_naming_the_model_columns(build):
    message = _refused(build)

    assert "column 'colour' is not an input of the model" in message
    assert "'count', 'length', 'flag', 'rank', 'blob'" in message


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: SCHEMA.from_split({"columns": ["count", "length"], "data": [[1]]}), "row 0 must be a list of 2"),
        (
            lambda: SCHEMA.from_split({"columns": ["count", "count"], "data": [[1, 2]]}),
            "must name each column once",
        ),
        (lambda: SCHEMA.from_columns({"count": [1, 2], "length": [2.5]}), "all of the same length"),
        (lambda: SCHEMA.from_records([ROW, 5]), "a list of JSON objects"),
        (lambda: SCHEMA.from_records([]), "holds no rows"),
    ],
    ids=["short-row", "repeated-column", "uneven-columns", "record-not-object", "no-rows"],
)
def test_a_body_of_the_wrong_shape_is_refused(build, words):
    assert words in _refused(build)


def test_a_split_without_column_names_takes_the_signature_order():
    columns = SCHEMA.from_split({"data": [[7, 1.5, True, 3, None]]})

    assert columns.arrays["count"].tolist() == [7] and columns.arrays["rank"].tolist() == [3]


def test_binary_values_are_base64_decoded_and_bad_base64_refused():
    columns = SCHEMA.from_records([{**ROW, "blob": base64.b64encode(b"\x89PNG").decode()}])

    assert columns.arrays["blob"].tolist() == [b"\x89PNG"]
    assert "column 'blob' holds binary data, sent as base64; row 0 is not valid base64" in _refused(
        lambda: SCHEMA.from_records([{**ROW, "blob": "not base64!"}])
    )


def test_requests_joined_into_a_batch_keep_their_rows_in_order():
    parts = [
        SCHEMA.from_records([{**ROW, "count": 1, "flag": True}, {**ROW, "count": 2, "flag": None}]),
        SCHEMA.from_records([{**ROW, "count": 3, "flag": False}]),
    ]

    joined = Columns.join(parts)

    assert joined["count"].tolist() == [1, 2, 3]
    assert joined["flag"].tolist() == [True, pd.NA, False]
    assert len(joined) == sum(part.rows for part in parts)


@pytest.mark.parametrize(
    "schema",
    [
        None,
        Schema([TensorSpec(np.dtype("float64"), (-1, 4))]),
        Schema([ColSpec("double")]),  # columns without names
    ],
    ids=["no-signature", "tensor", "unnamed-columns"],
)
def test_a_signature_without_named_columns_is_left_to_mlflow(schema):
    assert ColumnSchema.of(Specs(schema.to_json()) if schema is not None else NO_SPECS) is None


@pytest.mark.parametrize(
    ("specs", "column"),
    [
        ([ColSpec("binary", "image")], "image"),
        ([ColSpec("binary", "image"), ColSpec("string", "note", required=False)], "image"),
        # Bytes alone cannot fill a required second column, nor choose between two binary ones.
        ([ColSpec("binary", "image"), ColSpec("string", "note")], None),
        ([ColSpec("binary", "front"), ColSpec("binary", "back")], None),
        ([ColSpec("double", "x")], None),
    ],
)
def test_the_column_an_image_event_fills(specs, column):
    assert ColumnSchema.of(Specs(Schema(specs).to_json())).binary_column == column


@pytest.mark.parametrize("type_name", COLUMN_TYPES)
def test_every_column_type_the_signature_reader_names_is_checked_value_by_value(type_name: str):
    schema = ColumnSchema.of(Specs(Schema([ColSpec(type_name, "c", required=False)]).to_json()))
    assert schema is not None

    assert schema.from_records([{"c": None}]).rows == 1
    with pytest.raises(InvalidInput, match="column 'c' expects"):
        schema.from_records([{"c": {"not": "a value"}}])
