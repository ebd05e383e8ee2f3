"""SQLite store: one table, WAL mode, every write a single statement or one short transaction.

URLs (the SQLAlchemy convention): ``sqlite:///relative/path.db``, ``sqlite:////abs/path.db``,
``sqlite://`` (or ``sqlite:///:memory:``) for a database in memory, shared by the threads of
this process and lost when the store closes.

How it keeps the store rules:
- Fields live in one JSON object per row (field name -> encoded text). ``Apply`` is ONE
  ``UPDATE`` that merges a patch with ``json_patch`` (RFC 7396: a field mapped to ``null`` is
  removed) guarded by ``expires_at > now``, so concurrent requests that change different
  fields all keep their changes and a delta never resurrects a deleted or expired row.
  Field names are JSON object keys inside a bound parameter: quotes, dots, ``$`` and NUL
  (escaped as ``\\u0000``) are data, never SQL or a JSON path. Both the stored object and
  every patch are written by :func:`json.dumps` with ASCII escaping, so a name always has the
  same spelling and ``json_patch`` (which compares names as written) matches it.
- Nested patches (``Delta.patch``, rules in core/patch.py) are applied inside the same
  ``UPDATE`` by ``sk_nested_patch(data, :nested)``, a deterministic function registered on
  every connection that runs core/patch.py's reference on the row's value while SQLite holds
  the write lock: still one statement, and no JSON path is ever built from a name (SQLite's
  path syntax cannot spell every key, e.g. one holding both a quote and a dot).
- ``Rename`` copies and deletes inside ``BEGIN IMMEDIATE``: no other writer in between.
- ``Purge`` deletes in batches, each its own short transaction, so requests keep flowing;
  ``Purge(report=True)`` is the same statement with ``RETURNING`` (SQLite >= 3.35).
- ``Scan`` reads keyset pages (``key > cursor ORDER BY key LIMIT n``, the primary key's
  index), one short autocommit read each: no transaction, nothing locked between pages.
- ``Load`` never returns a row whose ``expires_at <= now``. A row that has also passed its
  ``absolute_at`` is garbage (the rule Redis applies with its TTLs: a merely idle session
  stays until then, so the request flow can still report it as expired rather than unknown):
  ``Load`` deletes garbage when it meets it, and each ``Rename`` deletes a bounded batch of
  it (index on ``absolute_at``). A renewal alias (an ordinary row whose expiry and absolute
  limit are the end of its grace window, written just before the renewal's Rename) is thus
  neither usable nor readable after its grace window, and is gone from the file after one
  further renewal (unless more than a batch of garbage waits), a load of it, or a purge.
- The database, its directory and its ``-wal``/``-shm``/``-journal`` files must be owned by us
  (or root) and writable by nobody else, and none may be a symbolic link (see ``_trust``);
  a missing database is created 0600 in a 0700 directory whatever the umask.
- File databases get a connection per thread (``threading.local``); an in-memory database
  has one connection behind a lock (it exists only inside that connection).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import SplitResult, unquote

from ..core.ids import is_valid_key
from ..core.patch import apply_patch_text, ops_from_json, ops_to_json
from ..core.records import (
    Delta,
    Meta,
    Record,
    ScanPage,
    is_renewal_alias,
    scan_start,
)
from ..errors import ConfigError, StoreError, StoreUnavailable
from . import _trust
from .base import PurgeNaming, redact_url

__all__ = ["SCHEMA", "TABLE", "SQLiteStore"]

#: the table sessionkeeper uses
TABLE = "sessionkeeper_sessions"

#: The DDL, for people who run their own migrations (the store runs it itself unless
#: ``create_schema=False``). Every statement is idempotent.
SCHEMA = f"""\
CREATE TABLE IF NOT EXISTS {TABLE} (
    key         TEXT PRIMARY KEY NOT NULL,  -- sha256 hex of the token, never the token
    data        TEXT NOT NULL,              -- JSON object: field name -> encoded value text
    user_id     TEXT,
    created_at  REAL NOT NULL,
    last_seen   REAL NOT NULL,
    expires_at  REAL NOT NULL,
    absolute_at REAL NOT NULL,
    auth_at     REAL,
    info        TEXT NOT NULL               -- JSON object: str -> str
);
CREATE INDEX IF NOT EXISTS {TABLE}_expires_at ON {TABLE} (expires_at);
CREATE INDEX IF NOT EXISTS {TABLE}_absolute_at ON {TABLE} (absolute_at);
CREATE INDEX IF NOT EXISTS {TABLE}_user_id ON {TABLE} (user_id) WHERE user_id IS NOT NULL;
"""

# getattr: Windows has neither flag (nor owners to check: see _trust.supported).
_OLD_DB = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_NEW_DB = _OLD_DB | os.O_CREAT | os.O_EXCL
_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}  # primary codes; extended ones add high bits
_URL_FORMS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite:// (in memory)"
)
# Every SQL text below is assembled at import time from these constants, never from input
# (hence the S608 waivers); all values travel as bound parameters.
_META_COLS = ("user_id", "created_at", "last_seen", "expires_at", "absolute_at", "auth_at", "info")
_COLS = "data, " + ", ".join(_META_COLS)
_META_PARAMS = ", ".join(f":{c}" for c in _META_COLS)
_META_SET = ", ".join(f"{c} = :{c}" for c in _META_COLS)

# A row is *garbage* once it has expired AND passed its absolute limit (Redis's TTL rule: a
# session that only went idle stays until then, so the flow can still tell "expired" from
# "unknown"; a renewal alias expires at its absolute limit, the end of its grace window).
# Load reads the row whatever its expiry, so that meeting garbage can delete it at once.
_LOAD = f"SELECT expires_at > :now, absolute_at > :now, {_COLS} FROM {TABLE} WHERE key = :key"  # noqa: S608
_DELETE_GARBAGE = (
    f"DELETE FROM {TABLE} WHERE key = :key AND expires_at <= :now AND absolute_at <= :now"  # noqa: S608
)
#: How many expired rows (renewal aliases above all) each Rename deletes on its way.
SWEEP_BATCH = 32
_CREATE = (
    f"INSERT INTO {TABLE} (key, {_COLS}) VALUES (:key, :data, {_META_PARAMS}) "  # noqa: S608
    "ON CONFLICT (key) DO NOTHING"
)
_DELETE = f"DELETE FROM {TABLE} WHERE key = :key"  # noqa: S608
_LIST_USER = (
    f"SELECT key, {_COLS} FROM {TABLE} "  # noqa: S608
    "WHERE user_id = :user_id AND expires_at > :now ORDER BY key"
)
_PURGE = (
    f"DELETE FROM {TABLE} WHERE rowid IN "  # noqa: S608
    f"(SELECT rowid FROM {TABLE} WHERE expires_at <= :now LIMIT :batch)"
)
# Through the absolute_at index (the unary + keeps the planner off the expires_at one, whose
# range can hold many merely idle sessions): with no garbage, one index probe.
_SWEEP = (
    f"DELETE FROM {TABLE} WHERE rowid IN "  # noqa: S608
    f"(SELECT rowid FROM {TABLE} WHERE absolute_at <= :now AND +expires_at <= :now LIMIT {SWEEP_BATCH})"
)
_COUNT = f"SELECT count(*) FROM {TABLE} WHERE expires_at > :now"  # noqa: S608
# What a purge report and a scan read of a row: its key, its data only where the metadata
# may be a renewal alias's (core/records.py: the metadata and field names then decide; a
# session's data is not read for nothing), and its metadata. No "user_id IS NULL" here:
# SQLite 3.40 evaluates it wrongly in a DELETE's RETURNING on this table (it gives false for
# a NULL user id), and the two conditions left already leave out nearly every session.
_MAYBE_ALIAS = "expires_at = absolute_at AND created_at = last_seen"
_REPORTED = f"key, CASE WHEN {_MAYBE_ALIAS} THEN data END, " + ", ".join(_META_COLS)
_PURGE_REPORT = _PURGE + f" RETURNING {_REPORTED}"
# A window of limit + 1 keys in key order (the extra one only says whether a page follows),
# live or not, so that every statement reads a bounded number of rows even when most of the
# table has expired; the live ones are picked in Python.
_SCAN = (
    f"SELECT expires_at > :now, {_REPORTED} FROM {TABLE} "  # noqa: S608
    "WHERE key > :after ORDER BY key LIMIT :window"
)


def _data_sql(nested: bool) -> str:
    return "sk_nested_patch(json_patch(data, :patch), :nested)" if nested else "json_patch(data, :patch)"


def _apply_sql(fields: bool, meta: bool, nested: bool = False) -> str:
    sets = []
    if fields:
        sets.append(f"data = {_data_sql(nested)}")
    if meta:
        sets.append(_META_SET)
    if not sets:
        sets.append("key = key")  # an empty delta still reports whether the session lives
    return f"UPDATE {TABLE} SET {', '.join(sets)} WHERE key = :key AND expires_at > :now"  # noqa: S608


def _rename_sql(fields: bool, meta: bool, nested: bool = False) -> str:
    data = _data_sql(nested) if fields else "data"
    rest = _META_PARAMS if meta else ", ".join(_META_COLS)
    # An upsert on INSERT ... SELECT needs a WHERE in the SELECT (it has one).
    return (
        f"INSERT INTO {TABLE} (key, {_COLS}) SELECT :new, {data}, {rest} FROM {TABLE} "  # noqa: S608
        "WHERE key = :old AND expires_at > :now ON CONFLICT (key) DO NOTHING"
    )


_APPLY = {(f, m): _apply_sql(f, m) for f in (False, True) for m in (False, True)}
_RENAME = {(f, m): _rename_sql(f, m) for f in (False, True) for m in (False, True)}
_APPLY_NESTED = {m: _apply_sql(True, m, nested=True) for m in (False, True)}
_RENAME_NESTED = {m: _rename_sql(True, m, nested=True) for m in (False, True)}


def _nested_patch(data: str, nested: str) -> str:
    """``sk_nested_patch``: the row's fields object after the nested patches in ``nested``
    (``{field: [op, ...]}`` in :func:`~..core.patch.ops_to_json` form)."""
    fields = json.loads(data)
    for name, raw in json.loads(nested).items():
        text = apply_patch_text(fields.get(name), ops_from_json(raw))
        if text is not None:
            fields[name] = text
    return _dumps(fields)


def _nested(delta: Delta) -> str:
    return _dumps({name: ops_to_json(ops) for name, ops in delta.patch.items()})


def _dumps(value: Any) -> str:
    # ASCII escaping: one spelling per name (json_patch matches names as written) and text
    # that SQLite and every terminal can hold, whatever the names contain.
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def _meta_params(meta: Meta) -> dict[str, Any]:
    return {
        "user_id": meta.user_id,
        "created_at": meta.created_at,
        "last_seen": meta.last_seen,
        "expires_at": meta.expires_at,
        "absolute_at": meta.absolute_at,
        "auth_at": meta.auth_at,
        "info": _dumps(dict(meta.info)),
    }


def _patch(delta: Delta) -> str:
    patch: dict[str, str | None] = dict.fromkeys(delta.delete)
    patch.update(delta.set)
    return _dumps(patch)


def _record(row: tuple[Any, ...]) -> Record | None:
    """A row (data, meta columns...) as a Record; ``None`` if it was corrupted outside us."""
    data, user_id, created_at, last_seen, expires_at, absolute_at, auth_at, info = row
    try:
        fields = json.loads(data)
        info_d = json.loads(info)
        if not isinstance(fields, dict) or not all(type(v) is str for v in fields.values()):
            return None
        meta = Meta.from_dict({
            "user_id": user_id, "created_at": created_at, "last_seen": last_seen,
            "expires_at": expires_at, "absolute_at": absolute_at, "auth_at": auth_at,
            "info": info_d,
        })
    except (ValueError, TypeError, KeyError):
        return None
    return Record(fields, meta)


class _Handle:
    """One thread's connection; closed when that thread ends (its thread-local goes)."""

    __slots__ = ("__weakref__", "conn", "pid")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pid = os.getpid()

    def close(self) -> None:
        # A connection inherited through fork() belongs to the parent: leave it alone.
        if self.pid == os.getpid():
            self.conn.close()

    def __del__(self) -> None:
        self.close()


