"""Whole-store reads for the command line: every live session, the store's size, and Redis's
user-index cleanup.

The store contract has no ``Scan`` operation yet (only ``ListUser``, ``Count`` and ``Purge``),
and an operator's ``list``, ``stats``, ``show HANDLE`` and ``revoke --all`` need every session.
Until the contract grows one (a ``Scan(after, limit, now)`` op in ``core/records.py``, then
each backend), this module reads each backend here, **read-only** and in pages, so that an
admin command never holds a lock or a long transaction while the app serves:

- SQLite and PostgreSQL: keyset pages (``key > last ORDER BY key LIMIT n``), one short
  statement each, on the store's own connections;
- files: one stripe directory at a time, each record read through the store's ``load``;
- Redis and Redis Cluster: ``SCAN`` per primary, one page at a time, driven by the store's own
  plan driver (so errors are translated and outages logged as for any operation).

Writes stay with the store: deletions go through ``Store.delete``/``Purge``, with the one
exception of Redis's stale user-index entries, which go through the store's own ``HEAL``
script with the same rules ``ListUser`` applies (see :func:`redis_heal_indexes`).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

from .core.records import Meta
from .errors import StoreError
from .stores.base import Store

PAGE = 500


def is_alias(fields: Any, meta: Meta) -> bool:
    """Whether a record is a renewal alias (a short-lived pointer, not a session of its own)."""
    return (meta.user_id is None and not meta.info and meta.expires_at == meta.absolute_at
            and meta.created_at == meta.last_seen and fields is not None and set(fields) == {"to"})


def scan(store: Store, now: float) -> Iterator[tuple[str, Meta]]:
    """Every live session of ``store`` at ``now`` as (storage key, metadata), renewal aliases
    left out; raises :class:`StoreError` for a store that cannot be scanned."""
    name = store.name
    if name == "sqlite":
        yield from _scan_sqlite(store, now)
    elif name in ("postgresql", "postgres"):
        yield from _scan_postgres(store, now)
    elif name == "file":
        yield from _scan_file(store, now)
    elif name == "redis":
        yield from _scan_redis(store, now)
    elif name == "memory":
        data: dict[str, Any] = getattr(store, "_data", {})
        for key, entry in sorted(data.items()):
            meta = entry.meta
            if meta.expires_at > now and not is_alias(entry.fields, meta):
                yield key, meta
    else:
        raise StoreError(f"the {name} store cannot list all its sessions; name a user with --user")


def size(store: Store) -> str | None:
    """What the store occupies, in words, where it can tell; ``None`` where it cannot."""
    try:
        if store.name == "sqlite":
            return _size_sqlite(store)
        if store.name in ("postgresql", "postgres"):
            return _size_postgres(store)
        if store.name == "file":
            return _size_file(store)
        if store.name == "redis":
            return _size_redis(store)
    except StoreError:
        raise
    except Exception:  # a size is a nicety: never fail a command over it
        return None
    return None


def human_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - the loop returns


# ---- SQLite ------------------------------------------------------------------------------


def _scan_sqlite(store: Store, now: float) -> Iterator[tuple[str, Meta]]:
    from .stores import sqlite as sq

    query = (f"SELECT key, {sq._COLS} FROM {sq.TABLE} "  # noqa: S608 - module constants only
             "WHERE expires_at > ? AND key > ? ORDER BY key LIMIT ?")
    last = ""
    while True:
        with store._conn() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(query, (now, last, PAGE)).fetchall()
        for row in rows:
            record = sq._record(tuple(row[1:]))
            if record is not None and not is_alias(record.fields, record.meta):
                yield str(row[0]), record.meta
        if len(rows) < PAGE:
            return
        last = str(rows[-1][0])


def _size_sqlite(store: Store) -> str | None:
    with store._conn() as conn:  # type: ignore[attr-defined]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    where = "in memory" if getattr(store, "memory", False) else "database file"
    return f"{human_bytes(pages * page_size)} ({where}, whole database)"


# ---- PostgreSQL --------------------------------------------------------------------------


def _pg_rows(store: Store, query: Any, params: tuple[Any, ...]) -> list[Any]:
    pool = store._pool or store._sync_pool()  # type: ignore[attr-defined]
    with store._errors(), pool.connection() as conn:  # type: ignore[attr-defined]
        return list(conn.execute(query, params).fetchall())


def _scan_postgres(store: Store, now: float) -> Iterator[tuple[str, Meta]]:
    from psycopg import sql

    from .stores import _postgres_sql as q

    st = store._statements  # type: ignore[attr-defined]
    store.count(now)  # makes the table on first use, as any operation does
    query = sql.SQL("SELECT key, data, {cols} FROM {t} WHERE expires_at > %s AND key > %s "
                    "ORDER BY key LIMIT %s").format(
        cols=sql.SQL(", ".join(q.META_COLUMNS)), t=q._table(st.table, st.schema))
    last = ""
    while True:
        rows = _pg_rows(store, query, (now, last, PAGE))
        for row in rows:
            meta = q.meta_from_row(row[2:])
            if not is_alias(row[1], meta):
                yield str(row[0]), meta
        if len(rows) < PAGE:
            return
        last = str(rows[-1][0])


def _size_postgres(store: Store) -> str | None:
    from .stores import _postgres_sql as q

    st = store._statements  # type: ignore[attr-defined]
    store.count(0.0)
    pool = store._pool or store._sync_pool()  # type: ignore[attr-defined]
    with store._errors(), pool.connection() as conn:  # type: ignore[attr-defined]
        name = q._table(st.table, st.schema).as_string(conn)
        total, table, rows = conn.execute(
            "SELECT pg_total_relation_size(c.oid), pg_relation_size(c.oid), c.reltuples "
            "FROM pg_class c WHERE c.oid = to_regclass(%s)", (name,)).fetchone() or (None, None, None)
    if total is None or table is None or rows is None:
        return None
    return (f"{human_bytes(total)} (table {human_bytes(table)} + indexes and TOAST; "
            f"about {max(0, int(rows)):,} rows by the planner's estimate)")


# ---- files -------------------------------------------------------------------------------


def _scan_file(store: Store, now: float) -> Iterator[tuple[str, Meta]]:
    from .stores import file as fs

    for stripe in fs._STRIPES:
        keys, _ = store._session_keys(stripe)  # type: ignore[attr-defined]
        for key in sorted(keys):
            record = store.load(key, now)
            if record is not None and not is_alias(record.fields, record.meta):
                yield key, record.meta


def _size_file(store: Store) -> str | None:
    total = files = 0
    for root, _dirs, names in os.walk(store.root):  # type: ignore[attr-defined]
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
                files += 1
            except FileNotFoundError:  # removed while we walked
                pass
    return f"{human_bytes(total)} in {files:,} files (file sizes, not disk blocks)"


# ---- Redis -------------------------------------------------------------------------------


def _redis_run(store: Store, plan: Any) -> Any:
    from .stores._redis_plan import drive_sync

    return drive_sync(plan, store._io, store.address)  # type: ignore[attr-defined]


def _redis_pages(store: Store, pattern: bytes) -> Iterator[tuple[Any, list[bytes]]]:
    """(node, keys) for each SCAN page of every primary."""
    from .stores._redis_plan import Nodes, Send, _check, _scan_reply

    def one(request: Any) -> Any:
        reply = yield request
        return reply

    nodes = _redis_run(store, one(Nodes()))
    for node in nodes:
        cursor = 0
        while True:
            reply = _redis_run(store, one(Send((("SCAN", cursor, b"MATCH", pattern, b"COUNT", PAGE),),
                                               node)))[0]
            cursor, keys = _scan_reply(_check(reply))
            if keys:
                yield node, keys
            if cursor == 0:
                break


def _redis_send(store: Store, cmds: tuple[tuple[Any, ...], ...]) -> list[Any]:
    from .stores._redis_plan import Send

    def one() -> Any:
        reply = yield Send(cmds)
        return reply

    return list(_redis_run(store, one()))


def _scan_redis(store: Store, now: float) -> Iterator[tuple[str, Meta]]:
    from .stores._redis_plan import _check, parse_hash

    layout = store.plans.layout  # type: ignore[attr-defined]
    cut = len(layout.session("")) - 1  # b"prefix{" before the key, b"}" after it
    for _node, keys in _redis_pages(store, layout.pattern()):
        replies = _redis_send(store, tuple(("HGETALL", k) for k in keys))
        for k, reply in sorted(zip(keys, replies, strict=True)):
            found = parse_hash(_check(reply) or {}, now)
            if found is not None and not is_alias(found[0].fields, found[0].meta):
                yield k[cut:-1].decode("ascii"), found[0].meta


def _size_redis(store: Store) -> str | None:
    from .stores._redis_plan import Nodes, Send, _check

    def one(request: Any) -> Any:
        reply = yield request
        return reply

    used = 0
    for node in _redis_run(store, one(Nodes())):
        info = _check(_redis_run(store, one(Send((("INFO", "memory"),), node)))[0])
        if isinstance(info, dict) and "used_memory" in info:
            used += int(info["used_memory"])
    return f"{human_bytes(used)} used by the Redis server(s) in all (shared with any other data there)"


def _user_hash(user_id: str) -> str:
    """The hash in a user's index key name (``Layout.index``)."""
    return hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()


