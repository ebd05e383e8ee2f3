"""The PostgreSQL store's statements and operations, as pure code: no connections, no I/O.

Each operation is a generator (like psycopg's own ``generators.py``): it yields a
:class:`Step` (one SQL statement and its parameters), receives the rows that statement
returned, and finally returns the operation's result. :class:`~.postgres.PostgresStore` drives
these generators with a few lines of sync I/O on a ``ConnectionPool`` and a few lines of async
I/O on an ``AsyncConnectionPool``, so the statements and the parsing of rows exist once.

Rules kept here:
- Every request-path operation (Load, Create, Apply, Rename, Delete) is ONE statement, hence
  one round trip on an autocommit connection. Purge is one statement per batch (with
  ``report=True`` the same ``DELETE`` returns the rows it removed). Scan is one read per page
  on the primary key's index (keyset paging: ``key > cursor ORDER BY key LIMIT n``), never
  a transaction or a cursor held across pages. The one exception: a Load that meets a
  garbage row (below) deletes it with a second statement.
- Expired rows are never returned. A row past both its expiry and its absolute limit is
  *garbage* (the rule Redis applies with its TTLs: a merely idle session stays until then, so
  the request flow can still tell "expired" from "unknown"). Garbage does not linger until a
  purge (issue 8.8: a renewal alias is an ordinary row whose expiry and absolute limit are the
  end of its grace window, and must not outlive it in a backup): a Load that meets it deletes
  it, and each Rename (every renewal writes its alias just before its Rename) deletes up to
  :data:`SWEEP_BATCH` garbage rows in the same statement, through the ``absolute_at`` index
  (``SKIP LOCKED``: it never waits for a request).
- Every value goes as a parameter; the table and schema names go through ``psycopg.sql``.
- A malformed storage key never reaches the server: the generator returns before yielding.
- PostgreSQL text and jsonb cannot hold U+0000, so every string we store (field names and
  values, user id, info) goes through :func:`escape`: U+0001 becomes U+0001 U+0001 and U+0000
  becomes U+0001 "0". Strings without either character (all JSON text the codec writes, and
  nearly every name) are stored unchanged.
- Nested patches (``Delta.patch``; merge rules M1-M6 in core/patch.py) are part of the same
  one statement: each patched field's text is cast to ``jsonb``, edited by a chain of
  ``LATERAL`` steps (``jsonb_set`` for sets and for recreating parents, ``#-`` guarded by
  "every parent is a plain object" for deletes, ``||`` for appends) and written back as text.
  Keys and values are parameters (paths are ``text[]``), never SQL or a path syntax. jsonb
  cannot hold U+0000, so the field's JSON text goes through :func:`fix_json` (the escape
  ``\u0000`` becomes ``\u0001`` + ``0``, ``\u0001`` is doubled: :func:`escape` on the
  strings inside) on the way in and back on the way out. What jsonb changes in a value it
  patched (and only there): object keys come back in jsonb's order (shorter keys first), not
  insertion order; a float written in exponent form with magnitude >= 1e16 (``1e+16``) comes
  back as the integer of the same value, and ``-0.0`` as ``0.0`` (both compare equal in Python).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, TypeAlias

from psycopg import sql
from psycopg.types.json import Jsonb

from ..core import ids
from ..core.records import (
    Apply,
    Count,
    Create,
    Delete,
    Delta,
    ListUser,
    Load,
    Meta,
    Op,
    PatchDelete,
    PatchOp,
    PatchSet,
    Purge,
    PurgeReport,
    Record,
    Rename,
    Scan,
    ScanPage,
    is_renewal_alias,
    scan_start,
)
from ..errors import ConfigError, StoreError

DEFAULT_TABLE: Final = "sessionkeeper_sessions"
#: How many expired rows each Rename deletes on its way.
SWEEP_BATCH: Final = 32

# 48 characters leave room for the "_expires_at_idx" suffix within PostgreSQL's 63-byte names.
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")


def check_identifier(value: object, what: str) -> str:
    """Return ``value`` if it is a plain SQL identifier we accept, else raise ConfigError."""
    if not isinstance(value, str) or _IDENT_RE.fullmatch(value) is None:
        raise ConfigError(
            f"{what} {value!r} is not a valid name: use 1-48 characters from A-Z, a-z, 0-9 "
            "and _, not starting with a digit"
        )
    return value


# ---- strings in and out ----------------------------------------------------------------

_UNESCAPE_RE = re.compile("\x01(.)", re.DOTALL)


def escape(s: str) -> str:
    """Make ``s`` storable in PostgreSQL text/jsonb (no U+0000), reversibly."""
    if "\x00" in s or "\x01" in s:
        return s.replace("\x01", "\x01\x01").replace("\x00", "\x010")
    return s


def _unescape_one(m: re.Match[str]) -> str:
    return "\x00" if m.group(1) == "0" else m.group(1)


def unescape(s: str) -> str:
    """Inverse of :func:`escape`."""
    if "\x01" in s:
        return _UNESCAPE_RE.sub(_unescape_one, s)
    return s


# ---- nested patches ---------------------------------------------------------------------

# The escape for jsonb in JSON text (see the module docstring). Escaped backslashes are moved
# out of the way first (U+0002 never occurs raw in JSON text), so that every "\u0000" left is
# a real escape; Python's and PostgreSQL's replace() both scan left to right.
_FIX_SQL = (r"replace(replace(replace(replace({e}, '\\', chr(2)), '\u0001', '\u0001\u0001'), "
            r"'\u0000', '\u00010'), chr(2), '\\')")
_UNFIX_SQL = (r"replace(replace(replace(replace(replace({e}, '\\', chr(2)), '\u0001\u0001', chr(3)), "
              r"'\u00010', '\u0000'), chr(3), '\u0001'), chr(2), '\\')")


def fix_json(text: str) -> str:
    """Python's twin of the SQL escape: JSON text that jsonb can hold (no ``\\u0000``)."""
    if "\\u000" not in text:
        return text
    return (text.replace("\\\\", "\x02").replace("\\u0001", "\\u0001\\u0001")
            .replace("\\u0000", "\\u00010").replace("\x02", "\\\\"))


