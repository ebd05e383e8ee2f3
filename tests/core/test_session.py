"""The Session mapping: change tracking, size limit, lifecycle intents (behaviours 3, 4, 9, 10)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

import pytest

from sessionkeeper import SessionEncodeError, SessionTooLarge
from sessionkeeper.core import codec
from sessionkeeper.core.records import Meta, PatchAppend, PatchDelete, PatchSet, Record
from sessionkeeper.core.session import Session

from .conftest import T0, FakeClock
from .test_diff import reference_apply


def record(user_id: str | None = "u1", **values: object) -> Record:
    meta = Meta(created_at=T0 - 100, last_seen=T0 - 10, expires_at=T0 + 1790, absolute_at=T0 + 43100,
                user_id=user_id, auth_at=None if user_id is None else T0 - 100)
    return Record({k: codec.encode(k, v) for k, v in values.items()}, meta)


def session(rec: Record | None = None, max_size: int = 64 * 1024) -> Session:
    return Session(clock=FakeClock(), max_size=max_size, record=rec)


def test_reads_do_not_write() -> None:
    s = session(record(a=1, b=[1, 2], c={"x": "y"}, d="text"))
    assert dict(s) == {"a": 1, "b": [1, 2], "c": {"x": "y"}, "d": "text"}
    assert s.get("missing") is None and "a" in s and len(s) == 4
    assert s.delta().set == {} and s.delta().delete == frozenset()
    assert not s.modified
    assert s.accessed


def test_lazy_loader_runs_on_first_use_only() -> None:
    calls = []

    def load() -> Record | None:
        calls.append(1)
        return record(a=1)

    s = Session(clock=FakeClock(), max_size=1000, loader=load)
    assert not s.loaded and not s.accessed and not s.modified
    repr(s)  # must not load
    assert calls == []
    assert s["a"] == 1 and s.get("a") == 1
    assert calls == [1] and s.loaded and s.accessed


def test_fresh_session_is_not_accessed_until_used() -> None:
    s = session(record(a=1))
    assert not s.accessed
    s.regenerate()
    assert s.accessed


@pytest.mark.parametrize("value", [1, "x", [1, {"a": 2}], {"k": (1, 2)}, 1.0])
def test_assigning_the_stored_value_is_not_a_change(value: object) -> None:
    s = session(record(a=value))
    s["a"] = value
    assert s.delta().set == {}
    assert not s.modified


def test_assignment_is_a_change_of_that_key_only() -> None:
    s = session(record(a=1, b=2))
    s["a"] = 10
    s["new"] = "n"
    d = s.delta()
    assert d.set == {"a": "10", "new": '"n"'} and d.delete == frozenset()
    assert s.modified


def test_int_and_float_and_bool_are_different_values() -> None:
    s = session(record(a=1))
    s["a"] = True
    assert s.delta().set == {"a": "true"}


def saved(rec: Record | None, s: Session) -> dict[str, object]:
    """What the store holds once ``s.delta()`` is applied to ``rec`` (decoded)."""
    d = s.delta()
    fields: dict[str, Any] = {} if rec is None else {k: json.loads(v) for k, v in rec.fields.items()}
    for k in d.delete:
        fields.pop(k, None)
    for k, v in d.set.items():
        fields[k] = json.loads(v)
    for k, ops in d.patch.items():
        fields[k] = reference_apply(fields.get(k, {}), ops)
    return {k: codec.from_json_tree(v) for k, v in fields.items()}


# Issue 12: in-place changes of a loaded dict/list are saved as nested patches (this test
# expected a whole-value ``set`` before; the stored result is the same, the write is smaller).
@pytest.mark.parametrize(
    ("mutate", "expected", "patched"),
    [
        (lambda s: s["cart"].append(3), [1, 2, 3], (PatchAppend((), "[3]"),)),
        (lambda s: s["prefs"]["theme"].__setitem__("dark", True), {"theme": {"dark": True}},
         (PatchSet(("theme", "dark"), "true"),)),
        (lambda s: s["pair"][1].append("x"), (0, ["x"]), None),  # a tuple: replaced whole
    ],
)
def test_nested_mutation_is_detected(mutate: object, expected: object, patched: object) -> None:
    rec = record(cart=[1, 2], prefs={"theme": {}}, pair=(0, []))
    s = session(rec)
    mutate(s)  # type: ignore[operator]
    d = s.delta()
    assert len(d.set) + len(d.patch) == 1
    ((key, text),) = {**d.set, **{k: "" for k in d.patch}}.items()
    if patched is None:
        assert codec.decode(text) == expected and not d.patch
    else:
        assert d.patch == {key: patched} and not d.set
    assert saved(rec, s)[key] == expected
    assert s.modified


def test_mutation_after_assignment_is_saved() -> None:
    s = session()
    items: list[int] = []
    s["items"] = items
    items.append(1)
    # a new key: merged into what a concurrent request may have created meanwhile (issue 12)
    assert s.delta().patch == {"items": (PatchAppend((), "[1]"),)}
    assert s.encoded() == {"items": "[1]"}  # a new session is created whole


def test_delete_and_readd() -> None:
    s = session(record(a=1, b=2))
    del s["a"]
    assert s.delta().delete == {"a"}
    s["a"] = 1  # back to the stored value: nothing to write
    assert s.delta().set == {} and s.delta().delete == frozenset()
    with pytest.raises(KeyError):
        del s["nope"]
    assert s.pop("b") == 2 and s.delta().delete == {"b"}


def test_clear_deletes_only_the_keys_seen() -> None:
    # An anonymous session: clear() empties it and keeps it (a signed-in one is logged out,
    # see tests/core/test_remember.py and tests/security/test_v7_logout.py).
    s = session(record(None, a=1, b=2))
    s["c"] = 3
    s.clear()
    assert len(s) == 0
    d = s.delta()
    assert d.delete == {"a", "b"} and d.set == {}


def test_unsupported_value_fails_at_assignment_naming_key() -> None:
    s = session()
    with pytest.raises(SessionEncodeError, match=r"'basket'.*set"):
        s["basket"] = {1, 2}
    assert "basket" not in s


def test_unsupported_value_added_in_place_fails_at_save() -> None:
    s = session(record(cart=[]))
    s["cart"].append(object())
    with pytest.raises(SessionEncodeError, match="'cart'"):
        s.delta()
    assert s.modified  # it did change, into something that cannot be saved


def test_keys_must_be_valid_strings() -> None:
    s = session()
    with pytest.raises(TypeError):
        s[1] = "x"  # type: ignore[index]
    with pytest.raises(SessionEncodeError, match="surrogate"):
        s["bad\ud800"] = 1
    assert len(s) == 0


def test_too_large_at_assignment_names_the_limit() -> None:
    s = session(max_size=100)
    s["small"] = "x"
    with pytest.raises(SessionTooLarge, match="100 bytes") as info:
        s["big"] = "x" * 200
    assert info.value.limit == 100 and info.value.size > 100
    assert "max_size" in str(info.value)
    assert "big" not in s and s.delta().set == {"small": '"x"'}


def test_overwriting_a_key_does_not_count_twice() -> None:
    s = session(max_size=100)
    for _ in range(10):
        s["a"] = "x" * 60  # ~65 bytes each time; the sum would pass the limit
    s["a"] = "y" * 60
    del s["a"]
    s["b"] = "z" * 80


def test_loaded_values_count_and_deleting_frees_room() -> None:
    s = session(record(a="x" * 60), max_size=100)
    with pytest.raises(SessionTooLarge):
        s["b"] = "y" * 40
    del s["a"]
    s["b"] = "y" * 40
    s["a"] = "x" * 40  # under the limit again only if a's old size was released


def test_too_large_at_save_after_nested_growth() -> None:
    s = session(record(log=[]), max_size=100)
    s["log"].extend(["entry"] * 30)
    with pytest.raises(SessionTooLarge, match="100 bytes"):
        s.delta()


def test_corrupt_stored_value_reads_as_missing_and_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    rec = Record({"good": "1", "bad": '{"__sk":"dt","v":"garbage"}'}, record().meta)
    s = session(rec, max_size=20)
    with caplog.at_level(logging.WARNING, logger="sessionkeeper"):
        assert s.get("bad") is None
    assert "bad" in caplog.text
    assert s.delta().delete == {"bad"}
    s["x"] = "abcdefgh"  # the dropped value no longer counts against the limit


def test_modified_flag_is_accepted_and_ignored() -> None:
    s = session(record(a=1))
    s.modified = True
    assert not s.modified
    s["a"] = 2
    s.modified = False
    assert s.modified  # cannot hide a change


def test_facts_come_from_the_record() -> None:
    s = session(record(a=1))
    assert s.user_id == "u1"
    assert s.created_at == datetime.fromtimestamp(T0 - 100, tz=timezone.utc)
    assert s.last_seen == datetime.fromtimestamp(T0 - 10, tz=timezone.utc)
    assert s.expires_at == datetime.fromtimestamp(T0 + 1790, tz=timezone.utc)
    assert s.auth_at == datetime.fromtimestamp(T0 - 100, tz=timezone.utc)
    assert not s.is_new
    new = session()
    assert (new.user_id, new.created_at, new.last_seen, new.expires_at, new.auth_at) == (None,) * 5
    assert new.is_new


def test_login_records_intent() -> None:
    clock = FakeClock(T0 + 5)
    s = Session(clock=clock, max_size=1000, record=record(a=1))
    s.login(42)
    assert s.rotate and s.user_id == "42"
    assert s.auth_at == datetime.fromtimestamp(T0 + 5, tz=timezone.utc)


def test_destroy_drops_everything_and_later_writes_start_over() -> None:
    s = session(record(a=1))
    s.login("u2")
    s.destroy()
    assert s.destroyed and not s.rotate and s.user_id is None and len(s) == 0 and s.is_new
    s["fresh"] = 1
    assert s.encoded() == {"fresh": "1"}


def test_logout_is_destroy() -> None:
    s = session(record(a=1))
    s.logout()
    assert s.destroyed and len(s) == 0


# ---- issue 12: patched or replaced (the rule in core/session.py's header) --------------------


def test_naive_cart_reassigning_the_loaded_dict_is_patched() -> None:
    rec = record(cart={"i0": 1})
    s = session(rec)
    cart = s.get("cart", {})
    cart["i1"] = 1
    s["cart"] = cart
    assert s.delta().patch == {"cart": (PatchSet(("i1",), "1"),)} and s.delta().set == {}
    assert saved(rec, s)["cart"] == {"i0": 1, "i1": 1}


def test_naive_cart_on_a_missing_key_is_patched_so_first_writers_merge() -> None:
    rec = record(other=1)
    s = session(rec)
    cart = s.get("cart", {})
    cart["i7"] = 1
    s["cart"] = cart
    assert s.delta().patch == {"cart": (PatchSet(("i7",), "1"),)}
    s2 = session(rec)
    s2.setdefault("log", []).append("x")
    assert s2.delta().patch == {"log": (PatchAppend((), '["x"]'),)}


def test_an_empty_container_on_a_new_key_is_written_whole() -> None:
    s = session(record())
    s["cart"] = {}
    s["log"] = []
    assert s.delta().set == {"cart": "{}", "log": "[]"} and not s.delta().patch


def test_a_fresh_object_on_a_stored_key_replaces_it() -> None:
    rec = record(cart={"i0": 1, "i1": 1})
    s = session(rec)
    s["cart"] = {"i0": 1, "i2": 1}  # not the loaded object: replaced whole
    assert s.delta().set == {"cart": '{"i0":1,"i2":1}'} and not s.delta().patch
    s2 = session(rec)
    s2["cart"] = {}  # emptying a cart: replaced, concurrent additions do not survive it
    assert s2.delta().set == {"cart": "{}"}


def test_replace_writes_whole_even_the_loaded_object() -> None:
    rec = record(cart={"i0": 1})
    s = session(rec)
    cart = s["cart"]
    cart["i1"] = 2
    s.replace("cart", cart)
    assert s.delta().set == {"cart": '{"i0":1,"i1":2}'} and not s.delta().patch
    s.replace("new", [1])
    assert s.delta().set["new"] == "[1]"


def test_in_place_removal_and_list_shrink() -> None:
    rec = record(cart={"i0": 1, "i1": 1}, log=[1, 2, 3], deep={"a": {"b": [1]}})
    s = session(rec)
    del s["cart"]["i0"]
    s["log"].pop()
    s["deep"]["a"]["b"].insert(0, 0)
    d = s.delta()
    assert d.patch == {"cart": (PatchDelete(("i0",)),), "deep": (PatchSet(("a", "b"), "[0,1]"),)}
    assert d.set == {"log": "[1,2]"}
    assert saved(rec, s) == {"cart": {"i1": 1}, "log": [1, 2], "deep": {"a": {"b": [0, 1]}}}


def test_reordering_a_dict_in_place_writes_nothing() -> None:
    s = session(record(d={"a": 1, "b": 2}))
    d = s["d"]
    d["a"] = d.pop("a")  # now {"b": 2, "a": 1}: the same JSON object
    assert not s.delta().touches_fields


def test_size_limit_holds_for_patched_values() -> None:
    s = session(record(cart={}), max_size=100)
    s["cart"].update({f"item{i}": 1 for i in range(20)})
    with pytest.raises(SessionTooLarge):
        s.delta()
