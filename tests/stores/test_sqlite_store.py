"""SQLiteStore beyond the conformance suite: URLs, pragmas, single-statement writes, batched
purge, awkward field names against json_patch, processes sharing one file, no raw tokens."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import multiprocessing
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessionkeeper import (
    ConfigError,
    Session,
    SessionConfig,
    SessionFlow,
    StoreError,
    StoreUnavailable,
    open_store,
)
from sessionkeeper.core.flow import RequestInfo
from sessionkeeper.core.ids import storage_key
from sessionkeeper.core.records import Apply, Count, Create, Delta, Load, Meta, Purge, Record, Rename
from sessionkeeper.drivers import run_sync
from sessionkeeper.stores.sqlite import SCHEMA, TABLE, SQLiteStore

NOW = 1_800_000_000.0


def key(n: int | str) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def meta(ttl: float = 1800, user: str | None = None) -> Meta:
    return Meta(created_at=NOW, last_seen=NOW, expires_at=NOW + ttl, absolute_at=NOW + 43200, user_id=user)


def url_for(path: Path) -> str:
    return "sqlite:///" + quote(str(path))  # + "/abs/path" = four slashes


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "s.db"


@pytest.fixture
def store(db: Path) -> Iterator[SQLiteStore]:
    s = open_store(url_for(db))
    assert isinstance(s, SQLiteStore)
    try:
        yield s
    finally:
        s.close()


def traced(store: SQLiteStore) -> tuple[sqlite3.Connection, list[str]]:
    """The calling thread's connection, with every statement it runs recorded."""
    with store._conn() as conn:
        pass
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    return conn, statements


# ---- URLs and options --------------------------------------------------------------------


def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///rel.db") as s:
        assert isinstance(s, SQLiteStore) and s.path == str(tmp_path / "rel.db") and not s.memory
    assert (tmp_path / "rel.db").is_file()
    (tmp_path / "a dir").mkdir()
    with open_store(url_for(tmp_path / "a dir" / "x.db")) as s:  # percent-encoded space
        assert isinstance(s, SQLiteStore) and s.path == str(tmp_path / "a dir" / "x.db")
    with open_store(url_for(tmp_path / "abs.db")) as s:
        assert isinstance(s, SQLiteStore) and s.path == str(tmp_path / "abs.db")
    for memory_url in ("sqlite://", "sqlite:///:memory:"):
        with open_store(memory_url) as s:
            assert isinstance(s, SQLiteStore) and s.memory


def test_relative_path_is_fixed_when_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///rel.db") as s:
        s.execute(Create(key(1), Record({"a": "1"}, meta())))
        (tmp_path / "elsewhere").mkdir()
        monkeypatch.chdir(tmp_path / "elsewhere")
        got: list[Record | None] = []
        t = threading.Thread(target=lambda: got.append(s.load(key(1), NOW)))  # a new connection
        t.start()
        t.join()
        assert got == [Record({"a": "1"}, meta())]
    assert not (tmp_path / "elsewhere" / "rel.db").exists()


@pytest.mark.parametrize("url", ["sqlite://host/x.db", "sqlite:///", "sqlite:///some/dir/",
                                 "sqlite:///x.db?mode=ro", "sqlite:///x.db#frag", "sqlite://user@/x.db"])
def test_malformed_url_names_the_expected_form(url: str) -> None:
    with pytest.raises(ConfigError, match=r"sqlite:////absolute/path\.db"):
        open_store(url)


def test_bad_options_and_unopenable_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown SQLite store option.*busy_timeout"):
        open_store("sqlite://", timeout=3)
    with pytest.raises(ConfigError, match="busy_timeout"):
        open_store("sqlite://", busy_timeout=-1)
    # A missing directory is made, private (issue 8.7: new directories 0700 whatever the umask) ...
    old_umask = os.umask(0o277)  # would make 0500 directories and a 0400 file
    try:
        open_store(url_for(tmp_path / "missing-dir" / "deeper" / "s.db")).close()
    finally:
        os.umask(old_umask)
    for d in (tmp_path / "missing-dir", tmp_path / "missing-dir" / "deeper"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    assert stat.S_IMODE((tmp_path / "missing-dir" / "deeper" / "s.db").stat().st_mode) == 0o600
    # ... but a file where the directory should be is refused.
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigError, match="is not a directory"):
        open_store(url_for(tmp_path / "a-file" / "s.db"))


