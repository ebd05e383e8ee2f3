"""The structural diff of one session value: what changed, as nested patch operations.

``diff(old, new)`` takes two JSON trees (what :func:`~.codec.to_json_tree` gives, or
``json.loads`` of the codec's text) and returns the operations (:mod:`.records`:
``PatchSet``, ``PatchDelete``, ``PatchAppend``) that turn ``old`` into ``new`` under the merge
rules of :mod:`.patch`, or ``None`` when only a whole-value replacement can (the caller then
writes the value whole). ``()`` means the two are the same value.

Rules of the producer (the stores rely on them, see :mod:`.patch`, "What a patch never does"):
- Only plain JSON objects (dicts without the codec's ``"__sk"`` tag) and arrays are descended
  into. Objects: an entry that disappeared is a ``PatchDelete``, one that is new or changed is
  a ``PatchSet`` of its new value, recursively for an object that stays an object.
- An array that only grew at its end (the new one starts with every item of the old one) is a
  ``PatchAppend`` of the new items. Any other array change (reordered, shortened, an item
  changed in place), a change of type, a changed leaf or tagged value (tuple, datetime,
  Decimal, bytes, a dict holding ``"__sk"``) replaces the value at its path: a ``PatchSet`` on
  the object entry holding it, or ``None`` for the key's value itself.
- Values are compared exactly, by type: ``1``, ``1.0`` and ``true`` are three different values
  (Python's ``==`` says they are equal), so are ``0.0`` and ``-0.0``.
- A patch never sets an entry named ``"__sk"``: in a codec tree a plain object cannot hold one
  (a dict with that key is encoded as a tagged ``map``, a leaf).

Values in the operations are JSON text written as the codec writes it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .codec import TAG
from .records import PatchAppend, PatchDelete, PatchOp, PatchSet

__all__ = ["diff", "same"]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _is_object(node: Any) -> bool:
    return type(node) is dict and TAG not in node


def same(a: Any, b: Any) -> bool:
    """True if the JSON trees ``a`` and ``b`` are the same value, types included (objects
    compare without regard to key order, as JSON objects do)."""
    if a is b:
        return True
    t = type(a)
    if t is not type(b):
        return False
    if t is dict:
        if len(a) != len(b):
            return False
        for k, v in a.items():
            w = b.get(k, _ABSENT)
            if w is _ABSENT or not same(v, w):
                return False
        return True
    if t is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if t is float:
        return bool(a == b and math.copysign(1.0, a) == math.copysign(1.0, b))
    return bool(a == b)


_ABSENT: Any = object()


def _grown(old: list[Any], new: list[Any]) -> bool:
    """True if ``new`` is ``old`` followed by at least one more item."""
    n = len(old)
    return len(new) > n and all(same(x, y) for x, y in zip(old, new[:n], strict=True))


def diff(old: Any, new: Any) -> tuple[PatchOp, ...] | None:
    """The operations that turn ``old`` into ``new``, or ``None``: replace the whole value."""
    if same(old, new):
        return ()
    if _is_object(old) and _is_object(new):
        ops: list[PatchOp] = []
        _objects(old, new, (), ops)
        return tuple(ops)
    if type(old) is list and type(new) is list and _grown(old, new):
        return (PatchAppend((), _encode(new[len(old):])),)
    return None


def _objects(old: dict[str, Any], new: dict[str, Any], path: tuple[str, ...], ops: list[PatchOp]) -> None:
    for key in old:
        if key not in new:
            ops.append(PatchDelete((*path, key)))
    for key, value in new.items():
        before = old.get(key, _ABSENT)
        if before is not _ABSENT:
            if same(before, value):
                continue
            if _is_object(before) and _is_object(value):
                _objects(before, value, (*path, key), ops)
                continue
            if type(before) is list and type(value) is list and _grown(before, value):
                ops.append(PatchAppend((*path, key), _encode(value[len(before):])))
                continue
        ops.append(PatchSet((*path, key), _encode(value)))
