"""Issue 15: the session is a ``dict`` for everything a dict offers, lazy loading included.

CPython's C fast paths read a dict subclass's storage directly in places; each one is proved
here on a session that is still unloaded (its storage not yet filled) and on one loaded but
with values not yet decoded (stored text in the storage):
- ``json``'s C encoder writes ``{}`` for a dict whose storage is empty without calling
  ``items()`` (an unloaded session keeps one placeholder entry so it asks), else it calls
  ``items()``;
- ``dict(s)``, ``{**s}``, ``d.update(s)``, ``f(**s)`` and ``{} | s`` use ``dict_merge``,
  which copies the storage unless the type overrides ``__iter__`` (it then calls ``keys()``
  and ``__getitem__``);
- ``==``/``!=``, ``s | d``, ``s.copy()``, ``dict.get`` and the views read the storage: all
  overridden.
"""

from __future__ import annotations

import copy
import json
import logging
import operator
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from sessionkeeper.core import codec
from sessionkeeper.core.records import Meta, Record
from sessionkeeper.core.session import Session

from .conftest import T0, FakeClock

DATA: dict[str, Any] = {"a": 1, "cart": {"i1": 2}, "log": ["x"], "name": "é"}


def record(user_id: str | None = None, **values: Any) -> Record:
    meta = Meta(created_at=T0 - 100, last_seen=T0 - 10, expires_at=T0 + 1790, absolute_at=T0 + 43100,
                user_id=user_id, auth_at=None if user_id is None else T0 - 100)
    return Record({k: codec.encode(k, v) for k, v in values.items()}, meta)


def unloaded(values: dict[str, Any] | None = None, user_id: str | None = None) -> Session:
    """A session as a request gets it: the record is fetched on first use."""
    rec = record(user_id, **(DATA if values is None else values))
    return Session(clock=FakeClock(), max_size=64 * 1024, loader=lambda: rec)


def loaded(values: dict[str, Any] | None = None) -> Session:
    values = DATA if values is None else values
    return Session(clock=FakeClock(), max_size=64 * 1024, record=record(**values))


MAKERS = [pytest.param(unloaded, id="unloaded"), pytest.param(loaded, id="loaded-undecoded")]


@pytest.mark.parametrize("make", MAKERS)
def test_is_a_dict(make: Callable[[], Session]) -> None:
    s = make()
    assert isinstance(s, dict)
    assert not s.loaded or make is loaded


@pytest.mark.parametrize("make", MAKERS)
@pytest.mark.parametrize("indent", [None, 2])  # None: the C encoder; 2: the pure-Python one
def test_json_dumps(make: Callable[[], Session], indent: int | None) -> None:
    s = make()
    assert json.loads(json.dumps(s, indent=indent)) == DATA
    assert json.loads(json.dumps({"session": make()}, indent=indent)) == {"session": DATA}


def test_json_dumps_of_an_empty_session() -> None:
    assert json.dumps(unloaded({})) == "{}"
    assert json.dumps(Session(clock=FakeClock(), max_size=100)) == "{}"
    s = loaded()
    s.clear()
    assert json.dumps(s) == "{}"


@pytest.mark.parametrize("make", MAKERS)
@pytest.mark.parametrize(
    "copy_out",
    [
        pytest.param(dict, id="dict()"),
        pytest.param(lambda s: {**s}, id="{**s}"),
        pytest.param(lambda s: (d := {}, d.update(s))[0], id="dict.update"),
        pytest.param(lambda s: (lambda **kw: kw)(**s), id="f(**s)"),
        pytest.param(lambda s: {} | s, id="{} | s"),
        pytest.param(lambda s: s | {}, id="s | {}"),
        pytest.param(lambda s: s.copy(), id="s.copy()"),
        pytest.param(copy.copy, id="copy.copy"),
        pytest.param(copy.deepcopy, id="copy.deepcopy"),
        pytest.param(lambda s: pickle.loads(pickle.dumps(s)), id="pickle"),
        pytest.param(lambda s: dict(s.items()), id="items()"),
        pytest.param(lambda s: dict(zip(s.keys(), s.values(), strict=True)), id="keys()+values()"),
        pytest.param(lambda s: {k: s[k] for k in s}, id="iter"),
    ],
)
def test_copies_see_the_data(make: Callable[[], Session], copy_out: Callable[[Session], Any]) -> None:
    s = make()
    out = copy_out(s)
    assert type(out) is dict and out == DATA
    assert not any(type(v).__name__ == "_Raw" for v in out.values())