def _isobj(e: str) -> str:
    return f"(jsonb_typeof({e}) = 'object' AND NOT ({e}) ? '__sk')"


def _obj(e: str) -> str:
    return f"CASE WHEN {_isobj(e)} THEN {e} ELSE '{{}}'::jsonb END"


def _field_chain(name: str, ops: Sequence[PatchOp]) -> tuple[str, list[Any]]:
    """A scalar subquery: the field's new text (NULL: it stays missing), and its parameters.

    Each op is one or more ``LATERAL`` steps over the previous step's ``x`` (so no
    expression is repeated inside another: the text stays linear in the number of steps).
    """
    params: list[Any] = [escape(name)]
    steps: list[str] = []

    def step(expr: str, *args: Any) -> None:
        steps.append(expr.replace("X", f"s{len(steps)}.x"))
        params.extend(args)

    def parents(path: tuple[str, ...]) -> None:
        step(_obj("X"))
        for i in range(1, len(path)):
            prefix = [escape(k) for k in path[:i]]
            # _obj() names its argument three times, so its path parameter goes three times
            step(f"jsonb_set(X, %s::text[], {_obj('(X #> %s::text[])')})", prefix, prefix, prefix, prefix)

    for op in ops:
        path = [escape(k) for k in op.path]
        if isinstance(op, PatchSet):
            parents(op.path)
            step("jsonb_set(X, %s::text[], %s::jsonb)", path, fix_json(op.value))
        elif isinstance(op, PatchDelete):
            conds = [_isobj("X")] + [_isobj("(X #> %s::text[])")] * (len(path) - 1)
            prefixes = [path[:i] for i in range(1, len(path)) for _twice in (0, 1)]  # _isobj: 2x
            step(f"CASE WHEN {' AND '.join(conds)} THEN X #- %s::text[] ELSE X END", *prefixes, path)
        else:
            items = fix_json(op.items)
            if not path:
                step("CASE WHEN jsonb_typeof(X) = 'array' THEN X || %s::jsonb ELSE %s::jsonb END",
                     items, items)
                continue
            parents(op.path)
            step("jsonb_set(X, %s::text[], CASE WHEN jsonb_typeof(X #> %s::text[]) = 'array' "
                 "THEN (X #> %s::text[]) || %s::jsonb ELSE %s::jsonb END)", path, path, path, items, items)
    # OFFSET 0 keeps the planner from pulling the steps up into one expression, in which each
    # reference to x would repeat the step before it (exponential in the number of steps).
    lateral = "".join(f", LATERAL (SELECT {e} AS x OFFSET 0) s{i + 1}" for i, e in enumerate(steps))
    first = _FIX_SQL.format(e="(data ->> %s::text)")
    text = (f"(SELECT {_UNFIX_SQL.format(e=f's{len(steps)}.x::text')} "  # noqa: S608 - no values
            f"FROM (SELECT ({first})::jsonb AS x OFFSET 0) s0{lateral})")
    return text, params


