"""What travels: an input event as any transport delivers it, the records it holds, and the
prediction or dead letter written for it.

An event's value is JSON: one record (an object of input columns) or a list of them. A
record's `id` field is not a model input; it passes through to its prediction, as does
the event's key. An event whose content type says it is an image or other bytes (a
camera's frame, a scanner's file) is instead the one value of the model's binary column,
and its key is its id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, cast

import numpy as np
import pandas as pd

from modelplane.serving.dataplane import json_codec
from modelplane.serving.dataplane.json_codec import JSON
from modelplane.serving.errors import InvalidInput

if TYPE_CHECKING:
    from mlflow.models.utils import PyFuncOutput

ID_FIELD = "id"


@dataclass
class Event:
    """One input event. `origin` says where it came from (topic, partition and offset, or
    stream and entry id) for dead letters; `receipt` is what the transport acknowledges;
    `written_at` is when the broker stored it (Unix seconds), where it says."""

    value: bytes
    key: bytes | None
    origin: dict[str, JSON]
    receipt: object = None
    attempts: int = field(default=0)
    written_at: float | None = None
    content_type: str | None = None  # from the event's header; None reads as JSON


class Outgoing(NamedTuple):
    """One message to write: to the sink, or to the dead-letter destination. (A tuple:
    one is made per event, and a tuple is the cheapest object Python builds.)"""

    value: bytes
    key: bytes | None
    headers: dict[str, str]


def records_of(event: Event, binary_column: str | None) -> tuple[list[dict[str, JSON]], list[JSON], bool]:
    """(records without their ids, the ids, whether the event held a list); InvalidInput
    when the value is not JSON records, or a binary payload the model has no column for."""
    if event.content_type is not None and not _is_json(event.content_type):
        return _binary_record(event, binary_column)
    payload = json_codec.loads(event.value)
    # The records were parsed just now, for this call alone: taking the ids out is safe.
    if type(payload) is dict:  # the common case, one record, kept cheap
        return [payload], [payload.pop(ID_FIELD, None)], False
    if not isinstance(payload, list) or not payload or any(type(record) is not dict for record in payload):
        raise InvalidInput("an event must be a JSON object (one record) or a non-empty list of objects")
    return payload, [record.pop(ID_FIELD, None) for record in payload], True


def _is_json(content_type: str) -> bool:
    media = _media_type(content_type)
    return media == "application/json" or media.endswith("+json")


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _binary_record(event: Event, column: str | None) -> tuple[list[dict[str, JSON]], list[JSON], bool]:
    media = _media_type(event.content_type or "")[:100]  # a header's length is the sender's choice
    if not (media.startswith("image/") or media == "application/octet-stream"):
        raise InvalidInput(
            f"content-type {media!r} is not read: send application/json records, or the bytes of "
            "one value (image/* or application/octet-stream) to a model with one binary input column"
        )
    if column is None:
        raise InvalidInput(
            f"a {media} event is the value of a binary input column, and this model has not exactly "
            "one binary input column (with any others optional); send application/json records"
        )
    if not event.value:
        raise InvalidInput(f"the {media} event is empty")
    key = event.key.decode(errors="replace") if event.key is not None else None
    # bytes are a binary column's value as they are; JSON carries them as base64 text.
    return [{column: cast("JSON", event.value)}], [key], False


def prediction(event: Event, ids: list[JSON], many: bool, values: list[JSON], headers: dict[str, str]) -> Outgoing:
    """The output event of one input event: each record's id beside its prediction (a
    JSON-able value per record, see `jsonable`)."""
    if not many:
        return Outgoing(json_codec.dumps({ID_FIELD: ids[0], "prediction": values[0]}), event.key, headers)
    scored = [{ID_FIELD: record_id, "prediction": value} for record_id, value in zip(ids, values, strict=False)]
    return Outgoing(json_codec.dumps(scored), event.key, headers)


def dead_letter(event: Event, error: str, headers: dict[str, str]) -> Outgoing:
    """A dead letter: the error, the original payload (as text when it is text), its origin
    and how many times it was tried."""
    try:
        payload: object = event.value.decode()
    except UnicodeDecodeError:
        payload = event.value.hex()
    letter = {
        "error": error,
        "payload": payload,
        "origin": event.origin,
        "attempts": event.attempts,
        "key": event.key.decode(errors="replace") if event.key else None,
    }
    return Outgoing(json_codec.dumps(letter), event.key, headers)


def jsonable(predictions: PyFuncOutput) -> list[JSON]:
    """The model's predictions as one JSON-able value per row."""
    if isinstance(predictions, pd.DataFrame):
        return cast("list[JSON]", predictions.to_dict(orient="records"))
    if isinstance(predictions, (pd.Series, np.ndarray)):
        return cast("list[JSON]", predictions.tolist())
    return list(predictions)
