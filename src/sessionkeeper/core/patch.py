"""Nested patches: the merge rules, stated once, and the reference implementation.

A :class:`~.records.Delta` may carry, for a field (one session key), a tuple of patch
operations that change parts of the field's stored JSON tree (as core/codec.py writes it)
instead of replacing it. Every store applies them atomically, in the same single operation
as the rest of the delta; :func:`apply_patch` is the reference the memory and file stores
use directly and the conformance suite compares every other store with.

Words used below: an *object* is a JSON object that is not a tagged codec value (it has no
``"__sk"`` key); an *array* is a JSON array; anything else (string, number, true, false,
null, a tagged value such as a datetime or a tuple) is a *leaf*.

The merge rules
---------------
M1. Order. The operations of one field apply in the order given, after the delta's whole-field
    deletes and sets (a delta never names one field in more than one of the three).
M2. Set. ``PatchSet(path, value)`` makes the entry ``path[-1]`` of the object at ``path[:-1]``
    hold ``value``: an existing entry is overwritten in place (its position among the keys
    is kept), a new one is added after the others.
M3. Delete. ``PatchDelete(path)`` removes the entry if it is there. If it, or any parent on
    its path, is missing or not an object, it is a no-op (nothing is created).
M4. Append. ``PatchAppend(path, items)`` appends the items, in order, to the array at ``path``
    (``()``: the field's own value).
M5. What a concurrent request left on the way. A set or an append that meets, on its path, a
    parent that is missing or is not an object (another request removed it, or replaced it by a
    leaf or an array) recreates that parent as an empty object and goes on; a missing field is
    created the same way. An append whose target is missing or is not an array makes the
    target a new array of just its items. The field or parent that was there is replaced.
M6. Hence one rule for conflicts: requests commit in some order, and the stored value is what
    replaying each request's *own edits* (not its whole snapshot) in commit order gives.
    Per path, the last writer wins; a removal (``PatchDelete``, or a whole-field delete or set)
    wins over the changes beneath it that committed before it, and a change that commits after
    a removal of its parent brings the parent back holding just that change.

Why M5 recreates rather than drops: a missing parent is, nearly always, not a concurrent
removal but a value that did not exist yet when the request loaded the session (the first
``session.setdefault("cart", []).append(item)`` of fifty concurrent requests): dropping would
lose exactly the updates this feature exists to keep. Recreating also makes the result the
one a serial replay of the requests' edits gives (M6), which is the easiest rule to explain:
"add item" racing "empty cart" leaves a cart holding the item, as if the add came second.
Nothing a request committed is ever dropped silently: it is only overwritten by a later one.

What a patch never does (the producer, core/diff.py, keeps to this and stores do not check):
it never descends into a tagged value (a changed datetime, tuple or ``{"__sk": ...}`` map is
set whole on its parent) and never sets an entry named ``"__sk"`` (a dict that gains that key
is encoded as a tagged ``map`` and thus replaced whole). Path steps are otherwise any string:
quotes, dots, ``$``, brackets, NUL and any unicode are data, never syntax, in every store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from .codec import TAG
from .records import PatchAppend, PatchDelete, PatchOp, PatchSet

__all__ = ["MISSING", "apply_patch", "apply_patch_text", "is_object", "ops_to_json"]


class _Missing:
    """The value of a field that is not there (distinct from JSON ``null``)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


#: A field that is not in the session: :func:`apply_patch` may create it (M5).
MISSING: Final = _Missing()

# The codec's own formatting, so a patched value is written as the codec would write it.
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_decode = json.JSONDecoder().decode


def is_object(node: Any) -> bool:
    """A JSON object a patch may descend into: a dict that is not a tagged codec value."""
    return type(node) is dict and TAG not in node


def _parent(root: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """The object at ``path`` under ``root``, recreating what is missing or not an object (M5)."""
    node = root
    for step in path:
        child: Any = node.get(step)
        if not is_object(child):
            child = {}
            node[step] = child
        node = child
    return node


def apply_patch(tree: Any, ops: Iterable[PatchOp]) -> Any:
    """The field's JSON tree after ``ops`` (rules M1-M5); ``tree`` may be :data:`MISSING`.

    ``tree`` is changed in place where it can be; use the return value. The result is
    :data:`MISSING` only if the field was missing and every op was a delete.
    """
    for op in ops:
        if isinstance(op, PatchSet):
            if not op.path:
                raise ValueError("PatchSet needs a path of at least one key")
            if not is_object(tree):
                tree = {}
            _parent(tree, op.path[:-1])[op.path[-1]] = _decode(op.value)
        elif isinstance(op, PatchDelete):
            if not op.path:
                raise ValueError("PatchDelete needs a path of at least one key")
            node = tree
            for step in op.path[:-1]:
                node = node.get(step) if is_object(node) else None
            if is_object(node):
                node.pop(op.path[-1], None)
        elif isinstance(op, PatchAppend):
            items = _decode(op.items)
            if type(items) is not list:
                raise ValueError("PatchAppend needs the JSON text of an array")
            if not op.path:
                if type(tree) is list:
                    tree.extend(items)
                else:
                    tree = items
                continue
            if not is_object(tree):
                tree = {}
            parent = _parent(tree, op.path[:-1])
            target = parent.get(op.path[-1])
            if type(target) is list:
                target.extend(items)
            else:
                parent[op.path[-1]] = items
        else:  # pragma: no cover - the type checker knows the three kinds
            raise TypeError(f"not a patch operation: {op!r}")
    return tree


def apply_patch_text(text: str | None, ops: Iterable[PatchOp]) -> str | None:
    """:func:`apply_patch` on a field's encoded text (``None``: missing), re-encoded as the
    codec writes it; ``None`` if the field stays missing."""
    tree = apply_patch(MISSING if text is None else _decode(text), ops)
    return None if tree is MISSING else _encoder.encode(tree)


def ops_to_json(ops: Iterable[PatchOp]) -> list[list[Any]]:
    """The ops as plain JSON-ready lists, ``["s", path, value_text]``, ``["d", path]``,
    ``["a", path, items_text]``: the wire form stores send to a script or a function."""
    out: list[list[Any]] = []
    for op in ops:
        if isinstance(op, PatchSet):
            out.append(["s", list(op.path), op.value])
        elif isinstance(op, PatchDelete):
            out.append(["d", list(op.path)])
        else:
            out.append(["a", list(op.path), op.items])
    return out


def ops_from_json(raw: Any) -> tuple[PatchOp, ...]:
    """Inverse of :func:`ops_to_json`; raises ``ValueError`` on anything else."""
    out: list[PatchOp] = []
    if type(raw) is not list:
        raise ValueError("patch ops must be a list")
    for item in raw:
        if type(item) is not list or not item or type(item[1]) is not list:
            raise ValueError(f"malformed patch op {item!r}")
        path = tuple(str(s) for s in item[1])
        if item[0] == "s" and len(item) == 3:
            out.append(PatchSet(path, str(item[2])))
        elif item[0] == "d" and len(item) == 2:
            out.append(PatchDelete(path))
        elif item[0] == "a" and len(item) == 3:
            out.append(PatchAppend(path, str(item[2])))
        else:
            raise ValueError(f"malformed patch op {item!r}")
    return tuple(out)