class _Local(threading.local):
    handle: _Handle | None = None


class SQLiteStore(PurgeNaming):
    """Sessions in one SQLite table (see :data:`SCHEMA`).

    ``path`` is a database file (created 0600 if missing) or ``":memory:"``.
    ``busy_timeout`` is how long, in seconds, a write waits for another writer before the
    request fails with :class:`~sessionkeeper.StoreUnavailable`.
    """

    name = "sqlite"

    def __init__(self, path: str, *, busy_timeout: float = 5.0, create_schema: bool = True) -> None:
        if isinstance(busy_timeout, bool) or not isinstance(busy_timeout, int | float) or busy_timeout < 0:
            raise ConfigError(f"busy_timeout must be a number of seconds >= 0, not {busy_timeout!r}")
        self.memory = path == ":memory:"
        # Absolute now: each new thread connects later, perhaps after the app chdir()s.
        self.path = path if self.memory else os.path.abspath(path)
        self._busy_ms = int(busy_timeout * 1000)
        self._closed = False
        self._lock = threading.Lock()  # the in-memory connection; the handle registry
        self._local = _Local()
        self._handles: weakref.WeakSet[_Handle] = weakref.WeakSet()
        self._shared: sqlite3.Connection | None = None
        if not self.memory:
            self._secure()
        try:
            conn = self._connect()
            if create_schema:
                conn.executescript(SCHEMA)
        except ConfigError:
            self.close()
            raise
        except sqlite3.Error as exc:
            self.close()
            raise ConfigError(f"cannot open SQLite database {path!r}: {exc}") from None
        if self.memory:
            self._shared = conn

    @classmethod
    def from_url(cls, url: SplitResult, **options: Any) -> SQLiteStore:
        """Open ``sqlite:///rel.db``, ``sqlite:////abs.db`` or ``sqlite://`` (in memory)."""
        if url.netloc or url.query or url.fragment:
            raise ConfigError(
                f"SQLite store URL {redact_url(url)!r} is malformed: it takes no host, query or "
                f"fragment; expected {_URL_FORMS}"
            )
        known = {"busy_timeout", "create_schema"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"unknown SQLite store option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
            )
        path = unquote(url.path)
        if path in ("", "/:memory:"):
            return cls(":memory:", **options)
        path = path[1:]  # "sqlite:///x" -> "x" (relative), "sqlite:////x" -> "/x"
        if not path or path.endswith("/") or "\x00" in path:
            raise ConfigError(
                f"SQLite store URL {redact_url(url)!r} names no database file; expected {_URL_FORMS}"
            )
        return cls(path, **options)

    # ---- connections ---------------------------------------------------------------------

    def _secure(self) -> None:
        """Refuse a database that others control; create a missing one 0600 in a 0700 directory.

        See :mod:`._trust` for the rule (OpenSSH's StrictModes): the directory must be ours or
        root's and writable by nobody else, the file and its ``-wal``/``-shm``/``-journal``
        companions likewise, and none of them a symbolic link.
        """
        what = "SQLite database"
        try:
            directory = os.path.dirname(self.path)
            if not os.path.lexists(directory):
                _trust.make_private_dir(directory)
            real_dir = _trust.check_chain(directory, f"{what} directory")
            # The real path from now on: SQLite puts -wal and -shm next to the file it opens.
            self.path = os.path.join(real_dir, os.path.basename(self.path))
            try:
                fd = os.open(self.path, _NEW_DB, 0o600)
                created = True
            except FileExistsError:
                _trust.check_lstat(self.path, what + " file", directory=False)
                fd = os.open(self.path, _OLD_DB)
                created = False
            try:
                if created and _trust.supported:
                    os.fchmod(fd, 0o600)  # whatever the umask; -wal and -shm copy this mode
                else:
                    _trust.check_fd(fd, self.path, what + " file")  # the file we opened, no race
                    # An existing file others can read (made with the usual umask): made
                    # private, before SQLite copies its mode to new -wal and -shm files.
                    _trust.make_private(fd, self.path, what + " file")
            finally:
                os.close(fd)
            for suffix in ("-wal", "-shm", "-journal"):
                companion = f"{what}'s {suffix[1:]} file"
                if _trust.check_lstat(self.path + suffix, companion, directory=False, missing_ok=True):
                    _trust.make_private_path(self.path + suffix, companion)  # left over, maybe 0644
        except OSError as exc:
            raise ConfigError(f"cannot open SQLite database {self.path!r}: {exc}") from None

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: autocommit; the few multi-statement writes say BEGIN themselves.
        # check_same_thread=False: close() closes every thread's connection, and the memory
        # connection is shared (always under self._lock).
        conn = sqlite3.connect(
            self.path, timeout=self._busy_ms / 1000, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            if not self.memory:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("SELECT json_patch('{}', '{}')")
            conn.create_function("sk_nested_patch", 2, _nested_patch, deterministic=True)
        except sqlite3.OperationalError as exc:
            conn.close()
            if "json_patch" in str(exc):
                raise ConfigError("this SQLite has no JSON functions (json1); use SQLite >= 3.38") from None
            raise
        if not self.memory:
            handle = _Handle(conn)
            with self._lock:
                self._handles.add(handle)
            self._local.handle = handle
        return conn

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise StoreError(f"SQLiteStore({self.path!r}) is closed")
        try:
            if self._shared is not None:
                with self._lock:
                    yield self._shared
            else:
                handle = self._local.handle
                if handle is None or handle.pid != os.getpid():
                    yield self._connect()
                else:
                    yield handle.conn
        except sqlite3.OperationalError as exc:
            if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _BUSY:
                raise StoreUnavailable(f"SQLite database {self.path!r} is busy: {exc}") from exc
            raise StoreError(f"SQLite database {self.path!r}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite database {self.path!r}: {exc}") from exc

    def close(self) -> None:
        """Close every connection this store opened. Safe to call twice."""
        with self._lock:
            self._closed = True
            handles = list(self._handles)
            self._handles.clear()
            shared, self._shared = self._shared, None
        for handle in handles:
            handle.close()
        if shared is not None:
            shared.close()

    # ---- operations ----------------------------------------------------------------------

    def do_load(self, key: str, now: float) -> Record | None:
        if not is_valid_key(key):
            return None
        params = {"key": key, "now": now}
        with self._conn() as conn:
            row = conn.execute(_LOAD, params).fetchone()
        if row is None:
            return None
        live, within_absolute, *cols = row
        if not live:
            if not within_absolute:
                # Garbage (an old renewal alias above all): nobody may read it again, so it
                # goes now rather than at the next purge. Best effort: a busy or read-only
                # database leaves it to the purge, and the load answers "missing" either way.
                with suppress(StoreError), self._conn() as conn:
                    conn.execute(_DELETE_GARBAGE, params)
            return None
        return _record(tuple(cols))

    def do_create(self, key: str, record: Record) -> bool:
        if not is_valid_key(key):
            return False
        params = {"key": key, "data": _dumps(dict(record.fields)), **_meta_params(record.meta)}
        with self._conn() as conn:
            return conn.execute(_CREATE, params).rowcount == 1

    def do_apply(self, key: str, delta: Delta, now: float) -> bool:
        if not is_valid_key(key):
            return False
        params: dict[str, Any] = {"key": key, "now": now}
        if delta.touches_fields:
            params["patch"] = _patch(delta)
        if delta.meta is not None:
            params.update(_meta_params(delta.meta))
        sql = _APPLY[delta.touches_fields, delta.meta is not None]
        if delta.patch:
            params["nested"] = _nested(delta)
            sql = _APPLY_NESTED[delta.meta is not None]
        with self._conn() as conn:
            return conn.execute(sql, params).rowcount == 1

    def do_rename(self, old: str, new: str, delta: Delta, now: float) -> bool:
        if not (is_valid_key(old) and is_valid_key(new)) or old == new:
            return False
        params: dict[str, Any] = {"old": old, "new": new, "now": now}
        if delta.touches_fields:
            params["patch"] = _patch(delta)
        if delta.meta is not None:
            params.update(_meta_params(delta.meta))
        sql = _RENAME[delta.touches_fields, delta.meta is not None]
        if delta.patch:
            params["nested"] = _nested(delta)
            sql = _RENAME_NESTED[delta.meta is not None]
        with self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                moved = conn.execute(sql, params).rowcount == 1
                if moved:
                    conn.execute(_DELETE, {"key": old})
                # Renewals write an alias (a Create just before this Rename): under the same
                # write lock, delete a bounded batch of garbage rows, so old aliases die
                # within about one renewal after their grace window, not at the next purge.
                conn.execute(_SWEEP, {"now": now})
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return moved

    def do_delete(self, key: str) -> bool:
        if not is_valid_key(key):
            return False
        with self._conn() as conn:
            return conn.execute(_DELETE, {"key": key}).rowcount == 1

    def do_list_user(self, user_id: str, now: float) -> list[tuple[str, Meta]]:
        with self._conn() as conn:
            rows = conn.execute(_LIST_USER, {"user_id": user_id, "now": now}).fetchall()
        out = []
        for row in rows:
            record = _record(row[1:])
            if record is not None:
                out.append((str(row[0]), record.meta))
        return out

    def _purge(self, now: float, batch: int, sessions: list[tuple[str, Meta]] | None) -> int:
        if batch < 1:
            raise ConfigError(f"purge batch must be at least 1, not {batch!r}")
        removed = 0
        params = {"now": now, "batch": batch}
        while True:
            # Each batch is its own autocommit statement: the write lock is held briefly.
            with self._conn() as conn:
                if sessions is None:
                    n = conn.execute(_PURGE, params).rowcount
                else:
                    rows = conn.execute(_PURGE_REPORT, params).fetchall()
                    n = len(rows)
                    sessions += _named(rows)
            removed += n
            if n < batch:
                return removed

    def do_count(self, now: float) -> int:
        with self._conn() as conn:
            return int(conn.execute(_COUNT, {"now": now}).fetchone()[0])

    def do_scan(self, now: float, cursor: str, limit: int) -> ScanPage:
        after = scan_start(cursor, limit)
        with self._conn() as conn:
            rows = conn.execute(_SCAN, {"now": now, "after": after, "window": limit + 1}).fetchall()
        read = rows[:limit]
        found = _named([row[1:] for row in read if row[0]])
        return ScanPage(tuple(found), str(read[-1][1]) if len(rows) > limit else "")


def _named(rows: list[Any]) -> list[tuple[str, Meta]]:
    """The sessions among rows of ``_REPORTED`` columns, renewal aliases and unreadable rows
    left out."""
    out = []
    for key, data, *cols in rows:
        record = _record(("{}" if data is None else data, *cols))
        if record is None:
            continue
        if data is not None and is_renewal_alias(record.fields, record.meta):
            continue
        out.append((str(key), record.meta))
    return out
