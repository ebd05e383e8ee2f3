"""Value encoding: JSON text with a few tagged extension types. Never pickle.

Each session key is encoded on its own (stores keep one field per key, so two requests that
change different keys never touch the same field). A tagged value is a JSON object with the
single marker key ``"__sk"`` naming the type and ``"v"`` holding its payload::

    datetime  {"__sk": "dt", "v": "2026-11-27T11:10:00+00:00"}
    date      {"__sk": "d", "v": "2026-11-27"}
    UUID      {"__sk": "uuid", "v": "..."}
    Decimal   {"__sk": "dec", "v": "1.10"}
    bytes     {"__sk": "b", "v": "<base64>"}
    tuple     {"__sk": "t", "v": [...]}
    nan/inf   {"__sk": "f", "v": "nan"}
    a dict that itself has a "__sk" key: {"__sk": "map", "v": [[k, v], ...]}

Decoding is strict: unknown tags, or a tag on something that is not exactly a marker object,
fail with :class:`ValueError`, which the flow treats as a corrupt record (fresh session).
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
import uuid
from decimal import Decimal
from typing import Any

from ..errors import SessionEncodeError

TAG = "__sk"

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_plain_decode = json.JSONDecoder().decode


class _Unsupported(Exception):
    def __init__(self, detail: str) -> None:
        self.detail = detail


def _tag(name: str, payload: Any) -> dict[str, Any]:
    return {TAG: name, "v": payload}


def to_json_tree(value: Any) -> Any:
    """Turn a session value into a tree that :mod:`json` can write, tagging the extras."""
    # Exact type checks first: they are the common case and bool must not pass as int.
    t = type(value)
    if t is str or t is bool or t is int or value is None:
        return value
    if t is float:
        return value if math.isfinite(value) else _tag("f", repr(value))
    if t is list:
        return [to_json_tree(v) for v in value]
    if t is dict:
        for k in value:
            if type(k) is not str:
                raise _Unsupported(f"dict key {k!r} is a {type(k).__name__}, not a str")
        if TAG in value:
            return _tag("map", [[k, to_json_tree(v)] for k, v in value.items()])
        return {k: to_json_tree(v) for k, v in value.items()}
    if t is tuple:
        return _tag("t", [to_json_tree(v) for v in value])
    if t is _dt.datetime:
        return _tag("dt", value.isoformat())
    if t is _dt.date:
        return _tag("d", value.isoformat())
    if t is uuid.UUID:
        return _tag("uuid", str(value))
    if t is Decimal:
        return _tag("dec", str(value))
    if t is bytes:
        return _tag("b", base64.b64encode(value).decode("ascii"))
    raise _Unsupported(f"values of type {t.__module__}.{t.__qualname__} are not supported")


def from_json_tree(node: Any) -> Any:
    """Inverse of :func:`to_json_tree`."""
    if type(node) is list:
        return [from_json_tree(v) for v in node]
    if type(node) is not dict:
        return node
    if TAG not in node:
        return {k: from_json_tree(v) for k, v in node.items()}
    if len(node) != 2 or "v" not in node:
        raise ValueError("malformed tagged value")
    tag, payload = node[TAG], node["v"]
    if tag == "map":
        if type(payload) is not list:
            raise ValueError("tag 'map' needs a list of [key, value] pairs")
        out: dict[str, Any] = {}
        for pair in payload:
            if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str:
                raise ValueError("tag 'map' needs a list of [key, value] pairs")
            out[pair[0]] = from_json_tree(pair[1])
        return out
    if tag == "t":
        if type(payload) is not list:  # a string payload would silently become a tuple of chars
            raise ValueError("tag 't' needs a list payload")
        return tuple(from_json_tree(v) for v in payload)
    if not isinstance(payload, str):
        raise ValueError(f"tag {tag!r} needs a string payload")
    if tag == "dt":
        return _dt.datetime.fromisoformat(payload)
    if tag == "d":
        return _dt.date.fromisoformat(payload)
    if tag == "uuid":
        return uuid.UUID(payload)
    if tag == "dec":
        return Decimal(payload)
    if tag == "b":
        return base64.b64decode(payload.encode("ascii"), validate=True)
    if tag == "f":
        value = float(payload)
        if math.isfinite(value):  # the encoder tags only nan and the infinities
            raise ValueError("tag 'f' holds a finite number")
        return value
    raise ValueError(f"unknown value tag {tag!r}")


def encode(key: str, value: Any) -> str:
    """Encode one session value to JSON text, or raise :class:`SessionEncodeError`."""
    try:
        text = _encoder.encode(to_json_tree(value))
    except _Unsupported as exc:
        raise SessionEncodeError(key, exc.detail) from None
    except RecursionError:
        raise SessionEncodeError(key, "the value nests too deeply (or contains itself)") from None
    except ValueError:  # allow_nan=False never fires (floats are tagged); kept for safety
        raise SessionEncodeError(key, "the value is not representable as JSON") from None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise SessionEncodeError(key, "a string holds a lone surrogate (not valid UTF-8)") from None
    return text


def decode(text: str) -> Any:
    """Decode JSON text written by :func:`encode`; raises :class:`ValueError` if corrupt."""
    try:
        return from_json_tree(_plain_decode(text))
    except ValueError:
        raise
    # Decimal("junk") raises decimal.InvalidOperation, an ArithmeticError, not a ValueError.
    except (TypeError, KeyError, RecursionError, ArithmeticError) as exc:
        raise ValueError(f"corrupt session value: {exc!r}") from None


def encoded_size(fields: dict[str, str]) -> int:
    """The size that counts against ``max_size``: UTF-8 bytes of names and values."""
    return sum(len(k.encode("utf-8")) + len(v.encode("utf-8")) for k, v in fields.items())
