"""The MLflow scoring protocol, as `mlflow models serve` speaks it: a JSON object with one
of dataframe_split, dataframe_records, instances or inputs (and optional params), or CSV.

Requests to a model with a column signature are read here into checked columns (see
columns.py), which is both stricter and several times faster than a DataFrame per
request; other requests (tensor signatures, params, no signature) are parsed by MLflow's
own code, so they mean here what they mean there. Either way each request is checked on
its own, before it joins a batch, so one bad request is refused alone.
"""

from __future__ import annotations

import base64
import csv
import datetime
import json
import sys
from collections.abc import Callable, Sized
from io import StringIO
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar, cast

import numpy as np

from modelplane.serving.dataplane import json_codec
from modelplane.serving.dataplane.columns import Columns, ColumnSchema
from modelplane.serving.dataplane.json_codec import JSON
from modelplane.serving.errors import InvalidInput, UnsupportedMediaType
from modelplane.serving.model_file import Specs

if TYPE_CHECKING:
    from mlflow.models.utils import PyFuncOutput
    from mlflow.types import Schema

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
Parsed = TypeVar("Parsed")


class Decoder:
    def __init__(self, specs: Specs) -> None:
        self.specs = specs
        self.columns = ColumnSchema.of(specs)

    @property
    def schema(self) -> Schema | None:
        return self.specs.schema

    def reads_itself(self, content_type: str) -> bool:
        """Whether a request is decoded by the checked-columns code here, at a cost linear
        in its size, rather than by MLflow's and pandas' parsers, whose cost can grow faster."""
        return self.columns is not None and _mime(content_type) == "application/json"

    def decode(self, body: bytes, content_type: str) -> tuple[object, dict[str, JSON] | None]:
        """The model input (Columns, a DataFrame, an array or a dict) and params of one request."""
        mime = _mime(content_type)
        if mime == "application/json":
            payload = _json_object(body)
            params = payload.get("params")
            if params is not None and not isinstance(params, dict):
                raise InvalidInput("params must be a JSON object of parameter names and values")
            if self.columns is not None:
                return self._columns(payload), params or None
            return self._mlflow(
                lambda parsing: parsing.infer_and_parse_data(
                    {key: payload[key] for key in FORMATS if key in payload}, self.schema
                )
            ), params or None
        if mime == "text/csv":
            if self.columns is not None:
                text = _text(body)
                # The header first, with the csv module: pandas takes time quadratic in a
                # header that repeats a name, renaming each repeat.
                try:
                    header = next(csv.reader(StringIO(text)), [])
                except csv.Error as error:
                    raise InvalidInput(f"the CSV header cannot be read: {error}") from None
                if len(set(header)) != len(header):
                    raise InvalidInput("the CSV header must name each column once")
                self.columns.check_names(header)
                frame = self._mlflow(lambda parsing: parsing.parse_csv_input(StringIO(text), None), validate=False)
                return self.columns.from_columns({name: frame[name].tolist() for name in frame.columns}), None
            return self._mlflow(lambda parsing: parsing.parse_csv_input(StringIO(_text(body)), self.schema)), None
        raise UnsupportedMediaType(f"content type {mime!r} is not served: send application/json or text/csv")

    def _columns(self, payload: dict[str, JSON]) -> Columns:
        columns = cast(ColumnSchema, self.columns)  # decode reads a request here only for a model with columns
        key = next(key for key in FORMATS if key in payload)
        value = payload[key]
        if key == "dataframe_split":
            return columns.from_split(value)
        if isinstance(value, dict):
            return columns.from_columns(value)
        return columns.from_records(value)

    def _mlflow(self, parse: Callable[[ModuleType], Parsed], validate: bool = True) -> Parsed:
        from mlflow.exceptions import MlflowException
        from mlflow.models import validate_schema
        from mlflow.pyfunc import scoring_server

        try:
            data = parse(scoring_server)
            if validate and self.schema is not None:
                validate_schema(data, self.schema)
        except MlflowException as error:
            raise InvalidInput(error.message) from None
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError) as error:
            # MLflow's parsers let some malformed input through to pandas or numpy.
            raise InvalidInput(f"the body cannot be read as the model's input: {error}") from None
        if _empty(data):
            raise InvalidInput("the request holds no rows; send at least one")
        return data


def load_parsers() -> None:
    """Imports MLflow's parsers, so the first request they read does not wait for them."""
    import mlflow.pyfunc.scoring_server  # noqa: F401


def _mime(content_type: str) -> str:
    return (content_type or "application/json").split(";")[0].strip().lower()


def _empty(data: object) -> bool:
    if isinstance(data, dict):
        return not data or any(_empty(value) for value in data.values())
    try:
        return len(cast(Sized, data)) == 0
    except TypeError:  # a scalar, or a 0-d array
        return False


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"the body is not UTF-8 text: {error}") from None


def _json_object(body: bytes) -> dict[str, JSON]:
    payload = json_codec.loads(body)
    if not isinstance(payload, dict):
        raise InvalidInput(f"the body must be a JSON object with one of {', '.join(FORMATS)}")
    present = [key for key in FORMATS if key in payload]
    unknown = sorted(set(payload) - set(FORMATS) - {"params"})
    if len(present) != 1 or unknown:
        found = ", ".join(sorted(payload)) or "nothing"
        raise InvalidInput(
            f"the body must hold exactly one of {', '.join(FORMATS)} (and optionally params); it holds {found}"
        )
    return payload


def encode(predictions: PyFuncOutput) -> bytes:
    """{"predictions": ...} as `mlflow models serve` writes it; plain arrays without its detour."""
    if isinstance(predictions, np.ndarray) and (
        predictions.dtype.kind in "iub" or (predictions.dtype.kind == "f" and np.isfinite(predictions).all())
    ):
        return json_codec.dumps({"predictions": np.ascontiguousarray(predictions)})
    return json.dumps({"predictions": _jsonable(predictions)}, cls=_ScoringServerEncoder).encode()


# What follows writes exactly what MLflow's scoring server writes (predictions_to_json, its
# _get_jsonable_obj and NumpyEncoder), without importing MLflow to answer a request.


def _jsonable(predictions: PyFuncOutput) -> object:
    import pandas as pd

    if isinstance(predictions, np.ndarray):
        return predictions.tolist()
    if isinstance(predictions, pd.DataFrame):
        return predictions.to_dict(orient="records")
    if isinstance(predictions, pd.Series):
        return pd.DataFrame(predictions).to_dict(orient="records")
    return predictions


class _ScoringServerEncoder(json.JSONEncoder):
    def default(self, o: object) -> object:
        converted, done = _convert(o)
        return converted if done else super().default(o)


def _convert(o: object) -> tuple[object, bool]:
    if isinstance(o, np.ndarray):
        if o.dtype == object:
            return [_convert(x)[0] for x in o.tolist()], True
        if o.dtype == np.bytes_:
            return np.vectorize(_base64)(o), True
        return o.tolist(), True
    if isinstance(o, np.generic):
        return o.item(), True
    if isinstance(o, (bytes, bytearray)):
        return _base64(o), True
    # pandas' Timestamp is a datetime.
    if isinstance(o, (datetime.date, datetime.datetime, datetime.time)):
        return o.isoformat(), True
    # Only an imported pydantic has made a model of it: not imported for every object.
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(o, pydantic.BaseModel):
        return o.model_dump(), True
    return o, False


def _base64(value: bytes | bytearray) -> str:
    return base64.encodebytes(value).decode("ascii")
