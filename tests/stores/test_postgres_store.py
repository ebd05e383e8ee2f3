"""PostgreSQL store specifics beyond the conformance suite: round trips on the wire, the DDL,
hostile input, outages, and several store objects (like several app processes) on one table.

Round trips are counted by a loopback proxy that parses the client's protocol messages: one
round trip is one ``Sync`` (extended protocol) or one ``Query`` (simple protocol), one
statement is one ``Execute`` or one ``Query``. The same proxy, stopped, plays a dead network.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import secrets
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg import sql

from sessionkeeper import ConfigError, StoreError, StoreUnavailable, open_store
from sessionkeeper.core.records import (
    Apply,
    Count,
    Create,
    Delete,
    Delta,
    ListUser,
    Load,
    Meta,
    Op,
    Purge,
    Record,
    Rename,
)
from sessionkeeper.stores.postgres import PostgresStore, ddl
from tests.conftest import free_port

from .backends.postgres import URL, admin, drop_table, new_table, require_postgres
from .conftest import Runner

NOW = 1_800_000_000.0
PASSWORD = "pw-" + secrets.token_hex(8)  # the test server trusts loopback, so any password works
MODES = ["sync", "async"]


@pytest.fixture(autouse=True)
def _postgres() -> None:
    require_postgres()


def key(n: int | str) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def meta(now: float = NOW, ttl: float = 1800, user: str | None = None, **kw: Any) -> Meta:
    return Meta(created_at=now, last_seen=now, expires_at=now + ttl, absolute_at=now + 43200,
                user_id=user, **kw)


def rec(fields: dict[str, str] | None = None, **kw: Any) -> Record:
    return Record({"a": "1"} if fields is None else fields, meta(**kw))


def url_for(dbname: str = "test", port: int = 5432, query: str = "") -> str:
    return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/{dbname}" + (f"?{query}" if query else "")


@contextlib.contextmanager
def running(store: PostgresStore, mode: str) -> Iterator[Runner]:
    run = Runner(store, mode)
    try:
        yield run
    finally:
        run.close()
        store.close()


@contextlib.contextmanager
def table_store(mode: str, **options: Any) -> Iterator[tuple[Runner, str]]:
    """A store on a fresh table of database ``test``, dropped afterwards."""
    table = new_table()
    store = open_store(URL, table=table, create_schema=True, max_size=2, **options)
    try:
        with running(store, mode) as run:  # type: ignore[arg-type]
            yield run, table
    finally:
        drop_table(table)


# ---- a counting, stoppable proxy --------------------------------------------------------

class PgProxy:
    """A loopback TCP proxy to the test server.

    It counts the messages the client sends, by type, and can be stopped (every connection
    cut, new ones refused) and started again on the same port.
    """

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.target = target
        self.port = free_port()
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self.start()

    def url(self, query: str = "") -> str:
        # No SSL/GSS negotiation: the proxy sees plain protocol messages.
        extra = "sslmode=disable&gssencmode=disable" + (f"&{query}" if query else "")
        return url_for(port=self.port, query=extra)

    def snapshot(self) -> collections.Counter[str]:
        with self._lock:
            return collections.Counter(self.counts)

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._stopped.clear()
        self._spawn(self._accept, listener)

    def stop(self) -> None:
        self._stopped.set()
        for t in self._threads:
            t.join(5)
        self._threads.clear()
        with self._lock:
            socks, self._socks = self._socks, set()
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _spawn(self, target: Any, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while not self._stopped.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                client.settimeout(None)
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                except OSError:
                    client.close()
                    continue
                upstream.settimeout(None)
                with self._lock:
                    self._socks |= {client, upstream}
                threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
                threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        buf = bytearray()
        started = False  # before the startup message, client messages carry no type byte
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            if count:
                buf += data
                while True:
                    if not started:
                        if len(buf) < 8:
                            break
                        size, code = int.from_bytes(buf[:4], "big"), int.from_bytes(buf[4:8], "big")
                        if len(buf) < size:
                            break
                        del buf[:size]
                        started = code >> 16 == 3  # StartupMessage (protocol 3.x), not SSLRequest
                    else:
                        if len(buf) < 5:
                            break
                        size = int.from_bytes(buf[1:5], "big")
                        if len(buf) < 1 + size:
                            break
                        with self._lock:
                            self.counts[chr(buf[0])] += 1
                        del buf[:1 + size]
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def proxy() -> Iterator[PgProxy]:
    p = PgProxy()
    try:
        yield p
    finally:
        p.stop()


def wire(before: collections.Counter[str], after: collections.Counter[str]) -> tuple[int, int]:
    """(round trips, statements) the client sent between two snapshots."""
    d = after - before
    return d["S"] + d["Q"], d["E"] + d["Q"]


# ---- round trips ------------------------------------------------------------------------

def _request_ops(i: int) -> list[tuple[str, Op, Any]]:
    """One request's worth of each operation, on fresh keys, with the expected result."""
    k, k2 = key(f"rt{i}"), key(f"rt{i}-new")
    full = Delta(set={"b": "2"}, delete=frozenset({"a"}), meta=meta(now=NOW + 1, user="u"))
    return [
        ("Create", Create(k, rec()), True),
        ("Load", Load(k, NOW), Record({"a": "1"}, meta())),
        ("Apply", Apply(k, full, NOW), True),
        ("Apply fields", Apply(k, Delta(set={"c": "3"}), NOW), True),
        ("Apply touch", Apply(k, Delta(meta=meta(now=NOW + 2, user="u")), NOW), True),
        ("Rename", Rename(k, k2, Delta(set={"d": "4"}, meta=meta(now=NOW + 3, user="u")), NOW), True),
        ("Load missing", Load(k, NOW), None),
        ("Apply missing", Apply(k, full, NOW), False),
        ("Delete", Delete(k2), True),
        ("Delete missing", Delete(k2), False),
        ("ListUser", ListUser("nobody", NOW), []),
        ("Count", Count(NOW), 0),
        ("Purge (nothing due)", Purge(NOW, 100), 0),
    ]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("prepare", [None, 5], ids=["unprepared", "prepared"])
