"""Bulk fills for bench/scale.py: many sessions of one realistic shape, written fast.

SQLite and PostgreSQL rows go in with ``executemany`` in one transaction and ``COPY``, in the
columns of each store's published schema; a row of each fill is then read back through the
store's own ``load`` and compared with the record it stands for, so the rows are sessions the
store really reads, not look-alikes. Redis sessions are written by the store's own plans
(``RedisStore.plans.create``, the Lua script a request's Create runs), many per pipeline:
the same keys, hashes, TTLs and user indexes a request would make.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

from sessionkeeper import Store
from sessionkeeper.core.records import Meta, Record

IDLE = 30 * 60
ABSOLUTE = 12 * 3600
CART = json.dumps([{"sku": "A-1001", "qty": 2}, {"sku": "B-2002", "qty": 1}])
INFO_UA = "Firefox on Linux"


def record(created: float, *, user_id: str | None, expires_at: float | None = None) -> Record:
    """One session as a small web shop keeps it: a CSRF token, a two-line cart, a theme and
    the last page (about 200 bytes of fields), plus the metadata a login records."""
    fields = {
        "_csrf": json.dumps(secrets.token_urlsafe(32)),
        "cart": CART,
        "theme": '"dark"',
        "last_page": '"/products/1042"',
    }
    absolute_at = created + ABSOLUTE
    meta = Meta(
        created_at=created,
        last_seen=created,
        expires_at=min(created + IDLE, absolute_at) if expires_at is None else expires_at,
        absolute_at=absolute_at,
        user_id=user_id,
        auth_at=created if user_id is not None else None,
        info={"ip": "203.0.113.57", "ua": INFO_UA, "net": "203.0.113.0/24", "rot": repr(created)},
    )
    return Record(fields, meta)


def new_key() -> str:
    """A storage key (64 lowercase hex, as sha256 of a token would be)."""
    return os.urandom(32).hex()


def expired_rows(n: int, now: float, signed_in_share: float) -> Iterator[tuple[str, Record]]:
    """``n`` sessions that all expired during the last day, in random expiry order."""
    every = max(1, round(1 / signed_in_share)) if signed_in_share > 0 else 0
    for i in range(n):
        created = now - 2 * 86400 + secrets.randbelow(86400 * 1000) / 1000
        user = f"user{i}" if every and i % every == 0 else None
        yield new_key(), record(created, user_id=user)


def expired_sql_rows(n: int, now: float, signed_in_share: float) -> Iterator[tuple[Any, ...]]:
    """:func:`expired_rows` as :func:`sql_row` tuples, from a text template (a million
    ``Record`` objects and ``json.dumps`` calls cost more than the inserts themselves).
    :func:`template_matches` proves the template writes what ``sql_row`` would."""
    every = max(1, round(1 / signed_in_share)) if signed_in_share > 0 else 0
    data = _DATA_TEMPLATE
    info = _INFO_TEMPLATE
    base = now - 2 * 86400
    token = secrets.token_urlsafe
    rand = secrets.randbelow
    for i in range(n):
        created = base + rand(86_400_000) / 1000
        user = f"user{i}" if every and i % every == 0 else None
        yield (os.urandom(32).hex(), data % token(32), user, created, created, created + IDLE,
               created + ABSOLUTE, created if user is not None else None, info % repr(created))


def sql_row(key: str, rec: Record) -> tuple[Any, ...]:
    """The columns both SQL schemas share, in order: key, data, user_id, created_at, last_seen,
    expires_at, absolute_at, auth_at, info (data and info as JSON text)."""
    m = rec.meta
    return (key, json.dumps(dict(rec.fields)), m.user_id, m.created_at, m.last_seen, m.expires_at,
            m.absolute_at, m.auth_at, json.dumps(dict(m.info)))


def _templates() -> tuple[str, str]:
    # Placeholders that JSON writes as they are (as do URL-safe tokens and float reprs).
    rec = record(0.0, user_id=None)
    data = json.dumps({**rec.fields, "_csrf": json.dumps("CSRFTOKEN")})
    info = json.dumps({**rec.meta.info, "rot": "ROTATEDAT"})
    return (data.replace("%", "%%").replace("CSRFTOKEN", "%s"),
            info.replace("%", "%%").replace("ROTATEDAT", "%s"))


_DATA_TEMPLATE, _INFO_TEMPLATE = _templates()


def row_record(row: tuple[Any, ...]) -> tuple[str, Record]:
    """The storage key and the record a template row stands for; raises if the row is not
    exactly what :func:`sql_row` writes for that record."""
    key, data, user, created, _, _, _, _, _ = row
    rec = record(created, user_id=user)
    rec = Record({**rec.fields, "_csrf": json.loads(data)["_csrf"]}, rec.meta)
    if row != sql_row(key, rec):
        raise SystemExit(f"the row template does not write what sql_row writes: {row!r}")
    return key, rec


COLUMNS = ("key", "data", "user_id", "created_at", "last_seen", "expires_at", "absolute_at", "auth_at",
           "info")


def check_readable(store: Store, key: str, rec: Record) -> None:
    """The store reads the bulk row back as the record it stands for."""
    got = store.load(key, rec.meta.created_at)
    if got != rec:
        raise SystemExit(f"{store.name}: a bulk-inserted row does not read back as written: {got!r}")


def fill_sqlite(path: str, rows: Iterator[tuple[Any, ...]], progress: Callable[[int], None]) -> int:
    """executemany in one transaction on a connection of our own (WAL, like the store's)."""
    import sqlite3

    from sessionkeeper.stores.sqlite import TABLE

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        # A bulk load's own connection: a page cache big enough for the random-key index
        # (the default 2 MB would re-read its pages from the OS for every few rows).
        conn.execute("PRAGMA cache_size = -262144")
        conn.execute("BEGIN IMMEDIATE")
        sql = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        done = 0
        chunk: list[tuple[Any, ...]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == 50_000:
                conn.executemany(sql, chunk)
                done += len(chunk)
                chunk.clear()
                progress(done)
        conn.executemany(sql, chunk)
        done += len(chunk)
        conn.execute("COMMIT")
        progress(done)
        return done
    finally:
        conn.close()


def fill_postgres(conninfo: str, table: str, rows: Iterator[tuple[Any, ...]],
                  progress: Callable[[int], None]) -> int:
    """COPY ... FROM STDIN (text format: jsonb columns parse the JSON text server side)."""
    import psycopg
    from psycopg import sql

    done = 0
    with psycopg.connect(conninfo, autocommit=True) as conn, conn.cursor() as cur:
        stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))
        with cur.copy(stmt) as copy:
            for row in rows:
                copy.write_row(row)
                done += 1
                if done % 50_000 == 0:
                    progress(done)
        progress(done)
    return done


