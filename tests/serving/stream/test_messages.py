"""How an event's bytes and content type become records: JSON by default, the bytes
themselves as the binary column's value for an image or octet-stream event."""

from __future__ import annotations

import pytest

from modelplane.serving.errors import InvalidInput
from modelplane.serving.stream.messages import Event, records_of


def _event(value: bytes, content_type: str | None, key: bytes | None = b"scan-1.png") -> Event:
    return Event(value=value, key=key, origin={}, content_type=content_type)


@pytest.mark.parametrize("content_type", [None, "application/json", "application/json; charset=utf-8", "x/y+json"])
def test_json_events_keep_their_records_and_ids(content_type):
    assert records_of(_event(b'{"id": 7, "x": 1}', content_type), "image") == ([{"x": 1}], [7], False)


@pytest.mark.parametrize("content_type", ["image/png", "IMAGE/JPEG", "application/octet-stream; name=a"])
def test_a_binary_event_is_its_column_s_value_and_its_key_the_id(content_type):
    assert records_of(_event(b"\x89PNG...", content_type), "image") == (
        [{"image": b"\x89PNG..."}],
        ["scan-1.png"],
        False,
    )


def test_a_binary_event_without_a_key_has_no_id():
    assert records_of(_event(b"\x89PNG", "image/png", key=None), "image")[1] == [None]


@pytest.mark.parametrize(
    ("value", "content_type", "column", "words"),
    [
        (b"a,b", "text/csv", "image", "content-type 'text/csv' is not read"),
        (b"\x89PNG", "image/png", None, "not exactly one binary input column"),
        (b"", "image/png", "image", "the image/png event is empty"),
    ],
)
def test_binary_events_a_model_cannot_take_are_refused_with_the_reason(value, content_type, column, words):
    with pytest.raises(InvalidInput, match=words):
        records_of(_event(value, content_type), column)