def test_each_operation_is_one_statement_in_one_round_trip(proxy: PgProxy, mode: str,
                                                           prepare: int | None) -> None:
    table = new_table()
    store = open_store(proxy.url(), table=table, create_schema=True, min_size=1, max_size=1,
                       prepare_threshold=prepare)
    try:
        with running(store, mode) as run:  # type: ignore[arg-type]
            before = proxy.snapshot()
            assert run(Count(NOW)) == 0
            # First use: the table's look-up, the DDL (it is missing: one simple query), then
            # the operation itself. Later operations are one statement each.
            assert wire(before, proxy.snapshot()) == (3, 3)
            # psycopg prepares a statement on its 5th execution, at the cost of one extra
            # round trip that once; warm up past that so the measured calls show the steady state.
            warm_up = 6 if prepare is not None else 0
            for i in range(warm_up):
                for _name, op, _expected in _request_ops(-1 - i):
                    run(op)
            measured: dict[str, set[tuple[int, int]]] = collections.defaultdict(set)
            for i in range(8):
                for name, op, expected in _request_ops(i):
                    before = proxy.snapshot()
                    assert run(op) == expected, name
                    measured[name].add(wire(before, proxy.snapshot()))
            assert dict(measured) == {name: {(1, 1)} for name, _op, _e in _request_ops(0)}

            # Purge: one statement per batch (5 due, batches of 2: 2 + 2 + 1).
            for i in range(5):
                run(Create(key(f"old{i}"), rec(ttl=10)))
            before = proxy.snapshot()
            assert run(Purge(NOW + 20, 2)) == 5
            assert wire(before, proxy.snapshot()) == (3, 3)
            # Malformed keys are answered without the server.
            before = proxy.snapshot()
            assert run(Load("nope", NOW)) is None
            assert run(Apply("'--", Delta(set={"a": "1"}), NOW)) is False
            assert run(Delete("x" * 64)) is False
            assert run(Rename(key(1).upper(), key(2), Delta(), NOW)) is False
            assert proxy.snapshot() == before
    finally:
        drop_table(table)


# ---- the schema -------------------------------------------------------------------------

