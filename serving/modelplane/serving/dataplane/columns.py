"""Request columns checked against a column-based model signature, value by value.

Stricter than MLflow's own enforcement, which truncates 1.5 to 1 in an integer column and
reads null, 1 or "yes" as a boolean: here each value must be of the column's type, and a
null is refused in a required column, with the column, row and value in the message.
Columns stay numpy arrays until a batch is scored, so the batcher builds one DataFrame
per batch instead of one per request.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import pandas as pd
from numpy.typing import DTypeLike

from modelplane.serving.dataplane import json_codec
from modelplane.serving.dataplane.json_codec import JSON
from modelplane.serving.errors import InvalidInput
from modelplane.serving.model_file import UNCHANGED_TYPES, ColumnSpec, Specs

if TYPE_CHECKING:
    from pandas.api.extensions import ExtensionArray

# A column's values: a numpy array, or pandas' nullable array where it holds nulls.
ColumnArray: TypeAlias = "np.ndarray | ExtensionArray"


def _is_number(value: object) -> bool:
    return type(value) in (int, float)


def _is_integral(value: object) -> bool:
    return type(value) is int or (type(value) is float and value.is_integer())


_TYPES: dict[str, tuple[Callable[[object], bool], str, DTypeLike]] = {
    # MLflow type: (accepts a value, what the message calls it, numpy dtype)
    "double": (_is_number, "a number", np.float64),
    "float": (_is_number, "a number", np.float32),
    "long": (_is_integral, "an integer", np.int64),
    "integer": (_is_integral, "an integer", np.int32),
    "boolean": (lambda value: type(value) is bool, "true or false", np.bool_),
    "string": (lambda value: type(value) is str, "a string", object),
    "binary": (lambda value: type(value) in (str, bytes), "base64 text", object),
    "datetime": (lambda value: type(value) is str, "an ISO 8601 date-time string", "datetime64[ns]"),
}


@dataclass(frozen=True)
class Columns:
    """One request's rows, as checked arrays by column name."""

    arrays: dict[str, ColumnArray]
    rows: int

    @staticmethod
    def concat(parts: list[Columns]) -> dict[str, ColumnArray]:
        """All parts' rows, in order, as one array per column, in the signature's order."""
        return {name: _concat([part.arrays[name] for part in parts]) for name in parts[0].arrays}

    @staticmethod
    def join(parts: list[Columns]) -> pd.DataFrame:
        return pd.DataFrame(Columns.concat(parts), copy=False)


def enforced_as_is(columns: dict[str, ColumnArray]) -> bool:
    """Whether MLflow's enforcement of the signature would hand these columns to the model
    as they are: numpy arrays of numbers, booleans or date-times. (It turns strings into
    pandas' string type, and refuses a null in an integer or boolean column.)"""
    return all(type(array) is np.ndarray and array.dtype.kind in "biufM" for array in columns.values())


def frame_as_is(frame: pd.DataFrame, schema: ColumnSchema) -> dict[str, np.ndarray] | None:
    """The frame's columns in the signature's order, when MLflow's enforcement of it would
    hand the model exactly these: every column of the signature is there, numbers,
    booleans or date-times each of its type's own dtype. None when it would convert or
    refuse something (the frame then goes through MLflow's predict)."""
    arrays = {}
    for column in schema.columns:
        series = frame.get(column.name)
        if (
            column.type not in UNCHANGED_TYPES
            or type(series) is not pd.Series
            or series.dtype != np.dtype(_TYPES[column.type][2])
        ):
            return None
        arrays[column.name] = series.to_numpy()
    return arrays


def _concat(arrays: list[ColumnArray]) -> ColumnArray:
    if len(arrays) == 1:
        return arrays[0]
    if all(isinstance(array, np.ndarray) for array in arrays):
        return np.concatenate(arrays)
    return pd.concat([pd.Series(array) for array in arrays], ignore_index=True)  # nullable columns


