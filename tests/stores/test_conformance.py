"""The store contract (see sessionkeeper/core/records.py), checked on every backend, sync and
async. A new store passes this suite before it is anything else."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from sessionkeeper.core.records import (
    Apply,
    Count,
    Create,
    Delete,
    Delta,
    ListUser,
    Load,
    Meta,
    Purge,
    Record,
    Rename,
)

from .conftest import Runner

NOW = 1_800_000_000.0


def key(n: int | str) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def meta(now: float = NOW, ttl: float = 1800, user: str | None = None, **kw: object) -> Meta:
    return Meta(created_at=now, last_seen=now, expires_at=now + ttl, absolute_at=now + 43200,
                user_id=user, **kw)  # type: ignore[arg-type]


def rec(fields: dict[str, str] | None = None, **kw: object) -> Record:
    return Record(fields if fields is not None else {"a": "1"}, meta(**kw))  # type: ignore[arg-type]


def test_load_missing_is_none(run: Runner) -> None:
    assert run(Load(key(1), NOW)) is None


def test_create_then_load_round_trips(run: Runner) -> None:
    m = Meta(created_at=NOW, last_seen=NOW + 1.5, expires_at=NOW + 1800, absolute_at=NOW + 43200,
             user_id="u-1", auth_at=NOW - 3.25, info={"ip": "203.0.113.0/24", "ua": "Firefox"})
    fields = {"a": '"x"', "n": "12", "l": "[1,2,{\"k\":null}]"}
    assert run(Create(key(1), Record(fields, m))) is True
    got = run(Load(key(1), NOW))
    assert got == Record(fields, m)


def test_create_refuses_taken_key(run: Runner) -> None:
    assert run(Create(key(1), rec({"a": "1"}))) is True
    assert run(Create(key(1), rec({"a": "2"}))) is False
    assert run(Load(key(1), NOW)).fields == {"a": "1"}


def test_apply_sets_and_deletes_only_named_fields(run: Runner) -> None:
    run(Create(key(1), rec({"a": "1", "b": "2", "c": "3"})))
    new_meta = meta(now=NOW + 10)
    delta = Delta(set={"b": "20", "d": "4"}, delete=frozenset({"c"}), meta=new_meta)
    assert run(Apply(key(1), delta, NOW + 10))
    got = run(Load(key(1), NOW + 10))
    assert got.fields == {"a": "1", "b": "20", "d": "4"}
    assert got.meta == new_meta


def test_apply_without_meta_keeps_meta(run: Runner) -> None:
    original = rec({"a": "1"}, user="u")
    run(Create(key(1), original))
    assert run(Apply(key(1), Delta(set={"a": "2"}), NOW))
    assert run(Load(key(1), NOW)).meta == original.meta


def test_meta_only_apply_is_a_touch(run: Runner) -> None:
    run(Create(key(1), rec({"a": "1"})))
    later = meta(now=NOW + 100)
    assert run(Apply(key(1), Delta(meta=later), NOW + 100))
    got = run(Load(key(1), NOW + 100))
    assert got.fields == {"a": "1"} and got.meta == later


def test_apply_to_missing_session_does_not_create_it(run: Runner) -> None:
    assert run(Apply(key(1), Delta(set={"a": "1"}, meta=meta()), NOW)) is False
    assert run(Load(key(1), NOW)) is None


def test_expired_session_is_not_loaded_nor_applied_to(run: Runner) -> None:
    run(Create(key(1), rec({"a": "1"}, ttl=60)))
    assert run(Load(key(1), NOW + 59)) is not None
    assert run(Load(key(1), NOW + 60)) is None
    assert run(Apply(key(1), Delta(set={"a": "2"}, meta=meta(now=NOW + 61)), NOW + 61)) is False
    assert run(Load(key(1), NOW + 61)) is None


def test_delete_then_apply_never_resurrects(run: Runner) -> None:
    run(Create(key(1), rec()))
    assert run(Delete(key(1))) is True
    assert run(Delete(key(1))) is False
    assert run(Apply(key(1), Delta(set={"late": "1"}, meta=meta()), NOW)) is False
    assert run(Load(key(1), NOW)) is None


def test_rename_moves_applies_and_kills_old(run: Runner) -> None:
    run(Create(key(1), rec({"a": "1", "b": "2"})))
    m2 = meta(user="alice", auth_at=NOW + 5)
    assert run(Rename(key(1), key(2), Delta(set={"c": "3"}, delete=frozenset({"b"}), meta=m2), NOW + 5))
    assert run(Load(key(1), NOW + 5)) is None
    got = run(Load(key(2), NOW + 5))
    assert got.fields == {"a": "1", "c": "3"} and got.meta == m2
    assert run(Apply(key(1), Delta(set={"x": "1"}), NOW + 6)) is False
    assert run(Load(key(1), NOW + 6)) is None


def test_rename_of_missing_or_expired_fails(run: Runner) -> None:
    assert run(Rename(key(1), key(2), Delta(meta=meta()), NOW)) is False
    run(Create(key(3), rec(ttl=10)))
    assert run(Rename(key(3), key(4), Delta(meta=meta()), NOW + 10)) is False
    assert run(Load(key(2), NOW)) is None and run(Load(key(4), NOW)) is None


def test_list_user_shows_only_live_sessions(run: Runner) -> None:
    run(Create(key(1), rec(user="alice")))
    run(Create(key(2), rec(user="alice", ttl=10)))
    run(Create(key(3), rec(user="bob")))
    run(Create(key(4), rec(user="alice")))
    run(Create(key(5), rec()))
    run(Delete(key(4)))
    got = run(ListUser("alice", NOW + 11))
    assert [k for k, _ in got] == [key(1)]
    assert got[0][1].user_id == "alice"
    assert run(ListUser("nobody", NOW)) == []


def test_list_user_follows_rename_and_login(run: Runner) -> None:
    run(Create(key(1), rec()))
    assert run(Rename(key(1), key(2), Delta(meta=meta(user="carol", auth_at=NOW)), NOW))
    assert [k for k, _ in run(ListUser("carol", NOW))] == [key(2)]
    assert run(Rename(key(2), key(3), Delta(meta=meta(user="carol", auth_at=NOW)), NOW))
    assert [k for k, _ in run(ListUser("carol", NOW))] == [key(3)]


def test_purge_and_count(run: Runner) -> None:
    for i in range(7):
        run(Create(key(i), rec(ttl=10 if i % 2 else 1000)))
    assert run(Count(NOW)) == 7
    assert run(Purge(NOW + 20, 2)) == 3  # several batches of two
    assert run(Count(NOW + 20)) == 4
    assert run(Load(key(0), NOW + 20)) is not None
    assert run(Purge(NOW + 20, 2)) == 0


@pytest.mark.parametrize("bad", ["", "../../etc/passwd", "x" * 64, key(1).upper(), key(1) + "\x00",
                                 "'; DROP TABLE sessions; --", "a" * 5000])
def test_malformed_keys_are_treated_as_missing(run: Runner, bad: str) -> None:
    assert run(Load(bad, NOW)) is None
    assert run(Apply(bad, Delta(set={"a": "1"}), NOW)) is False
    assert run(Delete(bad)) is False


def test_awkward_field_names_and_values_round_trip(run: Runner) -> None:
    fields = {
        "quote'\"": '"it\'s \\"quoted\\""',
        "nul\x00name": '"a\\u0000b"',
        "ünï ✓": '"ünï ✓ 🍪"',
        "$.path[0]": "null",
        "__meta__": "{}",
        "big": '"' + "x" * 60_000 + '"',
        "": '"empty key"',
    }
    run(Create(key(1), rec(fields)))
    assert run(Load(key(1), NOW)).fields == fields
    run(Apply(key(1), Delta(set={"nul\x00name": '"c"'}, delete=frozenset({"$.path[0]"})), NOW))
    got = run(Load(key(1), NOW)).fields
    assert got["nul\x00name"] == '"c"' and "$.path[0]" not in got and got["big"] == fields["big"]


def test_concurrent_applies_to_different_fields_all_survive(run: Runner) -> None:
    run(Create(key(1), rec({})))
    n = 50
    if run.mode == "sync":
        barrier = threading.Barrier(n)

        def one(i: int) -> bool:
            barrier.wait()
            return bool(run(Apply(key(1), Delta(set={f"k{i}": str(i)}, meta=meta(now=NOW + i)), NOW)))

        with ThreadPoolExecutor(n) as pool:
            results = list(pool.map(one, range(n)))
    else:
        import asyncio

        async def all_() -> list[bool]:
            return list(await asyncio.gather(*(
                run.store.aexecute(Apply(key(1), Delta(set={f"k{i}": str(i)}), NOW)) for i in range(n)
            )))

        results = run.await_(all_())
    assert all(results)
    assert run(Load(key(1), NOW)).fields == {f"k{i}": str(i) for i in range(n)}


def test_delete_racing_applies_never_resurrects(run: Runner) -> None:
    for round_ in range(5):
        k = key(f"race{round_}")
        run(Create(k, rec({"a": "1"})))
        barrier = threading.Barrier(9)

        def writer(i: int, k: str = k, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            run(Apply(k, Delta(set={f"w{i}": "1"}, meta=meta()), NOW))

        def deleter(k: str = k, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            run(Delete(k))

        with ThreadPoolExecutor(9) as pool:
            futures = [pool.submit(writer, i) for i in range(8)] + [pool.submit(deleter)]
            for f in futures:
                f.result()
        assert run(Load(k, NOW)) is None


def test_rename_onto_a_taken_key_changes_nothing(run: Runner) -> None:
    run(Create(key(1), rec({"a": "1"})))
    run(Create(key(2), rec({"b": "2"})))
    assert run(Rename(key(1), key(2), Delta(set={"c": "3"}, meta=meta()), NOW)) is False
    assert run(Load(key(1), NOW)).fields == {"a": "1"}
    assert run(Load(key(2), NOW)).fields == {"b": "2"}