def _describe(schema: str, table: str) -> dict[str, Any]:
    """A table's shape from the catalogs, with its own name masked out."""
    with admin() as conn:
        oid = conn.execute("SELECT %s::regclass::oid", [f'"{schema}"."{table}"']).fetchone()[0]
        columns = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod), attnotnull, "
            "pg_get_expr(adbin, adrelid), collname FROM pg_attribute "
            "LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum "
            "LEFT JOIN pg_collation c ON c.oid = attcollation AND attcollation <> 100 "
            "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum", [oid]).fetchall()
        constraints = conn.execute(
            "SELECT contype, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s", [oid]
        ).fetchall()
        indexes = conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
                               [schema, table]).fetchall()
        persistence = conn.execute("SELECT relpersistence FROM pg_class WHERE oid = %s", [oid]).fetchone()[0]
    return {
        "columns": columns,
        "constraints": sorted(constraints),
        "indexes": sorted(str(i[0]).replace(table, "T") for i in indexes),
        "persistence": persistence,
    }


@pytest.mark.parametrize("unlogged", [False, True])
def test_offered_ddl_is_what_create_schema_creates(unlogged: bool) -> None:
    schema = "sk_schema_" + secrets.token_hex(4)
    mine, theirs = new_table(), new_table()
    try:
        with admin() as conn:
            conn.execute(ddl(mine, schema=schema, unlogged=unlogged).encode())
            conn.execute(ddl(mine, schema=schema, unlogged=unlogged).encode())  # re-runnable
        with open_store(URL, table=theirs, schema=schema, unlogged=unlogged, create_schema=True) as store:
            assert store.count(NOW) == 0
        got, want = _describe(schema, theirs), _describe(schema, mine)
        assert got == want
        assert got["persistence"] == ("u" if unlogged else "p")
        assert [c[0] for c in got["columns"]] == ["key", "data", "user_id", "created_at", "last_seen",
                                                  "expires_at", "absolute_at", "auth_at", "info"]
        assert len(got["indexes"]) == 4  # the primary key, expires_at, absolute_at, user_id (partial)
        assert any("(expires_at)" in i for i in got["indexes"])
        assert any("(absolute_at)" in i for i in got["indexes"])  # the Rename's sweep (issue 8.8)
        assert any("(user_id) WHERE (user_id IS NOT NULL)" in i for i in got["indexes"])
    finally:
        with admin() as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.mark.parametrize(("query", "persistence"), [("", "p"), ("unlogged=true", "u"), ("unlogged=0", "p")])
def test_unlogged_url_option_makes_an_unlogged_table(query: str, persistence: str) -> None:
    table = new_table()
    try:
        with open_store(url_for(query=query), table=table, create_schema=True) as store:
            store.count(NOW)
        with admin() as conn:
            got = conn.execute("SELECT relpersistence FROM pg_class WHERE oid = %s::regclass",
                               [table]).fetchone()
        assert got == (persistence,)
    finally:
        drop_table(table)


def test_concurrent_first_use_by_many_processes_creates_the_table_once() -> None:
    table = new_table()
    stores = [open_store(URL, table=table, create_schema=True, max_size=1) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def first_use(store: Any) -> None:
        barrier.wait()
        try:
            assert store.execute(Create(key(id(store)), rec()))
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=first_use, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert stores[0].count(NOW) == len(stores)
    finally:
        for s in stores:
            s.close()
        drop_table(table)


@pytest.mark.parametrize("mode", MODES)
def test_missing_table_without_create_schema_says_how_to_create_it(mode: str) -> None:
    """Issue 9.3: with create_schema=false, a missing table is a StoreError that names the
    table and the two fixes, raised before any session statement runs."""
    table = new_table()
    store = open_store(URL, table=table, create_schema=False)
    with running(store, mode) as run:  # type: ignore[arg-type]
        for op in (Load(key(1), NOW), Create(key(1), rec())):
            with pytest.raises(StoreError) as info:
                run(op)
            text = str(info.value)
            assert table in text and "store.ddl()" in text and "create_schema=true" in text
            assert "relation" not in text  # not the server's message from deep inside a statement
    with admin() as conn:
        assert conn.execute("SELECT to_regclass(%s)", [table]).fetchone() == (None,)


@pytest.mark.parametrize("mode", MODES)
def test_the_readme_url_works_as_written_on_a_new_database(mode: str) -> None:
    """Issue 9.3: ``open_store("postgresql://...")`` with no options creates the table on
    first use (it used to fail the first request: relation ... does not exist)."""
    dbname = "sk_new_" + secrets.token_hex(4)
    with admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(dbname)))
    try:
        store = open_store(f"postgresql://postgres@127.0.0.1:5432/{dbname}")
        with running(store, mode) as run:  # type: ignore[arg-type]
            assert run(Create(key(1), rec()))
            assert run(Load(key(1), NOW)) == rec()
    finally:
        with admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