def nested_patch(delta: Delta) -> tuple[sql.Composable, list[Any]]:
    """The ``data`` expression of a delta with nested patches, and all its parameters (they
    replace :func:`_patch_params`)."""
    parts: list[str] = []
    params: list[Any] = _patch_params(delta)
    for name, ops in delta.patch.items():
        chain, chain_params = _field_chain(name, ops)
        parts.append(f"%s::text, {chain}")
        params += [escape(name), *chain_params]
    # jsonb_strip_nulls: a field that stays missing (only deletes) is not written as null;
    # stored field values are strings, so nothing else is null at that level.
    expr = f"(data - %s::text[]) || %s::jsonb || jsonb_strip_nulls(jsonb_build_object({', '.join(parts)}))"
    return sql.SQL(expr), params


# ensure_ascii=False: non-ASCII text travels as UTF-8, not as six-byte \\uXXXX escapes.
_dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


def _jsonb_strings(mapping: Mapping[str, str]) -> Jsonb:
    return Jsonb({escape(k): escape(v) for k, v in mapping.items()}, dumps=_dumps)


def _field_value(v: Any) -> str:
    # Rows we wrote hold strings; a hand-written non-string value reads as its JSON text.
    return unescape(v) if isinstance(v, str) else _dumps(v)


def _fields(data: Any) -> dict[str, str]:
    if not isinstance(data, dict):
        raise StoreError("corrupt session row: data is not a JSON object")
    return {unescape(k): _field_value(v) for k, v in data.items()}


# ---- metadata columns ------------------------------------------------------------------

META_COLUMNS: Final = ("user_id", "created_at", "last_seen", "expires_at", "absolute_at", "auth_at", "info")
# Casts make each parameter's type explicit (a NULL auth_at in INSERT ... SELECT needs one).
_META_CASTS: Final = ("text", "float8", "float8", "float8", "float8", "float8", "jsonb")


def meta_params(m: Meta) -> list[Any]:
    """The metadata as parameters, in :data:`META_COLUMNS` order."""
    return [
        None if m.user_id is None else escape(m.user_id),
        float(m.created_at),
        float(m.last_seen),
        float(m.expires_at),
        float(m.absolute_at),
        None if m.auth_at is None else float(m.auth_at),
        _jsonb_strings(m.info),
    ]


