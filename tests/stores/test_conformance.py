"""The store contract (see sessionkeeper/core/records.py), checked on every backend, sync and
async. A new store passes this suite before it is anything else."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from sessionkeeper import ConfigError
from sessionkeeper.core import ids
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
    PurgeReport,
    Record,
    Rename,
    Scan,
    ScanPage,
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


# ---- Scan: every live session, page by page ----------------------------------------------


def keyed(run: Runner) -> bool:
    """Whether the store pages in key order (every store but Redis, which pages with SCAN)."""
    return run.store.name != "redis"


def alias(ttl: float = 100) -> Record:
    """A renewal alias, as core/flow.py writes it: a pointer, not a session."""
    return Record({"to": '"wrapped"'}, Meta(NOW, NOW, NOW + ttl, NOW + ttl))


def scan_all(run: Runner, now: float, limit: int, cursor: str = "") -> list[tuple[tuple[str, Meta], ...]]:
    """Every page of a whole scan, following the cursors."""
    pages: list[tuple[tuple[str, Meta], ...]] = []
    for _ in range(10_000):
        page = run(Scan(now, cursor, limit))
        assert isinstance(page, ScanPage)
        pages.append(page.sessions)
        if page.cursor == "":
            assert page.done
            return pages
        assert not page.done
        cursor = page.cursor
    raise AssertionError("the scan never ended")


def scan_pages(run: Runner, now: float, limit: int, cursor: str = "") -> list[list[str]]:
    """The keys of every page of a whole scan."""
    return [[k for k, _ in page] for page in scan_all(run, now, limit, cursor)]


def test_scan_pages_through_the_live_sessions_and_nothing_else(run: Runner) -> None:
    live: dict[str, Meta] = {}
    for i in range(23):
        m = meta(user=f"u{i % 4}" if i % 3 else None, info={"ua": f"agent {i}"} if i % 2 else {})
        assert run(Create(key(i), Record({"a": str(i)}, m)))
        live[key(i)] = m
    # Looks like an alias by its metadata, but holds more than the alias's field: a session.
    twin = Meta(NOW, NOW, NOW + 100, NOW + 100)
    assert run(Create(key("twin"), Record({"to": '"x"', "cart": "[]"}, twin)))
    live[key("twin")] = twin
    for i in range(5):
        assert run(Create(key(f"dead{i}"), rec(ttl=10, user="u1")))
    for i in range(3):
        assert run(Create(key(f"alias{i}"), alias()))  # live, but not a session
    later = NOW + 20

    pages = scan_pages(run, later, 4)
    seen = [k for page in pages for k in page]
    assert set(seen) == set(live)
    assert dict(pair for page in scan_all(run, later, 1000) for pair in page) == live  # metadata as stored
    if keyed(run):
        assert len(seen) == len(set(seen)), "a key came twice"
        assert seen == sorted(seen)
        assert all(len(page) <= 4 for page in pages)
    assert not any(scan_pages(run, NOW + 50_000, 4))  # all expired by then: none listed


def test_scan_of_an_empty_store_ends_at_once(run: Runner) -> None:
    assert [k for page in scan_pages(run, NOW, 10) for k in page] == []


def test_scan_resumes_from_its_cursor_and_misses_nothing_while_keys_are_added(run: Runner) -> None:
    old = {key(i) for i in range(40)}
    for k in old:
        assert run(Create(k, rec()))
    first = run(Scan(NOW, "", 6))
    assert first.cursor != ""
    # Meanwhile the app keeps creating sessions: each may or may not be listed, the others are.
    new = {key(f"new{i}") for i in range(25)}
    for k in new:
        assert run(Create(k, rec()))
    rest = scan_pages(run, NOW, 6, first.cursor)
    seen = [k for k, _ in first.sessions] + [k for page in rest for k in page]
    assert old <= set(seen)
    assert set(seen) <= old | new
    if keyed(run):
        assert len(seen) == len(set(seen)), "a key came twice"


BAD_CURSORS = ["not a cursor", "Z" * 64, "0:x", "-1:0", "1:2:3", "\x00", " 0:0", "0:" + "9" * 30]


def test_scan_refuses_a_cursor_it_did_not_give_with_a_clear_error(run: Runner) -> None:
    """A bad cursor (a caller's bug, or a hand-edited admin URL) is a ConfigError (a
    ValueError), never a server error, and its message does not repeat the cursor: a caller
    that mixed up its strings may have passed a token (ASVS 5.0 V7 / WSTG-SESS: tokens never
    in messages and logs)."""
    assert run(Create(key(1), rec()))
    token = ids.new_token()
    other_kind = key(1) if not keyed(run) else "0:0"  # another store kind's cursor
    for bad in [*BAD_CURSORS, token, other_kind, "99:0" if not keyed(run) else "0:12"]:
        with pytest.raises(ConfigError, match="not one this store returned") as caught:
            run(Scan(NOW, bad, 10))
        assert isinstance(caught.value, ValueError)
        assert token not in str(caught.value)
    for limit in (0, -1):
        with pytest.raises(ConfigError, match="at least 1"):
            run(Scan(NOW, "", limit))
    assert [k for page in scan_pages(run, NOW, 10) for k in page] == [key(1)]  # still fine


# ---- Purge(report=True): which sessions went ---------------------------------------------


def test_purge_report_names_each_session_removed_but_not_aliases(run: Runner) -> None:
    expired = {key(i): meta(ttl=10, user="alice" if i % 2 else None, info={"ua": "Firefox"})
               for i in range(7)}
    for k, m in expired.items():
        assert run(Create(k, Record({"a": "1"}, m)))
    assert run(Create(key("live"), rec(ttl=1000, user="alice")))
    assert run(Create(key("alias"), alias(ttl=10)))  # expired too: removed, counted, not named
    report = run(Purge(NOW + 20, 3, report=True))
    assert isinstance(report, PurgeReport)
    assert report.removed == 8
    assert dict(report.sessions) == expired
    assert len(report.sessions) == 7  # each once
    assert run(Load(key("live"), NOW + 20)) is not None
    assert run(Count(NOW)) == 1
    assert run(Purge(NOW + 20, 3, report=True)) == PurgeReport(0, ())
    assert run(Purge(NOW + 20, 3)) == 0  # the plain form still answers a number