def test_an_existing_table_is_used_without_create_rights() -> None:
    """The default create_schema=true only looks the table up when it exists: an app role
    that may not CREATE (PostgreSQL 15+ default for public) still works."""
    table = new_table()
    role = "sk_app_" + secrets.token_hex(4)
    with admin() as conn:
        conn.execute(ddl(table))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
            sql.Identifier(table), sql.Identifier(role)))
    try:
        with admin() as conn:  # the premise (PostgreSQL 15+'s default): no CREATE in public
            premise = conn.execute("SELECT has_schema_privilege(%s, 'public', 'CREATE')", [role])
            assert premise.fetchone() == (False,)
        with open_store(f"postgresql://{role}@127.0.0.1:5432/test", table=table) as store:
            assert store.execute(Create(key(1), rec()))
            assert store.load(key(1), NOW) == rec()
            assert store.ddl() == ddl(table)
    finally:
        drop_table(table)
        with admin() as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


# ---- hostile input ----------------------------------------------------------------------

HOSTILE_FIELDS = {
    "'; DROP TABLE sessionkeeper_sessions; --": '"\'); DELETE FROM pg_class; --"',
    "nul\x00name": '"nul"',
    "raw": "not JSON at all: \x00 \x01 \x010 \\u0000 ' \" %s %(x)s {0} $1",
    "\x01": "\x01\x01",  # the escape character itself, alone and doubled
    "\x010": "\x00",  # what an escaped NUL looks like, unescaped
    "a->>'b'": '{"k":"v"}',
    '"quoted"': '"\\"q\\""',
    "ünï 🍪 עברית e\u0301 \u2028": '"ünï 🍪 עברית e\u0301 \u2028"',
    "huge": '"' + "é" * 500_000 + '"',  # one megabyte of UTF-8
    "": '""',
}


@pytest.mark.parametrize("mode", MODES)
def test_hostile_names_and_values_are_only_data(mode: str) -> None:
    user = "u'\x00\x01; DROP TABLE x; --"
    m = meta(user=user, auth_at=NOW, info={"ua\x00'": "Mozilla\x01\"'", "ip": "::1"})
    with table_store(mode) as (run, table):
        assert run(Create(key(1), Record(HOSTILE_FIELDS, m)))
        assert run(Load(key(1), NOW)) == Record(HOSTILE_FIELDS, m)
        delta = Delta(set={"nul\x00name": "\x00", "\x01\x00": "x"},
                      delete=frozenset({"raw", "\x010", "huge"}))
        assert run(Apply(key(1), delta, NOW))
        want = {k: v for k, v in HOSTILE_FIELDS.items() if k not in delta.delete} | dict(delta.set)
        assert run(Load(key(1), NOW)).fields == want
        assert run(Rename(key(1), key(2), Delta(set={"huge": HOSTILE_FIELDS["huge"]}), NOW))
        assert run(Load(key(2), NOW)) == Record(want | {"huge": HOSTILE_FIELDS["huge"]}, m)
        assert [k for k, _ in run(ListUser(user, NOW))] == [key(2)]
        assert run(ListUser("u'", NOW)) == []
        assert run(Count(NOW)) == 1
        with admin() as conn:  # stored as data: the escaped NUL, one jsonb string per field
            row = conn.execute(sql.SQL("SELECT user_id, data ->> %s FROM {}").format(sql.Identifier(table)),
                               ["nul\x010name"]).fetchone()
        assert row == ("u'\x010\x01\x01; DROP TABLE x; --", "\x010")


@pytest.mark.parametrize("mode", MODES)
def test_unencodable_text_is_a_store_error_and_changes_nothing(mode: str) -> None:
    with table_store(mode) as (run, _table):
        assert run(Create(key(1), rec({"a": "1"})))
        for op in (Create(key(2), rec({"a": '"\ud800"'})), Apply(key(1), Delta(set={"\udfff": "1"}), NOW),
                   ListUser("\ud800", NOW)):
            with pytest.raises(StoreError):
                run(op)
        assert run(Load(key(1), NOW)).fields == {"a": "1"}
        assert run(Load(key(2), NOW)) is None