def test_pragmas_and_file_modes(store: SQLiteStore, db: Path) -> None:
    with store._conn() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert store.execute(Create(key(1), Record({"a": "1"}, meta())))
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_schema_constant_is_what_the_store_uses(tmp_path: Path) -> None:
    path = tmp_path / "migrated.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.executescript(SCHEMA)  # idempotent
    conn.close()
    with SQLiteStore(str(path), create_schema=False) as s:
        assert s.execute(Create(key(1), Record({"a": "1"}, meta())))
        assert s.load(key(1), NOW) == Record({"a": "1"}, meta())
    with SQLiteStore(str(tmp_path / "empty.db"), create_schema=False) as s, \
            pytest.raises(StoreError, match=rf"no such table: {TABLE}"):
        s.execute(Load(key(1), NOW))


# ---- writes ------------------------------------------------------------------------------


def test_apply_is_one_statement(store: SQLiteStore) -> None:
    store.execute(Create(key(1), Record({"a": "1", "b": "2"}, meta())))
    conn, statements = traced(store)
    assert store.execute(Apply(key(1), Delta(set={"a": "10"}, delete=frozenset({"b"}), meta=meta(60)), NOW))
    assert store.execute(Apply(key(1), Delta(meta=meta(70)), NOW))
    assert store.execute(Apply(key(1), Delta(set={"c": "3"}), NOW))
    conn.set_trace_callback(None)
    assert len(statements) == 3 and all(s.startswith(f"UPDATE {TABLE}") for s in statements)
    assert "json_patch" in statements[0] and "json_patch" not in statements[1]
    assert store.load(key(1), NOW) == Record({"a": "10", "c": "3"}, meta(70))


def test_rename_is_one_immediate_transaction_and_refuses_a_taken_key(store: SQLiteStore) -> None:
    store.execute(Create(key(1), Record({"a": "1"}, meta())))
    store.execute(Create(key(2), Record({"b": "2"}, meta())))
    conn, statements = traced(store)
    assert store.execute(Rename(key(1), key(2), Delta(set={"x": "1"}), NOW)) is False
    assert store.execute(Rename(key(1), key(3), Delta(set={"x": "1"}), NOW)) is True
    conn.set_trace_callback(None)
    assert statements[0] == "BEGIN IMMEDIATE" and statements[-1] == "COMMIT"
    assert statements.count("BEGIN IMMEDIATE") == 2 and not conn.in_transaction
    assert store.load(key(2), NOW) == Record({"b": "2"}, meta())  # untouched
    assert store.load(key(1), NOW) is None
    assert store.load(key(3), NOW) == Record({"a": "1", "x": "1"}, meta())


def test_purge_removes_only_expired_rows_in_several_batches(store: SQLiteStore) -> None:
    for i in range(25):
        store.execute(Create(key(i), Record({"i": str(i)}, meta(ttl=10 if i % 2 else 1000))))
    conn, statements = traced(store)
    assert store.execute(Purge(NOW + 10, 5)) == 12
    conn.set_trace_callback(None)
    assert sum(s.startswith(f"DELETE FROM {TABLE}") for s in statements) == 3  # 5 + 5 + 2
    for i in range(25):
        assert (store.load(key(i), NOW) is None) == bool(i % 2)
    assert store.count(NOW) == 13
    with pytest.raises(ConfigError):
        store.purge(NOW, 0)


def test_busy_database_is_unavailable_not_a_hang(db: Path) -> None:
    with SQLiteStore(str(db), busy_timeout=0) as s:
        s.execute(Create(key(1), Record({"a": "1"}, meta())))
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreUnavailable, match="busy"):
                s.execute(Apply(key(1), Delta(set={"a": "2"}), NOW))
            assert s.load(key(1), NOW) == Record({"a": "1"}, meta())  # readers go on in WAL
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert s.execute(Apply(key(1), Delta(set={"a": "2"}), NOW))


def test_corrupt_row_reads_as_missing(store: SQLiteStore, db: Path) -> None:
    store.execute(Create(key(1), Record({"a": "1"}, meta())))
    store.execute(Create(key(2), Record({"a": "1"}, meta())))
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE {TABLE} SET data = 'not json' WHERE key = ?", (key(1),))
        conn.execute(f"UPDATE {TABLE} SET data = '{{\"a\": 1}}' WHERE key = ?", (key(2),))
    conn.close()
    assert store.load(key(1), NOW) is None and store.load(key(2), NOW) is None


# ---- field names against json_patch ----------------------------------------------------------


