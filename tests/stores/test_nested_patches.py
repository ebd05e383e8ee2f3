"""Nested patches (``Delta.patch``, issue 12): every store applies them by the merge rules of
sessionkeeper/core/patch.py, atomically, and agrees with the reference ``apply_patch``.

Stores compare with the reference on the *decoded* value: PostgreSQL keeps a patched value as
``jsonb``, which orders object keys its own way (documented in stores/_postgres_sql.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessionkeeper import Store
from sessionkeeper.core import codec
from sessionkeeper.core.patch import MISSING, apply_patch, apply_patch_text, is_object
from sessionkeeper.core.records import (
    Apply,
    Create,
    Delta,
    Load,
    PatchAppend,
    PatchDelete,
    PatchOp,
    PatchSet,
    Record,
    Rename,
)

from .conftest import Runner
from .test_conformance import NOW, key, meta

_counter = itertools.count()


def fresh(fields: dict[str, Any]) -> tuple[str, Record]:
    """A new key (hypothesis reuses one store across examples) and its record."""
    return key(f"patch-{next(_counter)}"), Record({k: codec.encode(k, v) for k, v in fields.items()}, meta())


def load(run: Runner, k: str) -> dict[str, Any]:
    got = run(Load(k, NOW))
    assert got is not None
    return {name: codec.decode(text) for name, text in got.fields.items()}


def S(path: tuple[str, ...], value: Any) -> PatchSet:
    return PatchSet(path, codec.encode("x", value))


def A(path: tuple[str, ...], *items: Any) -> PatchAppend:
    return PatchAppend(path, codec.encode("x", list(items)))


def patch(run: Runner, k: str, **ops: tuple[PatchOp, ...]) -> bool:
    return bool(run(Apply(k, Delta(patch=ops), NOW)))


# ---- the reference itself ---------------------------------------------------------------


def test_reference_rules() -> None:
    tree = {"a": {"b": 1}, "l": [1], "s": "x"}
    out = apply_patch(tree, [
        S(("a", "c"), 2),            # M2: a new entry goes after the others
        S(("a", "b"), 3),            # M2: an existing one keeps its place
        PatchDelete(("zz", "q")),    # M3: nothing to delete, nothing created
        A(("l",), 2, 3),             # M4
        S(("s", "k"), 1),            # M5: a leaf on the way becomes an object
        A(("n", "m"), "x"),          # M5: missing parents and target are created
        A(("a",), 9),                # M5: an append to a non-array replaces it
    ])
    assert out == {"a": [9], "l": [1, 2, 3], "s": {"k": 1}, "n": {"m": ["x"]}}
    assert list(apply_patch({"a": {"b": 1, "c": 2}}, [S(("a", "b"), 5)])["a"]) == ["b", "c"]
    assert apply_patch(MISSING, [PatchDelete(("a",))]) is MISSING
    assert apply_patch(MISSING, [A((), 1)]) == [1]
    tagged = '{"d":{"__sk":"dt","v":"2026-01-01T00:00:00"}}'
    assert apply_patch_text(tagged, [S(("d", "x"), 1)]) == '{"d":{"x":1}}'
    assert not is_object({"__sk": "t", "v": []})


# ---- every store ------------------------------------------------------------------------


def test_each_op_kind(run: Runner) -> None:
    k, r = fresh({"cart": {"a": 1, "b": {"c": 2}}, "list": [1, "two"], "other": 7})
    run(Create(k, r))
    assert patch(run, k, cart=(S(("b", "d"), [1, None]), PatchDelete(("a",)), S(("e",), {"f": {}})),
                 list=(A((), [], {}, 3.5),))
    assert load(run, k) == {"cart": {"b": {"c": 2, "d": [1, None]}, "e": {"f": {}}},
                            "list": [1, "two", [], {}, 3.5], "other": 7}


def test_patch_with_set_and_delete_and_meta_in_one_apply(run: Runner) -> None:
    k, r = fresh({"cart": {"a": 1}, "gone": 1})
    run(Create(k, r))
    m = meta(now=NOW + 5)
    delta = Delta(set={"n": "1"}, delete=frozenset({"gone"}), meta=m, patch={"cart": (S(("b",), 2),)})
    assert run(Apply(k, delta, NOW))
    got = run(Load(k, NOW))
    assert got.meta == m
    assert {n: codec.decode(t) for n, t in got.fields.items()} == {"cart": {"a": 1, "b": 2}, "n": 1}


def test_missing_field_and_parents_are_created_and_delete_is_a_noop(run: Runner) -> None:
    k, r = fresh({"keep": 1})
    run(Create(k, r))
    assert patch(run, k, cart=(S(("x", "y"), 1),), items=(A((), "i1"),), never=(PatchDelete(("a", "b")),))
    assert load(run, k) == {"keep": 1, "cart": {"x": {"y": 1}}, "items": ["i1"]}


def test_replaced_parents_and_non_arrays_follow_m5(run: Runner) -> None:
    k, r = fresh({"v": {"leaf": 5, "arr": [1], "obj": {"q": 1}, "t": (1, 2), "d": dt.date(2026, 1, 1)}})
    run(Create(k, r))
    assert patch(run, k, v=(
        S(("leaf", "x"), 1), S(("arr", "x"), 2), A(("obj",), 3), A(("t",), 4),
        PatchDelete(("d", "v")),  # a tagged value is a leaf: nothing is removed inside it
    ))
    assert load(run, k) == {"v": {"leaf": {"x": 1}, "arr": {"x": 2}, "obj": [3], "t": [4],
                                  "d": dt.date(2026, 1, 1)}}


HOSTILE = ['a"b', "a.b", "$", "$.x", "[0]", "a[#]", "x\x00y", "\x01", "\\", '\\"', "ünï\u2603😀",
           "", " ", "{}", "'", "--", "a/b", "~1", "\u2028", "__sk_not", "v"]


def test_hostile_keys_in_paths(run: Runner) -> None:
    k, r = fresh({h: {h: {h: [h]}} for h in HOSTILE})
    run(Create(k, r))
    ops = {h: (S((h, h + "!"), h), S((h + "?", h), [h]), A((h, h), h), PatchDelete((h, "$")))
           for h in HOSTILE}
    assert run(Apply(k, Delta(patch=ops), NOW))
    expect = {h: codec.from_json_tree(apply_patch({h: {h: [h]}}, ops[h])) for h in HOSTILE}
    assert expect["a.b"] == {"a.b": {"a.b": [h := "a.b", h], h + "!": h}, h + "?": {h: [h]}}
    assert "$" not in expect["$"]["$"]  # the delete reached its entry
    assert load(run, k) == expect


def test_deep_nesting(run: Runner) -> None:
    depth = 40
    path = tuple(f"n{i}" for i in range(depth))
    k, r = fresh({"deep": {}})
    run(Create(k, r))
    assert patch(run, k, deep=(S(path, 1), A((*path[:-1], "list"), 1, 2), S(path[:5], "cut")))
    assert patch(run, k, deep=(S(path, 2),))
    expect = apply_patch({}, [S(path, 1), A((*path[:-1], "list"), 1, 2), S(path[:5], "cut"), S(path, 2)])
    assert load(run, k) == {"deep": expect}


CODEC_VALUES: list[Any] = [
    dt.datetime(2026, 11, 27, 11, 10, 0, 123456, tzinfo=dt.timezone.utc), dt.date(2026, 1, 2),
    Decimal("1.10"), Decimal("-1E+400"), b"\x00\xffbytes", (1, (2, "t")), uuid.UUID(int=7),
    float("inf"), {"__sk": "a dict holding the marker"}, 2**80, -(2**70), 1.0, 0.1 + 0.2, 1e-7,
    "\x00", "\u0001x", 'q"\\', [], {}, [[]], [{}],
]


def test_codec_values_inside_patched_values_round_trip(run: Runner) -> None:
    k, r = fresh({"c": {"old": list(CODEC_VALUES)}, "l": [CODEC_VALUES[0]]})
    run(Create(k, r))
    ops = tuple(S((f"k{i}",), v) for i, v in enumerate(CODEC_VALUES))
    assert patch(run, k, c=(*ops, S(("old",), list(CODEC_VALUES))), l=(A((), *CODEC_VALUES),))
    got = load(run, k)
    assert got["c"] == {"old": CODEC_VALUES, **{f"k{i}": v for i, v in enumerate(CODEC_VALUES)}}
    assert got["l"] == [CODEC_VALUES[0], *CODEC_VALUES]
    for i, v in enumerate(CODEC_VALUES):  # == ignores tuple vs list and 1 vs 1.0: types too
        assert type(got["c"][f"k{i}"]) is type(v)
        assert type(got["l"][i + 1]) is type(v)


def test_key_order_kept_on_patch(run: Runner) -> None:
    """M2: insertion order, except on PostgreSQL, where a patched value comes back in jsonb's
    order (shorter keys first; documented in stores/_postgres_sql.py)."""
    k, r = fresh({"c": {"zz": 1, "a": 2, "mm": 3}})
    run(Create(k, r))
    assert patch(run, k, c=(S(("a",), 5), S(("b",), 6)))
    expect = ["a", "b", "mm", "zz"] if run.store.name == "postgresql" else ["zz", "a", "mm", "b"]
    assert list(load(run, k)["c"]) == expect


def test_patch_on_missing_or_expired_session_writes_nothing(run: Runner) -> None:
    assert not patch(run, key("nobody"), c=(S(("a",), 1),))
    assert run(Load(key("nobody"), NOW)) is None
    k, r = fresh({"c": {}})
    run(Create(k, r))
    assert not run(Apply(k, Delta(patch={"c": (S(("a",), 1),)}), NOW + 10**6))


def test_rename_carries_the_patch(run: Runner) -> None:
    k, r = fresh({"c": {"a": 1}})
    run(Create(k, r))
    k2 = key(f"renamed-{next(_counter)}")
    assert run(Rename(k, k2, Delta(patch={"c": (S(("b",), 2),), "n": (A((), 1),)}, meta=meta()), NOW))
    assert load(run, k2) == {"c": {"a": 1, "b": 2}, "n": [1]}


def _concurrently(run: Runner, k: str, deltas: list[Delta]) -> list[bool]:
    if run.mode == "sync":
        barrier = threading.Barrier(len(deltas))

        def one(d: Delta) -> bool:
            barrier.wait()
            return bool(run(Apply(k, d, NOW)))

        with ThreadPoolExecutor(len(deltas)) as pool:
            return list(pool.map(one, deltas))

    async def all_() -> list[bool]:
        return list(await asyncio.gather(*(run.store.aexecute(Apply(k, d, NOW)) for d in deltas)))

    return list(run.await_(all_()))


def test_concurrent_patches_to_one_value_all_survive(run: Runner) -> None:
    """50 requests that loaded the same snapshot each add their item: every item survives,
    in the dict (naive cart) and in the list (append cart), created by the first of them."""
    k, r = fresh({"counter": 1})
    run(Create(k, r))
    n = 50
    deltas = [Delta(patch={"cart": (S((f"i{i}",), 1),), "items": (A((), f"i{i}"),),
                           "deep": (S(("a", "b", f"i{i}"), i), PatchDelete(("a", "gone")))})
              for i in range(n)]
    assert all(_concurrently(run, k, deltas))
    got = load(run, k)
    assert got["cart"] == {f"i{i}": 1 for i in range(n)}
    assert sorted(got["items"]) == sorted(f"i{i}" for i in range(n))
    assert got["deep"] == {"a": {"b": {f"i{i}": i for i in range(n)}}}


# ---- random values, random edit scripts, N requests from one snapshot ------------------

KEYS = st.sampled_from(["a", "b", "c", 'q"', "d.e", "$", "[0]", "ü", "x\x00"])
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=5),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15),
    st.sampled_from([dt.date(2026, 1, 1), Decimal("0.10"), b"\x00", (1, "t")]),
)
VALUES = st.recursive(LEAVES, lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                     st.dictionaries(KEYS, kids, max_size=3)),
                      max_leaves=12)


def _paths(tree: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every (path, node) of the objects and arrays a patch may reach in ``tree``."""
    out = [(prefix, tree)]
    if is_object(tree):
        for k, v in tree.items():
            out += _paths(v, (*prefix, k))
    return out