def meta_from_row(row: Sequence[Any]) -> Meta:
    """A :class:`Meta` from the :data:`META_COLUMNS` of a row."""
    user_id, created_at, last_seen, expires_at, absolute_at, auth_at, info = row
    if not isinstance(info, dict):
        raise StoreError("corrupt session row: info is not a JSON object")
    return Meta(
        created_at=float(created_at),
        last_seen=float(last_seen),
        expires_at=float(expires_at),
        absolute_at=float(absolute_at),
        user_id=None if user_id is None else unescape(user_id),
        auth_at=None if auth_at is None else float(auth_at),
        info={unescape(str(k)): _field_value(v) for k, v in info.items()},
    )


# ---- statements ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Step:
    """One statement to run. ``params=None`` sends it with the simple-query protocol
    (several statements in one implicit transaction, never prepared)."""

    query: sql.Composed
    params: Sequence[Any] | None

    @property
    def prepare(self) -> bool | None:
        """psycopg's ``prepare`` flag: its default with parameters, never for simple queries."""
        return None if self.params is not None else False


Rows: TypeAlias = list[tuple[Any, ...]]
Plan: TypeAlias = Generator[Step, Rows, Any]


def _q(text: str, **parts: sql.Composable) -> sql.Composed:
    return sql.SQL(text).format(**parts)


def _table(table: str, schema: str | None) -> sql.Identifier:
    return sql.Identifier(schema, table) if schema else sql.Identifier(table)


def ddl_sql(table: str = DEFAULT_TABLE, *, schema: str | None = None, unlogged: bool = False) -> sql.Composed:
    """The DDL as a composed statement (see :func:`sessionkeeper.stores.postgres.ddl`)."""
    check_identifier(table, "table")
    if schema is not None:
        check_identifier(schema, "schema")
    parts = {
        "t": _table(table, schema),
        "unlogged": sql.SQL("UNLOGGED " if unlogged else ""),
        "expires_idx": sql.Identifier(f"{table}_expires_at_idx"),
        "absolute_idx": sql.Identifier(f"{table}_absolute_at_idx"),
        "user_idx": sql.Identifier(f"{table}_user_id_idx"),
    }
    create_schema = (
        _q("CREATE SCHEMA IF NOT EXISTS {s};\n", s=sql.Identifier(schema)) if schema else sql.SQL("")
    )
    # key: COLLATE "C" compares bytes (faster than a locale; keys are hex anyway).
    # The expires_at index serves Purge and Count, the absolute_at one the sweep of garbage
    # rows on Rename; the user_id index is partial, as most
    # sessions are anonymous.
    body = _q(
        "CREATE {unlogged}TABLE IF NOT EXISTS {t} (\n"
        "    key         text COLLATE \"C\" PRIMARY KEY CHECK (key ~ '^[0-9a-f]{{64}}$'),\n"
        "    data        jsonb NOT NULL DEFAULT '{{}}',\n"
        "    user_id     text,\n"
        "    created_at  double precision NOT NULL,\n"
        "    last_seen   double precision NOT NULL,\n"
        "    expires_at  double precision NOT NULL,\n"
        "    absolute_at double precision NOT NULL,\n"
        "    auth_at     double precision,\n"
        "    info        jsonb NOT NULL DEFAULT '{{}}'\n"
        ");\n"
        "CREATE INDEX IF NOT EXISTS {expires_idx} ON {t} (expires_at);\n"
        "CREATE INDEX IF NOT EXISTS {absolute_idx} ON {t} (absolute_at);\n"
        "CREATE INDEX IF NOT EXISTS {user_idx} ON {t} (user_id) WHERE user_id IS NOT NULL;\n",
        **parts,
    )
    return sql.Composed([create_schema, body])


