"""core/diff.py: the nested patch of one session value (issue 12, session side).

Checked against a small reference applier written here from the merge rules (M2-M5 of
core/patch.py), so the producer is proved on its own: for random nested old/new trees,
applying ``diff(old, new)`` to ``old`` gives ``new``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from sessionkeeper.core import codec
from sessionkeeper.core.diff import diff, same
from sessionkeeper.core.records import PatchAppend, PatchDelete, PatchOp, PatchSet

MISSING: Any = object()


def _is_object(node: Any) -> bool:
    return type(node) is dict and codec.TAG not in node


def reference_apply(tree: Any, ops: tuple[PatchOp, ...]) -> Any:
    """A field's tree after ``ops``, per the merge rules (independent of core/patch.py)."""
    tree = copy.deepcopy(tree)
    for op in ops:
        if isinstance(op, PatchDelete):
            node = tree
            for step in op.path[:-1]:
                node = node.get(step) if _is_object(node) else None
            if _is_object(node):
                node.pop(op.path[-1], None)
            continue
        if isinstance(op, PatchAppend) and not op.path:
            items = json.loads(op.items)
            tree = tree + items if type(tree) is list else items
            continue
        if not _is_object(tree):
            tree = {}
        node = tree
        for step in op.path[:-1]:
            if not _is_object(node.get(step)):
                node[step] = {}
            node = node[step]
        last = op.path[-1]
        if isinstance(op, PatchSet):
            node[last] = json.loads(op.value)
        else:
            assert isinstance(op, PatchAppend)
            items = json.loads(op.items)
            node[last] = node[last] + items if type(node.get(last)) is list else items
    return tree


def canon(tree: Any) -> str:
    return json.dumps(tree, sort_keys=True)


# ---- examples: what is patched, what is replaced --------------------------------------------


def test_equal_trees_give_no_ops() -> None:
    assert diff({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}) == ()
    assert diff([1, 2], [1, 2]) == ()
    assert diff({"a": 1, "b": 2}, {"b": 2, "a": 1}) == ()  # key order is not a change


def test_dict_entries_set_and_removed_at_any_depth() -> None:
    old = {"cart": {"i1": 1}, "keep": "x", "gone": True, "deep": {"a": {"b": {"c": 1}}}}
    new = {"cart": {"i1": 1, "i2": 1}, "keep": "x", "deep": {"a": {"b": {"c": 2, "d": None}}}}
    assert set(diff(old, new) or ()) == {
        PatchDelete(("gone",)),
        PatchSet(("cart", "i2"), "1"),
        PatchSet(("deep", "a", "b", "c"), "2"),
        PatchSet(("deep", "a", "b", "d"), "null"),
    }


def test_list_append_is_an_append_at_its_path() -> None:
    assert diff([1, 2], [1, 2, 3, "x"]) == (PatchAppend((), '[3,"x"]'),)
    assert diff({"log": ["a"]}, {"log": ["a", "é"]}) == (PatchAppend(("log",), '["é"]'),)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ([1, 2, 3], [1, 2]),  # shortened
        ([1, 2], [2, 1]),  # reordered
        ([1, 2], [1, 3, 4]),  # changed in the middle
        ([1], {"a": 1}),  # type change
        ("x", "y"),  # scalar
        ([1], [True, 2]),  # 1 and true are different values
        ([0.0], [-0.0, 1]),
        ({"__sk": "t", "v": [1]}, {"__sk": "t", "v": [1, 2]}),  # tuple
        ({"__sk": "map", "v": [["__sk", 1]]}, {"__sk": "map", "v": [["__sk", 2]]}),  # dict with "__sk"
        ({"a": 1}, {"__sk": "map", "v": [["a", 1], ["__sk", 2]]}),  # a dict that gains "__sk"
    ],
)
def test_what_only_a_whole_value_can_express_is_replaced(old: Any, new: Any) -> None:
    assert diff(old, new) is None
    # ... and one level down, the same change is a PatchSet of the whole value on its entry
    text = json.dumps(new, ensure_ascii=False, separators=(",", ":"))
    assert diff({"k": old}, {"k": new}) == (PatchSet(("k",), text),)


def test_tagged_values_are_set_whole_never_descended_into() -> None:
    old = codec.to_json_tree({"when": __import__("datetime").date(2026, 1, 1), "pair": (1, [2])})
    new = codec.to_json_tree({"when": __import__("datetime").date(2026, 1, 2), "pair": (1, [2, 3])})
    ops = diff(old, new) or ()
    assert {op.path for op in ops} == {("when",), ("pair",)}
    assert all(isinstance(op, PatchSet) for op in ops)


def test_no_op_ever_names_the_tag_key() -> None:
    old = codec.to_json_tree({"a": {"x": 1}})
    new = codec.to_json_tree({"a": {"x": 1, "__sk": "boo"}})
    ops = diff(old, new) or ()
    assert ops == (PatchSet(("a",), codec.encode("a", {"x": 1, "__sk": "boo"})),)
    assert all("__sk" not in op.path for op in ops)


def test_same_is_exact() -> None:
    assert same({"a": [1, 2.5]}, {"a": [1, 2.5]})
    assert not same(1, 1.0) and not same(1, True) and not same(0.0, -0.0)
    assert not same({"a": 1}, {"a": 1, "b": 2}) and not same([1], [1, 1])


# ---- property: applying the diff to old gives new ------------------------------------------

keys = st.sampled_from(["a", "b", "c", "cart", "é", "$.x", "__sk", ""])
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.0, -0.0, 1.5]),
    st.text(max_size=3),
)
python_values = st.recursive(
    leaves | st.tuples(leaves, leaves),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


def _grow(value: Any, extra: Any) -> Any:
    """A likely edit of ``value``: lists grow at the end, dicts gain/lose/change entries."""
    if type(value) is list:
        return [*value, *extra] if type(extra) is list else value[:-1]
    if type(value) is dict:
        out = {k: _grow(v, extra) for k, v in value.items()}
        if type(extra) is dict:
            out.update(extra)
        elif out:
            out.pop(next(iter(out)))
        return out
    return extra


@settings(max_examples=300, deadline=None)
@given(python_values, python_values, st.booleans())
def test_applying_the_diff_to_old_gives_new(old_value: Any, other: Any, related: bool) -> None:
    new_value = _grow(old_value, other) if related else other
    old, new = codec.to_json_tree(old_value), codec.to_json_tree(new_value)
    ops = diff(old, new)
    result = new if ops is None else reference_apply(old, ops)
    assert canon(result) == canon(new)
    if ops is not None:
        assert codec.decode(json.dumps(result)) == codec.decode(json.dumps(new))
        for op in ops:
            assert op.path or isinstance(op, PatchAppend)
            assert codec.TAG not in op.path
    if ops is None:  # replaced only when no patch could say it
        assert not (_is_object(old) and _is_object(new))


@settings(max_examples=200, deadline=None)
@given(python_values)
def test_a_value_diffed_with_itself_is_no_change(value: Any) -> None:
    tree = codec.to_json_tree(value)
    assert diff(tree, json.loads(json.dumps(tree))) == ()