def redis_heal_indexes(store: Store, now: float,
                       progress: Callable[[int, int], None] | None = None) -> int:
    """Drop the user-index entries whose session is gone (expired natively by Redis, or deleted)
    from every ``<prefix>u:{…}`` index; returns how many went.

    The same rule as ``ListUser``'s healing, so it is safe while the app serves: an entry whose
    session has expired is dropped; one with no session (or another user's) is dropped only if
    it was added before ``now`` minus the Cluster's ``index_grace`` (its session may still be on
    its way to the other slot). ``progress(indexes_seen, entries_dropped)`` after each page.
    """
    from .stores import _redis_lua as lua
    from .stores._redis_plan import _check, _num, parse_hash

    plans = store.plans  # type: ignore[attr-defined]
    layout = plans.layout
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in layout.prefix)
    pattern = (escaped + "u:{" + "?" * 64 + "}").encode()
    grace = layout.index_grace if layout.cluster else 0.0
    seen = dropped = 0
    for _node, index_keys in _redis_pages(store, pattern):
        for x in index_keys:
            seen += 1
            owner_hash = x[len(layout.prefix) + 3:-1].decode("ascii")
            members: list[bytes] = list(_check(_redis_send(store, (("ZRANGE", x, 0, -1),))[0]) or [])
            if not members:
                continue
            replies = _redis_send(store, tuple(("HMGET", layout.session(m.decode()), b"m", b"e")
                                               for m in members))
            dead: list[bytes] = []
            gone: list[bytes] = []
            for member, reply in zip(members, replies, strict=True):
                m, e = _check(reply)
                found = None if m is None or e is None else parse_hash({b"m": m, b"e": e}, -math.inf)
                uid = None if found is None else found[0].meta.user_id
                owner = None if uid is None else _user_hash(uid)
                if owner != owner_hash:
                    gone.append(member)
                elif float(e) <= now:
                    dead.append(member)
            if dead or gone:
                before = _check(_redis_send(store, (("ZCARD", x),))[0])
                _redis_run(store, plans.script(lua.HEAL, [x], [_num(now - grace), len(dead), *dead, *gone]))
                after = _check(_redis_send(store, (("ZCARD", x),))[0])
                dropped += int(before) - int(after)
        if progress is not None:
            progress(seen, dropped)
    return dropped