@st.composite
def edit_script(draw: st.DrawFn, snapshot: Any) -> tuple[PatchOp, ...]:
    """A request's patch, computed against ``snapshot`` (a field's JSON tree) as core/diff.py
    would: sets and deletes of object entries, appends to arrays."""
    ops: list[PatchOp] = []
    places = _paths(snapshot)
    for _ in range(draw(st.integers(1, 4))):
        path, node = draw(st.sampled_from(places))
        if type(node) is list and path:
            ops.append(PatchAppend(path, codec.encode("x", draw(st.lists(VALUES, max_size=2)))))
        elif is_object(node):
            if node and draw(st.booleans()):
                ops.append(PatchDelete((*path, draw(st.sampled_from(sorted(node))))))
            else:
                ops.append(PatchSet((*path, draw(KEYS)), codec.encode("x", draw(VALUES))))
    return tuple(ops)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_edit_scripts_match_the_reference(run: Runner, data: st.DataObject) -> None:
    """N requests edit one snapshot; their patches commit in some order; the store holds what
    ``apply_patch`` predicts for that order (M6)."""
    snapshot = data.draw(st.dictionaries(KEYS, VALUES, min_size=1, max_size=4))
    tree = codec.to_json_tree(snapshot)
    scripts = [data.draw(edit_script(tree)) for _ in range(data.draw(st.integers(1, 4)))]
    order = data.draw(st.permutations(range(len(scripts))))
    k, r = fresh({"f": snapshot})
    run(Create(k, r))
    expect = codec.to_json_tree(snapshot)
    for i in order:
        assert patch(run, k, f=scripts[i])
        expect = apply_patch(expect, scripts[i])
    got = run(Load(k, NOW)).fields["f"]
    assert codec.decode(got) == codec.from_json_tree(expect)
    if run.store.name != "postgresql":
        assert got == codec.encode("f", codec.from_json_tree(expect))  # byte for byte, key order too


def test_thousand_concurrent_requests_on_one_session(store: Store) -> None:
    """1,000 requests in flight at once on one session (async face), each adding its own
    entry to one dict and its own item to one list, from the same snapshot: all 1,000 of
    each are there afterwards (issue 12: Redis and PostgreSQL, and every other store)."""
    run = Runner(store, "async")
    try:
        k, r = fresh({"counter": 1})
        run(Create(k, r))
        n = 1000

        async def all_() -> list[bool]:
            sem = asyncio.Semaphore(200)  # bounded: a pool queues the rest anyway

            async def one(i: int) -> bool:
                async with sem:
                    d = Delta(patch={"cart": (S((f"i{i}",), 1),), "items": (A((), i),)})
                    return bool(await store.aexecute(Apply(k, d, NOW)))

            return list(await asyncio.gather(*(one(i) for i in range(n))))

        assert all(run.await_(all_()))
        got = load(run, k)
        assert got["cart"] == {f"i{i}": 1 for i in range(n)}
        assert sorted(got["items"]) == list(range(n))
    finally:
        run.close()