@pytest.mark.parametrize("mode", MODES)
def test_rename_onto_a_taken_key_fails_and_keeps_both_sessions(mode: str) -> None:
    with table_store(mode) as (run, _table):
        assert run(Create(key(1), rec({"a": "1"})))
        assert run(Create(key(2), rec({"b": "2"})))
        assert run(Rename(key(1), key(2), Delta(set={"c": "3"}), NOW)) is False
        assert run(Rename(key(1), key(1), Delta(set={"c": "3"}), NOW)) is False
        assert run(Load(key(1), NOW)) == rec({"a": "1"})
        assert run(Load(key(2), NOW)) == rec({"b": "2"})
        with pytest.raises(StoreError):  # a malformed target is a bug in the caller, not "missing"
            run(Rename(key(1), "not-a-key", Delta(), NOW))
        assert run(Load(key(1), NOW)) == rec({"a": "1"})


# ---- purge ------------------------------------------------------------------------------

def test_purge_steps_over_rows_a_request_holds_and_never_waits() -> None:
    table = new_table()
    # A statement that waited for the lock would hit this timeout and fail the test.
    store = open_store(url_for(query="options=-c%20statement_timeout%3D10000"), table=table,
                       create_schema=True)
    try:
        for i in range(5):
            store.execute(Create(key(i), rec(ttl=10)))
        store.execute(Create(key("live"), rec(ttl=1000)))
        with admin() as locker:
            locker.autocommit = False
            lock = sql.SQL("SELECT 1 FROM {} WHERE key = %s FOR UPDATE").format(sql.Identifier(table))
            locker.execute(lock, [key(0)])
            assert store.purge(NOW + 20, batch=2) == 4
            locker.rollback()
        assert store.purge(NOW + 20, batch=2) == 1
        assert store.count(NOW + 20) == 1
    finally:
        store.close()
        drop_table(table)


# ---- outages ----------------------------------------------------------------------------

FAST_FAIL = {"pool_timeout": 1.0, "connect_timeout": 2, "reconnect_timeout": 0.2,
             "min_size": 1, "max_size": 2}


def _assert_unavailable(run: Runner, op: Op, *names: str) -> None:
    with pytest.raises(StoreUnavailable) as info:
        run(op)
    text = str(info.value)
    for name in names:
        assert name in text
    chain = [info.value, info.value.__cause__, info.value.__context__]
    assert all(PASSWORD not in str(e) for e in chain)


@pytest.mark.parametrize("mode", MODES)
def test_database_refusing_connections_then_back_same_store_recovers(mode: str) -> None:
    dbname = "sk_fault_" + secrets.token_hex(4)
    db = sql.Identifier(dbname)
    with admin() as conn:  # its own database: blocking it cannot disturb anyone else's tests
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(db))
    try:
        store = open_store(url_for(dbname), create_schema=True, **FAST_FAIL)
        with running(store, mode) as run:  # type: ignore[arg-type]
            saved = {i: rec({"n": str(i)}, user="alice") for i in range(3)}
            for i, r in saved.items():
                assert run(Create(key(i), r))
            assert run(Apply(key(0), Delta(set={"x": "1"}), NOW))
            saved[0] = Record({"n": "0", "x": "1"}, saved[0].meta)

            with admin() as conn:
                conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(db))
                conn.execute("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                             "WHERE datname = %s", [dbname])
            for op in (Load(key(0), NOW), Apply(key(0), Delta(set={"x": "lost"}), NOW),
                       Create(key(9), rec()), Delete(key(1))):
                _assert_unavailable(run, op, dbname, "127.0.0.1")

            with admin() as conn:
                conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(db))
            for i, r in saved.items():  # nothing saved was lost, nothing refused was applied
                assert run(Load(key(i), NOW)) == r
            assert run(Create(key(9), rec()))
            assert run(Apply(key(0), Delta(set={"x": "2"}), NOW))
            assert run(Delete(key(1)))
            assert [k for k, _ in run(ListUser("alice", NOW))] == sorted([key(0), key(2)])
    finally:
        with admin() as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(db))
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db))