class Statements:
    """Every statement of one store, composed once for its table."""

    def __init__(self, table: str, schema: str | None = None, unlogged: bool = False) -> None:
        self.table = check_identifier(table, "table")
        self.schema = None if schema is None else check_identifier(schema, "schema")
        t = _table(table, schema)
        self.ddl = ddl_sql(table, schema=schema, unlogged=unlogged)
        # A lock key per table: concurrent first uses (several processes starting at once)
        # run the DDL one at a time, as CREATE ... IF NOT EXISTS alone may race in the catalog.
        lock = int.from_bytes(hashlib.sha256(f"sessionkeeper:{schema}.{table}".encode()).digest()[:8],
                              "big", signed=True)
        self.ensure = sql.Composed([
            _q("SET LOCAL client_min_messages TO warning;\nSELECT pg_advisory_xact_lock({lock});\n",
               lock=sql.Literal(lock)),
            self.ddl,
        ])

        cols = sql.SQL(", ".join(META_COLUMNS))
        set_meta = sql.SQL(", ").join(
            _q(f"{c} = %s::{cast}") for c, cast in zip(META_COLUMNS, _META_CASTS, strict=True)
        )
        meta_values = sql.SQL(", ").join(sql.SQL(f"%s::{cast}") for cast in _META_CASTS)
        patch = sql.SQL("(data - %s::text[]) || %s::jsonb")
        live = sql.SQL("key = %s AND expires_at > %s")

        # The row whatever its expiry (first columns: is it live? within its absolute limit?),
        # so that garbage can go at once.
        self.load = _q("SELECT expires_at > %s, absolute_at > %s, data, {cols} FROM {t} WHERE key = %s",
                       cols=cols, t=t)
        self.delete_garbage = _q(
            "DELETE FROM {t} WHERE key = %s AND expires_at <= %s AND absolute_at <= %s", t=t
        )
        self.create = _q(
            "INSERT INTO {t} (key, data, {cols}) VALUES (%s, %s::jsonb, {values}) "
            "ON CONFLICT (key) DO NOTHING RETURNING 1",
            t=t, cols=cols, values=meta_values,
        )
        # (touches fields, has meta) -> statement. Neither: just report whether it is live.
        self.apply: dict[tuple[bool, bool], sql.Composed] = {
            (False, False): _q("SELECT 1 FROM {t} WHERE {live}", t=t, live=live),
            (True, False): _q("UPDATE {t} SET data = {patch} WHERE {live} RETURNING 1",
                              t=t, patch=patch, live=live),
            (False, True): _q("UPDATE {t} SET {set_meta} WHERE {live} RETURNING 1",
                              t=t, set_meta=set_meta, live=live),
            (True, True): _q("UPDATE {t} SET data = {patch}, {set_meta} WHERE {live} RETURNING 1",
                             t=t, patch=patch, set_meta=set_meta, live=live),
        }
        # One statement: the DELETE and the INSERT commit together or not at all. The NOT
        # EXISTS keeps a taken new key from costing the old session; the INSERT has no ON
        # CONFLICT so that, should another writer take the new key in between, the whole
        # statement fails and the old session stays. "swept" deletes a bounded batch of
        # garbage rows (old renewal aliases): disjoint from "old", which only takes a live row.
        rename = (
            "WITH old AS (DELETE FROM {t} WHERE key = %s AND expires_at > %s "
            "AND NOT EXISTS (SELECT 1 FROM {t} WHERE key = %s) RETURNING data, {cols}), "
            "swept AS (DELETE FROM {t} WHERE key IN (SELECT key FROM {t} WHERE absolute_at <= %s "
            "AND expires_at <= %s "
            "LIMIT {batch} FOR UPDATE SKIP LOCKED)) "
            "INSERT INTO {t} (key, data, {cols}) SELECT %s, {patch}, {values} FROM old RETURNING 1"
        )
        self._parts = {"t": t, "set_meta": set_meta, "live": live, "cols": cols,
                       "meta_values": meta_values}
        self._rename_text = rename
        self.rename: dict[bool, sql.Composed] = {
            False: _q(rename, t=t, cols=cols, patch=patch, values=cols, batch=sql.Literal(SWEEP_BATCH)),
            True: _q(rename, t=t, cols=cols, patch=patch, values=meta_values, batch=sql.Literal(SWEEP_BATCH)),
        }
        self.delete = _q("DELETE FROM {t} WHERE key = %s RETURNING 1", t=t)
        self.list_user = _q(
            "SELECT key, {cols} FROM {t} WHERE user_id = %s AND expires_at > %s ORDER BY key",
            cols=cols, t=t,
        )
        # Batches through the expires_at index; SKIP LOCKED steps over rows a request is
        # writing right now instead of waiting for them, and each batch commits on its own.
        self.purge = _q(
            "WITH gone AS (DELETE FROM {t} WHERE key IN (SELECT key FROM {t} WHERE expires_at <= %s "
            "LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING 1) SELECT count(*) FROM gone",
            t=t,
        )
        self.count = _q("SELECT count(*) FROM {t} WHERE expires_at > %s", t=t)
        # A purge report and a scan read a row's key, its data only where the metadata may be
        # a renewal alias's (the metadata and field names then decide, in Python: a session's
        # data is not sent for nothing), and its metadata.
        reported = _q("key, CASE WHEN user_id IS NULL AND expires_at = absolute_at AND "
                      "created_at = last_seen THEN data END, {cols}", cols=cols)
        self.purge_report = _q(
            "DELETE FROM {t} WHERE key IN (SELECT key FROM {t} WHERE expires_at <= %s "
            "LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING {reported}",
            t=t, reported=reported,
        )
        # A window of limit + 1 keys (the extra one only says whether a page follows), live or
        # not, so that each read is bounded even when most of the table has expired.
        self.scan = _q("SELECT expires_at > %s, {reported} FROM {t} WHERE key > %s ORDER BY key LIMIT %s",
                       t=t, reported=reported)

    def apply_nested(self, patch: sql.Composable, meta: bool) -> sql.Composed:
        """The Apply statement for a delta with nested patches (``patch``: its data expression)."""
        p = self._parts
        if meta:
            return _q("UPDATE {t} SET data = {patch}, {set_meta} WHERE {live} RETURNING 1",
                      t=p["t"], patch=patch, set_meta=p["set_meta"], live=p["live"])
        return _q("UPDATE {t} SET data = {patch} WHERE {live} RETURNING 1",
                  t=p["t"], patch=patch, live=p["live"])

    def rename_nested(self, patch: sql.Composable, meta: bool) -> sql.Composed:
        """The Rename statement for a delta with nested patches."""
        p = self._parts
        return _q(self._rename_text, t=p["t"], cols=p["cols"], patch=patch,
                  values=p["meta_values"] if meta else p["cols"], batch=sql.Literal(SWEEP_BATCH))


