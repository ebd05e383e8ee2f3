"""Safe encoding: JSON with tagged extras, never pickle (issue 2, behaviour 10)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionkeeper import SessionEncodeError
from sessionkeeper.core import codec

UTC = dt.timezone.utc
PLUS2 = dt.timezone(dt.timedelta(hours=2))


def same(a: Any, b: Any) -> bool:
    """Equal, with equal types all the way down (so True != 1, (1,) != [1]), nan == nan."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, Decimal) and a.is_nan():
        return str(a) == str(b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, dt.datetime):
        # Same wall time and same offset: the same instant, written the same way. (Plain ==
        # is False across zones for a time in a DST gap or fold, by PEP 495.)
        return a.replace(tzinfo=None) == b.replace(tzinfo=None) and a.utcoffset() == b.utcoffset()
    return bool(a == b)


def round_trip(value: Any) -> Any:
    text = codec.encode("k", value)
    json.loads(text)  # always plain JSON
    return codec.decode(text)


VALUES = [
    "", "text", "ünïcødé ✓ 🎉", "\x00", 0, -1, 2**80, 1.5, -0.0, math.inf, -math.inf, math.nan,
    True, False, None, [], [1, "a", None], {}, {"a": 1, "b": [True, {"c": None}]},
    dt.datetime(2026, 11, 27, 11, 10, 0, 123456, tzinfo=UTC),
    dt.datetime(2026, 11, 27, 11, 10, tzinfo=PLUS2),
    dt.datetime(2026, 11, 27, 11, 10),  # naive stays naive
    dt.date(2026, 11, 27), uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Decimal("1.10"), Decimal("-0"), Decimal("1E+400"), Decimal("NaN"),
    b"", b"\x00\xffbytes", (), (1, 2), (1, [2, (3,)]), [(1, b"x")],
    {"__sk": "dt", "v": "2026-01-01"},  # a user dict that looks like a tag stays a dict
    {"__sk": 1}, {"outer": {"__sk": {"__sk": "map"}}}, {"v": 1, "__sk": "t"},
    {"nested": [{"d": dt.date(2000, 1, 1)}, (Decimal("2"), uuid.UUID(int=0))]},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_round_trip(value: Any) -> None:
    assert same(round_trip(value), value)


def test_same_is_strict() -> None:
    # The comparison above must be able to fail, or the round trips prove nothing.
    assert not same(True, 1)
    assert not same((1,), [1])
    assert not same(dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 1, 1))
    assert not same({"a": 1}, {"a": 1.0})


def test_zone_transitions_keep_their_instant() -> None:
    from zoneinfo import ZoneInfo

    gap = dt.datetime(1911, 7, 1, 0, 0, tzinfo=ZoneInfo("Africa/Djibouti"))  # found by hypothesis
    fold = dt.datetime(2025, 10, 26, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Berlin"))
    for value in (gap, fold):
        decoded = round_trip(value)
        assert decoded.timestamp() == value.timestamp()
        assert same(decoded, value)


def test_naive_and_aware_datetimes_keep_their_kind() -> None:
    assert round_trip(dt.datetime(2026, 1, 1)).tzinfo is None
    assert round_trip(dt.datetime(2026, 1, 1, tzinfo=PLUS2)).utcoffset() == dt.timedelta(hours=2)
    assert type(round_trip(dt.date(2026, 1, 1))) is dt.date


def test_encoding_is_compact_json_and_not_pickle() -> None:
    assert codec.encode("k", {"a": [1, 2]}) == '{"a":[1,2]}'
    assert codec.encode("k", "é") == '"é"'


class Thing:
    pass


class MyFloat(float):
    pass


@pytest.mark.parametrize(
    ("value", "mentions"),
    [
        ({1, 2}, "builtins.set"),
        (Thing(), "Thing"),
        (MyFloat(1.0), "MyFloat"),
        ({1: "a"}, "dict key 1"),
        ({"ok": [{(1, 2): 3}]}, "tuple"),
        (frozenset(), "frozenset"),
        (dt.time(12, 0), "time"),
        (bytearray(b"x"), "bytearray"),
        ("lone \ud800 surrogate", "surrogate"),
        ({"k\udfff": 1}, "surrogate"),
    ],
)
def test_unsupported_values_name_key_and_type(value: Any, mentions: str) -> None:
    with pytest.raises(SessionEncodeError) as info:
        codec.encode("cart", value)
    assert info.value.key == "cart"
    assert "'cart'" in str(info.value)
    assert mentions in str(info.value)


def test_self_reference_is_an_encode_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SessionEncodeError, match="nests too deeply"):
        codec.encode("loop", loop)


@pytest.mark.parametrize(
    "text",
    [
        "", "{", "nope", "[1,", '"\\ud800', "[" * 100_000,
        '{"__sk":"zz","v":"1"}', '{"__sk":"dt"}', '{"__sk":"dt","v":"2020-01-01","x":1}',
        '{"__sk":"dt","v":"not a date"}', '{"__sk":"dt","v":5}', '{"__sk":"d","v":"2020-13-01"}',
        '{"__sk":"uuid","v":"nope"}', '{"__sk":"dec","v":"abc"}', '{"__sk":"b","v":"!!!"}',
        '{"__sk":"b","v":"é"}', '{"__sk":"t","v":"abc"}', '{"__sk":"t","v":5}',
        '{"__sk":"map","v":5}', '{"__sk":"map","v":[[1,2]]}', '{"__sk":"map","v":[["a"]]}',
        '{"__sk":"f","v":"1.5"}', '{"__sk":"f","v":"x"}', '[{"__sk":"q","v":""}]',
    ],
)
def test_corrupt_input_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the contract is exactly ValueError
        codec.decode(text)


def test_encoded_size_counts_utf8_bytes() -> None:
    assert codec.encoded_size({"a": '"é"'}) == 1 + 4


# ---- property ---------------------------------------------------------------------------

SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text()
    | st.datetimes() | st.datetimes(timezones=st.timezones()) | st.dates() | st.uuids()
    | st.decimals() | st.binary()
)
TREES = st.recursive(
    SCALARS,
    lambda kids: st.lists(kids, max_size=4)
    | st.lists(kids, max_size=4).map(tuple)
    | st.dictionaries(st.text(max_size=6) | st.just("__sk") | st.just("v"), kids, max_size=4),
    max_leaves=20,
)


def _utf8(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, list | tuple):
        return all(_utf8(v) for v in value)
    if isinstance(value, dict):
        return all(_utf8(k) and _utf8(v) for k, v in value.items())
    return True


@settings(deadline=None, database=None, max_examples=300)
@given(TREES)
def test_round_trip_generated(value: Any) -> None:
    if not _utf8(value):
        with pytest.raises(SessionEncodeError):
            codec.encode("k", value)
        return
    assert same(round_trip(value), value)


@settings(deadline=None, database=None, max_examples=300)
@given(st.text(max_size=200))
def test_decode_never_raises_anything_but_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        codec.decode(text)