@pytest.mark.parametrize("mode", MODES)
def test_network_gone_then_back_same_store_recovers(proxy: PgProxy, mode: str) -> None:
    table = new_table()
    store = open_store(proxy.url(), table=table, create_schema=True, **FAST_FAIL)
    try:
        with running(store, mode) as run:  # type: ignore[arg-type]
            assert run(Create(key(1), rec({"a": "1"})))
            proxy.stop()
            for op in (Load(key(1), NOW), Apply(key(1), Delta(set={"a": "lost"}), NOW),
                       Rename(key(1), key(2), Delta(), NOW)):
                _assert_unavailable(run, op, f"127.0.0.1:{proxy.port}/test")
            proxy.start()
            assert run(Load(key(1), NOW)) == rec({"a": "1"})
            assert run(Rename(key(1), key(2), Delta(set={"a": "2"}), NOW))
            assert run(Load(key(2), NOW)).fields == {"a": "2"}
    finally:
        drop_table(table)


@pytest.mark.parametrize("mode", MODES)
def test_connections_the_server_killed_are_replaced_without_failing_a_request(mode: str) -> None:
    app = "sk-kill-" + secrets.token_hex(4)
    table = new_table()
    store = open_store(url_for(query=f"application_name={app}"), table=table, create_schema=True,
                       max_size=2)
    try:
        with running(store, mode) as run:  # type: ignore[arg-type]
            for i in range(4):
                assert run(Create(key(i), rec()))
            with admin() as conn:  # like a server restart, or an idle-connection killer
                killed = conn.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) "
                                      "FROM pg_stat_activity WHERE application_name = %s", [app]).fetchone()
            assert killed is not None and killed[0] >= 1
            for i in range(4):  # every pooled connection is dead: each is noticed and replaced
                assert run(Load(key(i), NOW)) is not None
    finally:
        drop_table(table)


def test_unreachable_server_fails_fast_and_names_it_without_the_password() -> None:
    port = free_port()  # nothing listens there
    with open_store(url_for(port=port), pool_timeout=0.5) as store:  # opening does not connect
        assert store.load("not a key", NOW) is None  # answered without the server
        with pytest.raises(StoreUnavailable) as info:
            store.load(key(1), NOW)
        assert f"postgres@127.0.0.1:{port}/test" in str(info.value)
        assert "could not connect" in str(info.value) and "busy" not in str(info.value)
        assert PASSWORD not in str(info.value) and PASSWORD not in repr(store)


@pytest.mark.parametrize("mode", MODES)
def test_a_busy_pool_waits_then_says_busy_not_unreachable(mode: str) -> None:
    """Issue 16: every connection in use is a bounded wait, then a 503 that says "busy"."""
    table = new_table()
    store = open_store(url_for(), table=table, max_size=1, pool_timeout=0.2)
    assert isinstance(store, PostgresStore)
    try:
        with running(store, mode) as run:  # type: ignore[arg-type]
            assert run(Create(key(1), rec()))  # opens the pool (and creates the table)
            if mode == "sync":
                pool: Any = store._pool
                held = pool.getconn()
                release = lambda: pool.putconn(held)  # noqa: E731
            else:
                apool: Any = store._apool
                held = run.await_(apool.getconn())
                release = lambda: run.await_(apool.putconn(held))  # noqa: E731
            try:
                with pytest.raises(StoreUnavailable) as info:
                    run(Load(key(1), NOW))
            finally:
                release()
            text = str(info.value)
            assert "busy" in text and "all 1 connections" in text and "could not connect" not in text
            assert PASSWORD not in text
            assert run(Load(key(1), NOW)) == rec()  # free again
    finally:
        drop_table(table)


