"""Issue 8.8: a renewal alias is neither usable nor readable after its grace window, and is
gone from the store promptly, on every store.

A periodic renewal moves a session to a new token and leaves, under ``alias_key(old token)``,
an ordinary record whose expiry and absolute limit are the end of the grace window (see
``core/flow.py``). From a store backup, a leaked old token leads through that alias to the
live token; so no alias may outlive its window. Requirement: OWASP ASVS 5.0 V7.4.1 (once a
session identifier is terminated, it cannot be used again) and V7.3 (timeouts), WSTG-SESS-07
(session timeout): an old ID renewed away is dead after the grace window, in the store too.

Each test reads the store the way a backup would (the raw table, the files, the dict, the raw
Redis keys), after the grace window and one further operation.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from sessionkeeper import Session, SessionConfig, SessionFlow, Store, open_store
from sessionkeeper.core import ids
from sessionkeeper.core.flow import RequestInfo
from sessionkeeper.core.records import Apply, Create, Delta, Load, Meta, Purge, Record, Rename
from sessionkeeper.drivers import run_sync
from sessionkeeper.stores.file import FileStore
from sessionkeeper.stores.memory import MemoryStore
from sessionkeeper.stores.sqlite import SQLiteStore
from tests import redis_servers

from .backends import postgres as pg_backend
from .backends import redis as redis_backend
from .conftest import _MODULES

NOW = 1_800_000_000.0
GRACE = 10.0
ROTATE = 60.0

# The stores whose aliases are ordinary rows (Redis expires them natively: tested apart below).
ROW_STORES = ["sqlite", "sqlite-memory", "file", "memory", "postgres"]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=ROW_STORES)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[Store]:
    with _MODULES[backend].open(backend, tmp_path) as s:
        yield s


def raw_keys(store: Store) -> set[str]:
    """Every storage key the store holds, live or not, read as a backup would read it."""
    if isinstance(store, MemoryStore):
        return set(store._data)
    if isinstance(store, FileStore):
        return {name[: -len(".json")] for _, _, names in os.walk(os.path.join(store.root, "s"))
                for name in names if name.endswith(".json")}
    if isinstance(store, SQLiteStore):
        if store.memory:
            with store._conn() as conn:
                return {r[0] for r in conn.execute("SELECT key FROM sessionkeeper_sessions")}
        conn = sqlite3.connect(store.path)  # a second reader, as a backup tool is
        try:
            return {r[0] for r in conn.execute("SELECT key FROM sessionkeeper_sessions")}
        finally:
            conn.close()
    from psycopg import sql

    table = store._statements.table  # type: ignore[attr-defined]
    with pg_backend.admin() as conn:
        rows = conn.execute(sql.SQL("SELECT key FROM {}").format(sql.Identifier(table))).fetchall()
    return {r[0] for r in rows}


class App:
    """Requests through the core flow (what every adapter drives), with a fake clock."""

    def __init__(self, store: Store) -> None:
        self.clock = Clock()
        self.store = store
        self.flow = SessionFlow(SessionConfig(rotate_interval=ROTATE, renew_grace=GRACE, clock=self.clock))

    def request(self, token: str | None, write: dict[str, Any] | None = None) -> tuple[str | None, Session]:
        """One request presenting ``token``; the token the response hands out (or the same)."""
        cookie = None if token is None else f"{self.flow.cookie_name}={token}"
        state = self.flow.begin(RequestInfo(cookie=cookie))
        session: Session = self.flow.open(state, run=lambda lf: run_sync(lf, self.store))
        session.get("n")  # the app reads the session (loads it)
        for k, v in (write or {}).items():
            session[k] = v
        headers = run_sync(self.flow.commit(state, session, 200), self.store)
        for name, value in headers:
            if name == "Set-Cookie" and value.startswith(self.flow.cookie_name + "="):
                got = value.split(";")[0].split("=", 1)[1]
                return (got or None), session
        return token, session

    def renew(self, token: str) -> str:
        """Wait out the rotation interval; the next request renews: the new token."""
        self.clock.now += ROTATE + 1
        new, _ = self.request(token)
        assert new is not None and new != token
        return new


def start(app: App) -> str:
    token, _ = app.request(None, {"n": 1})
    assert token is not None
    return token


# ---- within the window the alias works; past it, it neither works nor reads -----------------


def test_v7_4_1_alias_leads_to_the_session_only_within_the_grace_window(store: Store) -> None:
    """ASVS 5.0 V7.4.1 / WSTG-SESS-07: the old token follows the alias inside the window,
    and is an unknown ID after it, even with the alias row still in place (no purge yet)."""
    app = App(store)
    old = start(app)
    new = app.renew(old)
    alias = ids.alias_key(old)
    assert alias in raw_keys(store)
    app.clock.now += GRACE / 2
    handed, session = app.request(old)
    assert handed == new and session.get("n") == 1  # in flight: led to the live session
    app.clock.now += GRACE / 2  # the window's end: the alias's expiry
    assert store.execute(Load(alias, app.clock.now)) is None  # the Load rule: never returned


def test_v7_4_1_a_late_old_token_finds_nothing_and_its_alias_is_gone(store: Store) -> None:
    """ASVS 5.0 V7.4.1 / WSTG-SESS-07: the old token presented after the window gets a fresh,
    empty session (never the live one), and that very request deletes the alias row."""
    app = App(store)
    old = start(app)
    new = app.renew(old)
    app.clock.now += GRACE + 1
    handed, session = app.request(old)
    assert handed != new and session.get("n") is None
    assert ids.alias_key(old) not in raw_keys(store)  # the backup holds no alias any more
    assert ids.storage_key(new) in raw_keys(store)


def test_v7_4_1_the_next_renewal_sweeps_old_aliases(store: Store) -> None:
    """ASVS 5.0 V7.4.1 / WSTG-SESS-07: nobody presents the old tokens again; the next renewal
    (any user's) removes their aliases, without waiting for a purge (the file store: once
    past the 16-second slot the alias's window ends in, see its module header)."""
    app = App(store)
    first = [start(app) for _ in range(3)]
    app.clock.now += ROTATE + 1  # all three renew at the same moment
    renewed = [app.request(t)[0] for t in first]
    assert None not in renewed and not set(first) & set(renewed)
    aliases = {ids.alias_key(t) for t in first}
    assert aliases <= raw_keys(store)
    app.clock.now += GRACE + 1
    other = start(app)
    app.renew(other)  # one further operation: another session's renewal
    assert aliases & raw_keys(store) == set()
    for t in renewed:  # the live sessions are untouched
        assert t is not None and ids.storage_key(t) in raw_keys(store)


def test_v7_4_1_purge_removes_aliases_past_their_window(store: Store) -> None:
    """ASVS 5.0 V7.4.1 / WSTG-SESS-07: purge removes every alias past its window."""
    app = App(store)
    old = start(app)
    app.renew(old)
    assert store.execute(Purge(app.clock.now + GRACE - 1)) == 0  # still within: kept
    assert ids.alias_key(old) in raw_keys(store)
    assert store.execute(Purge(app.clock.now + GRACE)) == 1
    assert ids.alias_key(old) not in raw_keys(store)


# ---- the store rule behind it: garbage goes, merely idle sessions stay --------------------


def k(n: int) -> str:
    return ids.storage_key(f"{n:043d}")


def test_load_deletes_a_row_past_its_expiry_and_absolute_limit_but_keeps_an_idle_one(store: Store) -> None:
    """A row past both expiry and absolute limit (an alias past its window) is deleted when a
    Load meets it. A session that only went idle stays until its absolute limit (as Redis keeps
    it), so the flow can still report it as expired rather than as an unknown ID."""
    alias = Meta(created_at=NOW, last_seen=NOW, expires_at=NOW + GRACE, absolute_at=NOW + GRACE)
    idle = Meta(created_at=NOW, last_seen=NOW, expires_at=NOW + 30, absolute_at=NOW + 43200)
    assert store.execute(Create(k(1), Record({"to": "00"}, alias)))
    assert store.execute(Create(k(2), Record({"n": "1"}, idle)))
    assert store.execute(Load(k(1), NOW + GRACE)) is None
    assert store.execute(Load(k(2), NOW + 31)) is None
    assert k(1) not in raw_keys(store)
    assert k(2) in raw_keys(store)
    assert store.execute(Load(k(2), NOW + 29)) is not None  # asked as of earlier: still there


def test_rename_sweeps_a_bounded_batch_and_leaves_live_and_idle_rows(store: Store) -> None:
    """Each Rename deletes garbage in a bounded batch: repeated renames clear any backlog."""
    gone = Meta(created_at=NOW, last_seen=NOW, expires_at=NOW + 1, absolute_at=NOW + 1)
    idle = Meta(created_at=NOW, last_seen=NOW, expires_at=NOW + 1, absolute_at=NOW + 43200)
    live = Meta(created_at=NOW, last_seen=NOW, expires_at=NOW + 1800, absolute_at=NOW + 43200)
    garbage = {k(i) for i in range(100, 180)}
    for key in garbage:
        assert store.execute(Create(key, Record({"to": "00"}, gone)))
    assert store.execute(Create(k(1), Record({}, idle)))
    assert store.execute(Create(k(2), Record({}, live)))
    later = NOW + 20  # past the garbage's 16-second slot too (file store)
    assert store.execute(Rename(k(2), k(3), Delta(meta=live), later))
    assert 0 < len(garbage & raw_keys(store)) < len(garbage)  # one bounded batch went
    for i in range(1, 10):
        assert store.execute(Rename(k(2 + i), k(3 + i), Delta(meta=live), later))
    assert garbage & raw_keys(store) == set()
    assert {k(1), k(12)} <= raw_keys(store)


# ---- Redis: aliases expire natively --------------------------------------------------------


@pytest.fixture
def redis_app() -> Iterator[tuple[App, redis.Redis, str]]:
    """A Redis store with a key prefix of its own (never a flush), its server's clock."""
    redis_backend.require_redis()
    prefix = redis_backend.new_prefix()
    client = redis.Redis(host=redis_backend.HOST, port=redis_backend.PORT, socket_timeout=5)
    store = open_store(redis_backend.URL, prefix=prefix, socket_timeout=10)
    try:
        app = App(store)
        app.clock.now = float(client.time()[0])  # Redis judges TTLs by its own clock
        yield app, client, prefix
    finally:
        store.close()
        redis_servers.delete_prefix([client], prefix)


def redis_key(prefix: str, key: str) -> str:
    return f"{prefix}{{{key}}}"  # <prefix>{<storage key>}, see stores/redis.py


def test_v7_4_1_redis_alias_carries_a_ttl_ending_with_its_grace_window(
    redis_app: tuple[App, redis.Redis, str],
) -> None:
    """ASVS 5.0 V7.4.1 / WSTG-SESS-07: on Redis the alias is written with a TTL that ends with
    its window, so Redis deletes it itself (seen in the raw keys a backup, an RDB, holds)."""
    app, client, prefix = redis_app
    old = start(app)
    renewed_at = app.clock.now + ROTATE + 1
    new = app.renew(old)
    alias = redis_key(prefix, ids.alias_key(old))
    assert client.exists(alias) and client.exists(redis_key(prefix, ids.storage_key(new)))
    expires_ms = client.pexpiretime(alias)
    assert expires_ms > 0, "the alias has a TTL"
    assert expires_ms / 1000 == pytest.approx(renewed_at + GRACE, abs=0.01)


def test_v7_4_1_redis_holds_no_alias_past_its_window(redis_app: tuple[App, redis.Redis, str]) -> None:
    """ASVS 5.0 V7.4.1 / WSTG-SESS-07: a renewal whose window is already over by the server's
    clock leaves no alias key at all (no waiting in the test: the clock starts in the past)."""
    app, client, prefix = redis_app
    app.clock.now -= ROTATE + 1 + GRACE + 5  # the renewal below happens 5 s before "now"
    old = start(app)
    new = app.renew(old)
    assert client.exists(redis_key(prefix, ids.storage_key(new)))  # the session lives on
    assert not client.exists(redis_key(prefix, ids.alias_key(old)))
    assert [key for key in client.scan_iter(match=f"{prefix}*", count=1000)
            if ids.alias_key(old).encode() in key] == []


def test_a_record_extended_since_it_was_indexed_is_not_swept_until_its_new_limit(store: Store) -> None:
    """The sweep's index is a hint (the memory heap, the file store's slots): a short-lived
    record whose limits moved on since is re-checked and kept, then swept at its new limit."""
    short = Meta(created_at=NOW, last_seen=NOW, expires_at=NOW + 5, absolute_at=NOW + 5)
    longer = Meta(created_at=NOW, last_seen=NOW + 4, expires_at=NOW + 100, absolute_at=NOW + 100)
    live = Meta(created_at=NOW, last_seen=NOW, expires_at=NOW + 1800, absolute_at=NOW + 43200)
    assert store.execute(Create(k(1), Record({"to": "00"}, short)))
    assert store.execute(Apply(k(1), Delta(meta=longer), NOW + 4))
    assert store.execute(Create(k(2), Record({}, live)))
    assert store.execute(Rename(k(2), k(3), Delta(meta=live), NOW + 50))  # past the old limit
    assert k(1) in raw_keys(store)
    assert store.execute(Load(k(1), NOW + 50)) is not None
    assert store.execute(Rename(k(3), k(4), Delta(meta=live), NOW + 120))  # past the new one
    assert k(1) not in raw_keys(store)