# ---- operations ------------------------------------------------------------------------

def _require_key(key: str, what: str) -> None:
    if not ids.is_valid_key(key):
        raise StoreError(f"{what} is not a storage key (64 lowercase hex characters)")


def _patch_params(delta: Delta) -> list[Any]:
    return [sorted(escape(k) for k in delta.delete), _jsonb_strings(delta.set)]


def _load(st: Statements, op: Load) -> Plan:
    if not ids.is_valid_key(op.key):
        return None
    rows = yield Step(st.load, (op.now, op.now, op.key))
    if not rows:
        return None
    live, within_absolute, data, *meta = rows[0]
    if not live:
        if not within_absolute:
            # Garbage (an old renewal alias above all): it goes now, not at the next purge.
            yield Step(st.delete_garbage, (op.key, op.now, op.now))
        return None
    return Record(_fields(data), meta_from_row(meta))


def _create(st: Statements, op: Create) -> Plan:
    _require_key(op.key, "Create key")
    params = [op.key, _jsonb_strings(op.record.fields), *meta_params(op.record.meta)]
    return bool((yield Step(st.create, params)))


def _apply(st: Statements, op: Apply) -> Plan:
    if not ids.is_valid_key(op.key):
        return False
    d = op.delta
    statement = st.apply[d.touches_fields, d.meta is not None]
    params: list[Any] = _patch_params(d) if d.touches_fields else []
    if d.patch:
        expr, params = nested_patch(d)
        statement = st.apply_nested(expr, d.meta is not None)
    if d.meta is not None:
        params += meta_params(d.meta)
    params += [op.key, op.now]
    return bool((yield Step(statement, params)))


