"""The MLflow scoring protocol, as `mlflow models serve` speaks it: a JSON object with one
of dataframe_split, dataframe_records, instances or inputs (and optional params), or CSV.

Parsing is MLflow's own, so requests mean here what they mean there; what differs is that
each request is checked against the model's signature on its own, before it joins a
batch, so one bad request is refused alone with a message naming the column.
"""

from __future__ import annotations

import json
from io import StringIO

from modelplane.serving.errors import InvalidInput, UnsupportedMediaType

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def decode(body: bytes, content_type: str, schema) -> tuple[object, dict | None]:
    """The model input and params of one request."""
    from mlflow.exceptions import MlflowException
    from mlflow.models import validate_schema
    from mlflow.pyfunc.scoring_server import infer_and_parse_data, parse_csv_input

    mime = (content_type or "application/json").split(";")[0].strip().lower()
    try:
        if mime == "application/json":
            payload = _json_object(body)
            params = payload.get("params")
            data = infer_and_parse_data({key: payload[key] for key in FORMATS if key in payload}, schema)
        elif mime == "text/csv":
            params = None
            data = parse_csv_input(StringIO(_text(body)), schema)
        else:
            raise UnsupportedMediaType(f"content type {mime!r} is not served: send application/json or text/csv")
        if schema is not None:
            validate_schema(data, schema)
    except MlflowException as error:
        raise InvalidInput(error.message) from None
    return data, params


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"the body is not UTF-8 text: {error}") from None


def _json_object(body: bytes) -> dict:
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInput(f"the body is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise InvalidInput(f"the body must be a JSON object with one of {', '.join(FORMATS)}")
    present = [key for key in FORMATS if key in payload]
    unknown = sorted(set(payload) - set(FORMATS) - {"params"})
    if len(present) != 1 or unknown:
        found = ", ".join(sorted(payload)) or "nothing"
        raise InvalidInput(f"the body must hold exactly one of {', '.join(FORMATS)} (and optionally params); "
                           f"it holds {found}")
    return payload


def encode(predictions) -> bytes:
    from mlflow.pyfunc.scoring_server import predictions_to_json

    out = StringIO()
    predictions_to_json(predictions, out)
    return out.getvalue().encode()
