"""Whole-store reads for the command line: every live session, the store's size, and Redis's
user-index cleanup.

Every live session comes from the store contract's ``Scan`` operation (``Store.scan_all``):
page by page, read-only, one short read per page on the store's own connections, so an admin
command never holds a lock or a long transaction while the app serves. Each store keeps its
paging in its own module (keyset pages for SQLite and PostgreSQL, shards for files, ``SCAN``
per primary for Redis); nothing here reads a backend's tables or keys for that.

What is left here is per backend by nature: the store's size (``PRAGMA page_count``,
``pg_total_relation_size``, file sizes, Redis ``INFO memory``) and Redis's stale user-index
entries, which go through the store's own ``HEAL`` script with the same rules ``ListUser``
applies (see :func:`redis_heal_indexes`). Deletions go through ``Store.delete``/``Purge``.
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


def scan(store: Store, now: float) -> Iterator[tuple[str, Meta]]:
    """Every live session of ``store`` at ``now`` as (storage key, metadata), renewal aliases
    left out, each once (Redis's ``SCAN`` may return a key twice: the second is dropped);
    raises :class:`StoreError` for a store that cannot be scanned."""
    seen: set[str] = set()
    for key, meta in store.scan_all(now, PAGE):
        if key not in seen:
            seen.add(key)
            yield key, meta


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


def redis_info(reply: Any) -> dict[str, Any]:
    """An ``INFO`` reply as a dict: redis-py's Cluster client parses it; the store's own path
    to one server (``_redis_wire``) hands back the raw text."""
    if isinstance(reply, dict):
        return reply
    if isinstance(reply, bytes | str):
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {}


def _size_redis(store: Store) -> str | None:
    from .stores._redis_plan import Nodes, Send, _check

    def one(request: Any) -> Any:
        reply = yield request
        return reply

    used = 0
    for node in _redis_run(store, one(Nodes())):
        info = redis_info(_check(_redis_run(store, one(Send((("INFO", "memory"),), node)))[0]))
        if "used_memory" in info:
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