def test_names_differing_only_after_a_nul_or_in_escaping_stay_apart(store: SQLiteStore, db: Path) -> None:
    names = ["a", "a\x00b", "a\x00", "\x00", "ü", "\\u00fc", "/", "\\/", "\u2028", "\x7f", "\ud800",
             "a.b", "'"]
    fields = {n: json.dumps(i) for i, n in enumerate(names)}
    assert store.execute(Create(key(1), Record(fields, meta())))
    delta = Delta(set={"ü": '"new"', "a": '"A"'}, delete=frozenset({"a\x00b"}))
    assert store.execute(Apply(key(1), delta, NOW))
    expected = {**fields, "ü": '"new"', "a": '"A"'}
    del expected["a\x00b"]
    assert store.load(key(1), NOW) == Record(expected, meta())
    with sqlite3.connect(db) as conn:
        (data,) = conn.execute(f"SELECT data FROM {TABLE}").fetchone()
    conn.close()
    assert data.isascii() and "\x00" not in data and data.count('"\\u00fc"') == 1


_names = st.text(st.characters(exclude_categories=()), max_size=6)  # NUL and surrogates too
_steps = st.lists(st.tuples(st.dictionaries(_names, _names.map(json.dumps), max_size=4),
                            st.frozensets(_names, max_size=3)), max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(initial=st.dictionaries(_names, _names.map(json.dumps), max_size=6), steps=_steps)
def test_json_patch_matches_a_dict_model(
    initial: dict[str, str], steps: list[tuple[dict[str, str], frozenset[str]]]
) -> None:
    with SQLiteStore(":memory:") as s:
        assert s.execute(Create(key(1), Record(initial, meta())))
        model = dict(initial)
        for set_, delete in steps:
            delete = delete - set_.keys()  # a Delta never names a field in both
            assert s.execute(Apply(key(1), Delta(set=set_, delete=delete), NOW))
            for k in delete:
                model.pop(k, None)
            model.update(set_)
            got = s.load(key(1), NOW)
            assert got is not None and dict(got.fields) == model


# ---- connections -------------------------------------------------------------------------


def test_close_is_idempotent_and_final(db: Path) -> None:
    for url in (url_for(db), "sqlite://"):
        s = open_store(url)
        s.close()
        s.close()
        with pytest.raises(StoreError, match="closed"):
            s.execute(Count(NOW))


def test_aclose_is_idempotent(db: Path) -> None:
    async def main() -> None:
        s = open_store(url_for(db))
        assert await s.aexecute(Count(NOW)) == 0
        await s.aclose()
        await s.aclose()
        with pytest.raises(StoreError, match="closed"):
            await s.aexecute(Count(NOW))

    asyncio.run(main())


def test_thread_connections_close_when_their_threads_end(store: SQLiteStore) -> None:
    conns: list[sqlite3.Connection] = []

    def work() -> None:
        assert store.execute(Count(NOW)) == 0
        with store._conn() as conn:
            conns.append(conn)

    for _ in range(20):
        t = threading.Thread(target=work)
        t.start()
        t.join()
    gc.collect()
    assert len(store._handles) == 1  # this thread's; the 20 workers' went with them
    assert len({id(c) for c in conns}) == 20
    for conn in conns:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")
    assert store.execute(Count(NOW)) == 0


# ---- processes ---------------------------------------------------------------------------


def _apply_fields(url: str, k: str, worker: int, n: int, barrier: threading.Barrier) -> None:
    with open_store(url) as s:
        barrier.wait(60)
        for i in range(n):
            if not s.execute(Apply(k, Delta(set={f"w{worker}-{i}": str(i)}), NOW)):
                raise SystemExit(3)


def run_processes(target: Callable[..., None], args: list[tuple[object, ...]]) -> None:
    """Run ``target`` in one spawned process per args tuple; each must exit 0."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=a) for a in args]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0] * len(procs)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()


def test_processes_applying_different_fields_all_survive(db: Path) -> None:
    workers, n = 4, 40
    url = url_for(db)
    with open_store(url) as s:
        s.execute(Create(key(1), Record({}, meta())))
    barrier = multiprocessing.get_context("spawn").Barrier(workers)
    run_processes(_apply_fields, [(url, key(1), w, n, barrier) for w in range(workers)])
    with open_store(url) as s:
        got = s.load(key(1), NOW)
    assert got is not None
    assert dict(got.fields) == {f"w{w}-{i}": str(i) for w in range(workers) for i in range(n)}


# ---- secrets -----------------------------------------------------------------------------


def test_raw_token_never_reaches_the_database_file(db: Path) -> None:
    flow = SessionFlow(SessionConfig())
    store = open_store(url_for(db))
    state = flow.begin(RequestInfo())
    session: Session = flow.open(state)
    session["user"] = "alice"
    headers = run_sync(flow.commit(state, session, 200), store)
    store.close()  # checkpoints the WAL into the main file
    (set_cookie,) = [v for k, v in headers if k == "Set-Cookie"]
    token = flow.token(set_cookie.split(";")[0])
    assert token is not None
    stored = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))
    assert token.encode() not in stored
    assert storage_key(token).encode() in stored
    assert os.path.getsize(db) > 0