def _rename(st: Statements, op: Rename) -> Plan:
    if not ids.is_valid_key(op.old):
        return False
    _require_key(op.new, "Rename target")
    statement = st.rename[op.delta.meta is not None]
    data_params = _patch_params(op.delta)
    if op.delta.patch:
        expr, data_params = nested_patch(op.delta)
        statement = st.rename_nested(expr, op.delta.meta is not None)
    params: list[Any] = [op.old, op.now, op.new, op.now, op.now, op.new, *data_params]
    if op.delta.meta is not None:
        params += meta_params(op.delta.meta)
    return bool((yield Step(statement, params)))


def _delete(st: Statements, op: Delete) -> Plan:
    if not ids.is_valid_key(op.key):
        return False
    return bool((yield Step(st.delete, (op.key,))))


def _list_user(st: Statements, op: ListUser) -> Plan:
    rows = yield Step(st.list_user, (escape(op.user_id), op.now))
    return [(row[0], meta_from_row(row[1:])) for row in rows]


def _purge(st: Statements, op: Purge) -> Plan:
    if op.batch < 1:
        raise StoreError(f"Purge batch must be at least 1, not {op.batch}")
    removed = 0
    sessions: list[tuple[str, Meta]] = []
    while True:
        if op.report:
            rows = yield Step(st.purge_report, (op.now, op.batch))
            n = len(rows)
            sessions += _named(rows)
        else:
            rows = yield Step(st.purge, (op.now, op.batch))
            n = int(rows[0][0])
        removed += n
        if n < op.batch:
            return PurgeReport(removed, tuple(sessions)) if op.report else removed


def _scan(st: Statements, op: Scan) -> Plan:
    after = scan_start(op.cursor, op.limit)
    rows = yield Step(st.scan, (op.now, after, op.limit + 1))
    read = rows[: op.limit]
    found = _named([row[1:] for row in read if row[0]])
    return ScanPage(tuple(found), str(read[-1][1]) if len(rows) > op.limit else "")


def _named(rows: Rows) -> list[tuple[str, Meta]]:
    """The sessions among rows of ``Statements``'s reported columns (key, data if it may be
    an alias's, metadata), renewal aliases and rows it cannot read (changed by hand) left out."""
    out = []
    for key, data, *cols in rows:
        try:
            meta = meta_from_row(cols)
            if data is not None and is_renewal_alias(_fields(data), meta):
                continue
        except (StoreError, TypeError, ValueError):
            continue
        out.append((str(key), meta))
    return out


def _count(st: Statements, op: Count) -> Plan:
    rows = yield Step(st.count, (op.now,))
    return int(rows[0][0])


def plan(st: Statements, op: Op) -> Plan:
    """The generator that performs ``op``."""
    match op:
        case Load():
            return _load(st, op)
        case Apply():
            return _apply(st, op)
        case Create():
            return _create(st, op)
        case Rename():
            return _rename(st, op)
        case Delete():
            return _delete(st, op)
        case ListUser():
            return _list_user(st, op)
        case Purge():
            return _purge(st, op)
        case Count():
            return _count(st, op)
        case Scan():
            return _scan(st, op)
    raise StoreError(f"the PostgreSQL store cannot perform {op!r}")


def after(first: Iterable[Step], then: Plan) -> Plan:
    """``then``, preceded by ``first`` (whose rows are dropped), but only if ``then`` has a
    statement to run: an operation answered without the server needs no preparation."""
    try:
        step = next(then)
    except StopIteration as stop:
        return stop.value
    yield from first
    while True:
        rows = yield step
        try:
            step = then.send(rows)
        except StopIteration as stop:
            return stop.value
