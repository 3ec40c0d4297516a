"""JSON bodies in and out, with orjson (several times faster than the standard library on
small bodies, and it writes numpy arrays directly)."""

from __future__ import annotations

import json

import orjson

from modelplane.serving.errors import InvalidInput


def loads(body: bytes):
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        # NaN and Infinity are not JSON, but Python's json and pandas clients write them.
        return json.loads(body)
    except RecursionError:
        raise InvalidInput("the body is not valid JSON: it nests arrays or objects too deeply") from None
    except ValueError as error:  # also integers of more digits than Python converts
        raise InvalidInput(f"the body is not valid JSON: {error}") from None


def dumps(value) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
