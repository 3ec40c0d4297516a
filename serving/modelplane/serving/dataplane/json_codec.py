"""JSON bodies in and out, with orjson (several times faster than the standard library on
small bodies, and it writes numpy arrays directly)."""

from __future__ import annotations

import json
from typing import Any, TypeAlias

import orjson

from modelplane.serving.errors import InvalidInput

# A value as JSON carries it: an object, array, string, number, boolean or null, nested as
# the sender chose; what it must be is checked where it is used.
JSON: TypeAlias = Any


def loads(body: bytes) -> JSON:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    # NaN and Infinity are not JSON, but Python's json and pandas clients write them, so
    # what orjson refuses is read again by Python's parser; which also admits what must
    # stay out: nesting past orjson's limit, lone UTF-16 surrogates (text no UTF-8
    # encoder can write back), and integers of more digits than Python converts.
    try:
        payload = json.loads(body)
    except RecursionError:
        raise InvalidInput("the body is not valid JSON: it nests arrays or objects too deeply") from None
    except ValueError as error:
        raise InvalidInput(f"the body is not valid JSON: {error}") from None
    _check_text(payload)
    return payload


def _check_text(payload: JSON) -> None:
    """Refuses nesting deeper than orjson's limit and strings that are not valid Unicode."""
    pending = [(payload, 0)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise InvalidInput(
                f"the body is not valid JSON: it nests arrays or objects too deeply (more than {MAX_DEPTH} levels)"
            )
        if isinstance(value, str):
            _check_string(value)
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_string(key)
                pending.append((item, depth + 1))


def _check_string(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("the body is not valid JSON: a string holds a lone UTF-16 surrogate") from None


# orjson's own limit, so a body means the same whichever parser read it.
MAX_DEPTH = 1024


def shown(value: object) -> str:
    """A value as an error message quotes it: short, and never failing on what it is."""
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    try:
        return json.dumps(value, ensure_ascii=True)[:60]
    except (TypeError, ValueError):
        return type(value).__name__


def dumps(value: object) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