# ---- several processes ------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_two_store_objects_see_each_others_writes_and_deletes_at_once(mode: str) -> None:
    table = new_table()
    one = open_store(URL, table=table, create_schema=True, max_size=2)
    two = open_store(URL, table=table, create_schema=True, max_size=2)
    try:
        with running(one, mode) as a, running(two, mode) as b:  # type: ignore[arg-type]
            assert a(Create(key(1), rec({"a": "1"}, user="bob")))
            assert b(Load(key(1), NOW)) == rec({"a": "1"}, user="bob")
            assert b(Apply(key(1), Delta(set={"b": "2"}), NOW))
            assert a(Apply(key(1), Delta(set={"c": "3"}), NOW))
            both = {"a": "1", "b": "2", "c": "3"}
            assert a(Load(key(1), NOW)).fields == b(Load(key(1), NOW)).fields == both
            assert a(Rename(key(1), key(2), Delta(), NOW))
            assert b(Load(key(1), NOW)) is None
            assert b(Apply(key(1), Delta(set={"late": "1"}), NOW)) is False
            assert [k for k, _ in b(ListUser("bob", NOW))] == [key(2)]
            assert b(Delete(key(2)))
            assert a(Load(key(2), NOW)) is None
            assert a(Apply(key(2), Delta(set={"late": "1"}, meta=meta()), NOW)) is False
            assert a(Load(key(2), NOW)) is None and a(Count(NOW)) == 0
    finally:
        drop_table(table)


# ---- options and lifecycle --------------------------------------------------------------

@pytest.mark.parametrize(("url", "options"), [
    ("postgresql://h/db?table=bad-name", {}),
    ("postgresql://h/db", {"table": "x" * 49}),
    ("postgresql://h/db", {"schema": "1abc"}),
    ("postgresql://h/db", {"tabel": "typo"}),
    ("postgresql://h/db?min_size=many", {}),
    ("postgresql://h/db?max_size=0", {}),
    ("postgresql://h/db?min_size=5&max_size=2", {}),
    ("postgresql://h/db?pool_timeout=-1", {}),
    ("postgresql://h/db?connect_timeout=nan", {}),
    ("postgresql://h/db?unlogged=perhaps", {}),
    ("postgresql://h/db?table=a&table=b", {}),
    ("postgresql://h/db?no_such_libpq_option=1", {}),
    ("postgresql://h/db#frag", {}),
])
def test_bad_options_are_config_errors(url: str, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        open_store(url, **options)


def test_url_options_keywords_win_and_libpq_options_pass_through() -> None:
    table = new_table()
    url = url_for(query="table=from_url&application_name=sk-options-test&prepare_threshold=none")
    try:
        with open_store(url, table=table, create_schema=True) as store:
            assert repr(store) == f"<PostgresStore postgresql://postgres@127.0.0.1:5432/test table={table!r}>"
            assert store.count(NOW) == 0
            with admin() as conn:  # the pool may have opened a second connection meanwhile
                got = conn.execute("SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = %s",
                                   ["sk-options-test"]).fetchone()
            assert got == (True,)
    finally:
        drop_table(table)


@pytest.mark.parametrize("mode", MODES)
def test_close_is_idempotent_and_a_closed_store_says_so(mode: str) -> None:
    with table_store(mode) as (run, _table):
        assert run(Create(key(1), rec()))
        if run.loop is None:
            run.store.close()
        else:
            run.await_(run.store.aclose())
        run.store.close()
        run.await_(run.store.aclose()) if run.loop is not None else run.store.close()
        with pytest.raises(StoreError, match="closed") as info:
            run(Load(key(1), NOW))
        assert not isinstance(info.value, StoreUnavailable)


def test_async_pool_lives_in_one_event_loop_at_a_time() -> None:
    import asyncio

    with table_store("async") as (first, table):
        assert first(Create(key(1), rec()))
        second = Runner(first.store, "async")  # a second loop, running at the same time
        try:
            with pytest.raises(StoreError, match="another event loop"):
                second(Load(key(1), NOW))
        finally:
            second.loop.call_soon_threadsafe(second.loop.stop)  # type: ignore[union-attr]
            second._thread.join(5)
            second.loop.close()  # type: ignore[union-attr]
        assert first(Load(key(1), NOW)) == rec()

    # One loop after another (asyncio.run per script or test): a store per loop, closed in
    # it. (An async pool abandoned in a loop that ends leaves psycopg_pool's tasks to be
    # cancelled at shutdown, which can hang while a connection attempt is in flight.)
    table = new_table()

    async def use(op: Op) -> Any:
        store = open_store(URL, table=table, create_schema=True)
        try:
            return await store.aexecute(op)
        finally:
            await store.aclose()

    try:
        assert asyncio.run(use(Create(key(1), rec())))
        assert asyncio.run(use(Load(key(1), NOW))) == rec()
    finally:
        drop_table(table)