class ColumnSchema:
    """The columns a model takes; `of` gives None for a signature this cannot check
    (tensors, nested arrays or objects), which MLflow's parser then handles."""

    def __init__(self, columns: tuple[ColumnSpec, ...]) -> None:
        self.columns = columns
        self._names = {column.name for column in columns}

    @classmethod
    def of(cls, specs: Specs) -> ColumnSchema | None:
        return None if specs.columns is None else cls(specs.columns)

    @property
    def binary_column(self) -> str | None:
        """The column a bare binary payload (an image event) fills: the model's only binary
        column, when every other column may be left out."""
        binary = [column for column in self.columns if column.type == "binary"]
        if len(binary) != 1 or any(column.required for column in self.columns if column is not binary[0]):
            return None
        return binary[0].name

    def from_records(self, records: JSON) -> Columns:
        if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
            raise InvalidInput("records must be a list of JSON objects, one per row")
        names = self._names
        for record in records:
            if not record.keys() <= names:  # a set comparison at C speed; the message names the first
                self.check_names(record)
        return self._build(
            {column.name: [record.get(column.name) for record in records] for column in self.columns}, len(records)
        )

    def from_split(self, split: JSON) -> Columns:
        if not isinstance(split, dict) or not isinstance(split.get("data"), list):
            raise InvalidInput("dataframe_split must be an object with columns and data (a list of rows)")
        names, data = split.get("columns"), split["data"]
        if names is None:
            names = [column.name for column in self.columns]
        if not isinstance(names, list) or not all(type(name) is str for name in names):
            raise InvalidInput("dataframe_split columns must be a list of column names (strings)")
        if len(set(names)) != len(names):
            raise InvalidInput("dataframe_split columns must name each column once")
        self.check_names(names)
        width = len(names)
        for row, values in enumerate(data):
            if not isinstance(values, list) or len(values) != width:
                raise InvalidInput(f"dataframe_split row {row} must be a list of {width} values, one per column")
        position = {name: index for index, name in enumerate(names)}
        return self._build(
            {
                column.name: [values[position[column.name]] for values in data]
                if column.name in position
                else [None] * len(data)
                for column in self.columns
            },
            len(data),
        )

    def from_columns(self, mapping: dict[str, JSON]) -> Columns:
        self.check_names(mapping)
        lengths = {len(values) for values in mapping.values() if isinstance(values, list)}
        if len(lengths) != 1 or not all(isinstance(values, list) for values in mapping.values()):
            raise InvalidInput("each column must be a list of values, all of the same length")
        rows = lengths.pop()
        return self._build({column.name: mapping.get(column.name, [None] * rows) for column in self.columns}, rows)

    def check_names(self, names: Iterable[str]) -> None:
        unknown = [name for name in names if name not in self._names]
        if unknown:
            raise InvalidInput(
                f"column {unknown[0]!r} is not an input of the model; it takes "
                f"{', '.join(repr(column.name) for column in self.columns)}"
            )

    def _build(self, values: dict[str, list[JSON]], rows: int) -> Columns:
        if rows == 0:
            raise InvalidInput("the request holds no rows; send at least one")
        return Columns({column.name: _array(column, values[column.name]) for column in self.columns}, rows)


# Value types that need no look one by one: a column of only these is checked in one pass.
_PLAIN_TYPES: dict[str, set[type]] = {
    "double": {int, float},
    "float": {int, float},
    "long": {int},
    "integer": {int},
    "boolean": {bool},
    "string": {str},
}


def _array(column: ColumnSpec, values: list[JSON]) -> ColumnArray:
    accepts, expected, dtype = _TYPES[column.type]
    nulls = False
    plain = _PLAIN_TYPES.get(column.type)
    for row, value in enumerate(() if plain and set(map(type, values)) <= plain else values):
        if value is None or (type(value) is float and math.isnan(value) and column.type not in ("double", "float")):
            if column.required:
                raise InvalidInput(
                    f"column {column.name!r} is required ({column.type}), but row {row} is "
                    f"{'missing or null' if value is None else 'NaN'}"
                )
            nulls = True
        elif not accepts(value):
            raise InvalidInput(
                f"column {column.name!r} expects {expected} ({column.type}); row {row} is {json_codec.shown(value)}"
            )
    if column.type == "binary":
        values = [_base64(column, row, value) for row, value in enumerate(values)]
    if nulls and column.type in ("long", "integer", "boolean"):
        return pd.array(values, dtype={"long": "Int64", "integer": "Int32", "boolean": "boolean"}[column.type])
    try:
        return np.array(values, dtype=dtype)
    except (ValueError, OverflowError) as error:
        raise InvalidInput(f"column {column.name!r} cannot be read as {column.type}: {error}") from None


def _base64(column: ColumnSpec, row: int, value: str | bytes | None) -> bytes | None:
    if value is None or type(value) is bytes:
        return value
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            f"column {column.name!r} holds binary data, sent as base64; row {row} is not valid base64"
        ) from None