def test_copies_are_snapshots_not_live_sessions() -> None:
    s = loaded()
    snap = copy.deepcopy(s)
    snap["cart"]["i9"] = 1
    assert s["cart"] == {"i1": 2}
    shallow = copy.copy(s)
    shallow["new"] = 1
    assert "new" not in s and not s.modified


@pytest.mark.parametrize("make", MAKERS)
def test_equality_both_ways(make: Callable[[], Session]) -> None:
    # operator.eq(DATA, s): the plain dict on the left, so the reflected method must answer
    assert make() == DATA and operator.eq(DATA, make())
    assert operator.ne(make(), DATA) is False and operator.ne(DATA, make()) is False
    assert make() != {**DATA, "a": 2} and operator.ne({**DATA, "a": 2}, make())
    assert make() == make()  # two sessions, both lazily loaded
    assert make() != [1] and make() != "x"
    from types import MappingProxyType

    assert make() == MappingProxyType(DATA)


def test_or_operators() -> None:
    s = loaded()
    assert s | {"a": 5} == {**DATA, "a": 5}
    assert {"a": 5, "z": 0} | s == {"z": 0, **DATA}
    s |= {"b": 2}
    assert isinstance(s, Session) and s["b"] == 2 and s.delta().set == {"b": "2"}


def test_mapping_methods() -> None:
    s = loaded()
    assert s.get("a") == 1 and s.get("zz") is None and s.get("zz", 5) == 5
    assert s.setdefault("a", 9) == 1 and not s.modified  # present: not a change
    assert s.setdefault("b", 2) == 2 and s.delta().set == {"b": "2"}
    assert s.pop("b") == 2 and s.pop("zz", None) is None
    with pytest.raises(KeyError):
        s.pop("zz")
    s.update({"c": 3}, d=4)
    s.update([("e", 5)])
    assert s.popitem() == ("e", 5)  # last in, first out, as dict.popitem
    assert list(s) == ["a", "cart", "log", "name", "c", "d"]
    assert list(reversed(s)) == ["d", "c", "name", "log", "cart", "a"]
    assert len(s) == 6 and "c" in s and "zz" not in s and bool(s)
    assert Session.fromkeys(["x"], 1) == {"x": 1}


def test_popitem_on_empty_raises_keyerror() -> None:
    s = loaded({})
    with pytest.raises(KeyError):
        s.popitem()


def test_views_are_live_and_decoded() -> None:
    s = loaded()
    keys, items = s.keys(), s.items()
    s["z"] = 26
    assert "z" in keys and ("z", 26) in items and ("cart", {"i1": 2}) in items


def test_values_are_decoded_only_when_read(caplog: pytest.LogCaptureFixture) -> None:
    # A corrupt stored value is noticed (warned about and dropped) exactly when it is read.
    rec = Record({"good": "1", "bad": '{"__sk":"dt","v":"garbage"}'}, record().meta)
    s = Session(clock=FakeClock(), max_size=1000, loader=lambda: rec)
    with caplog.at_level(logging.WARNING, logger="sessionkeeper"):
        assert len(s) == 2 and "bad" in s and sorted(s.keys()) == ["bad", "good"] and s["good"] == 1
        assert "bad" not in caplog.text
        assert json.dumps(s) == '{"good": 1}'  # reading every value reads the corrupt one
    assert "bad" in caplog.text and s.delta().delete == {"bad"}


def test_in_place_change_through_any_path_is_tracked() -> None:
    s = loaded()
    for _, cart in s.items():
        if isinstance(cart, dict):
            cart["i2"] = 1
    s.values()  # no effect of its own
    assert s.delta().patch == {"cart": s.delta().patch["cart"]} and s.delta().patch["cart"]


def test_repr_shows_no_data() -> None:
    s = loaded({"secret": "hunter2"})
    assert "hunter2" not in repr(s) and "hunter2" not in str(s)
    u = unloaded({"secret": "hunter2"})
    assert repr(u) == "<Session unloaded user_id=None>" and not u.loaded


def test_clear_on_signed_in_session_logs_out_as_before() -> None:
    s = unloaded(user_id="u1")
    s.clear()
    assert s.destroyed and s == {} and json.dumps(s) == "{}"


def test_unhashable_and_no_dict_init() -> None:
    with pytest.raises(TypeError):
        hash(loaded())
    # a session is made by the request flow; the constructor takes no dict
    with pytest.raises(TypeError):
        Session({"a": 1})  # type: ignore[misc]