def fill_redis(store: Any, n: int, now: float, signed_in_share: float, progress: Callable[[int], None],
               pipeline: int = 1000) -> list[str]:
    """``n`` live sessions through the store's own Create plans, ``pipeline`` per round trip.

    Each plan yields one EVALSHA (one command); the commands of a batch go out as one write
    and each reply goes back into its plan, which checks it (a refused create stops the run).
    The commands are packed here (RESP is a few lines) rather than by redis-py, whose
    pure-Python packing of ~20 arguments per command cost more than everything else together.
    Returns a sample of the keys written.
    """
    from sessionkeeper.stores import _redis_lua as lua
    from sessionkeeper.stores._redis_plan import Send

    client = store._sync_client()
    if client.script_load(lua.CREATE.source) != lua.CREATE.sha:
        raise SystemExit("redis: the server computes another SHA for the create script")
    every = max(1, round(1 / signed_in_share)) if signed_in_share > 0 else 0
    sample: list[str] = []
    done = 0
    conn = client.connection_pool.get_connection()
    try:
        while done < n:
            size = min(pipeline, n - done)
            plans = []
            packed = []
            for i in range(done, done + size):
                key = new_key()
                created = now - secrets.randbelow(600_000) / 1000  # seen in the last 10 minutes
                rec = record(created, user_id=f"user{i}" if every and i % every == 0 else None)
                plan = store.plans.create(key, rec)
                request = next(plan)
                assert isinstance(request, Send) and len(request.cmds) == 1
                assert request.cmds[0][0] == "EVALSHA"
                plans.append(plan)
                packed.append(_pack(request.cmds[0]))
                if len(sample) < 1000 and i % max(1, n // 1000) == 0:
                    sample.append(key)
            conn.send_packed_command([b"".join(packed)], check_health=False)
            for plan in plans:
                reply = conn.read_response()  # an error reply raises: the run stops
                try:
                    plan.send([reply])
                except StopIteration as stop:
                    if stop.value is True:
                        continue
                raise SystemExit("redis: the store refused to create a session under a fresh key")
            done += size
            progress(done)
    except BaseException:
        conn.disconnect()  # replies may be left unread
        raise
    finally:
        client.connection_pool.release(conn)
    return sample


def _pack(cmd: tuple[Any, ...]) -> bytes:
    """One command in RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(cmd)]
    for arg in cmd:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = b"%d" % arg
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started
