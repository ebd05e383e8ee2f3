"""PostgreSQL store: one row per session, fields in a ``jsonb`` object, psycopg 3 pools.

``open_store("postgresql://user:password@host:5432/dbname")``

Options (URL query or keyword arguments; keywords win):

``table``
    table name (default ``sessionkeeper_sessions``); ``schema``: its schema (default: the
    connection's ``search_path``).
``create_schema``
    Default ``true``: on the first use of the store (or :meth:`~.base.Store.ping`), if the
    table is missing, create it and its indexes (``IF NOT EXISTS``, serialized by an advisory
    lock, so many processes may start at once). An existing table is only looked up (one
    ``to_regclass`` query, once per process), so a role without CREATE rights works too.
    ``false``: the table comes from your migrations (:meth:`PostgresStore.ddl`); if it is
    missing, the first use fails with a :class:`~sessionkeeper.errors.StoreError` that says
    so, not an obscure "relation does not exist" in the middle of a request.
``unlogged``
    ``true``: create an UNLOGGED table: faster writes, but PostgreSQL empties it after a crash
    (everyone signs in again). Only matters when the table is created.
``min_size``, ``max_size``
    connections kept open / at most (default 1 and 10), per process and per face (sync pool,
    async pool).
``pool_timeout``
    seconds an operation waits for a connection before failing with
    :class:`~sessionkeeper.errors.StoreUnavailable` (default 5): a burst larger than the pool
    queues for a free connection; the error, if the wait runs out, says whether every
    connection was busy or the server could not be reached.
``connect_timeout``
    seconds to establish one connection (default 5).
``reconnect_timeout``
    seconds the pool keeps retrying a failed connection in the background before it leaves
    reconnecting to the next operation (default 2). Short, so that when the server comes back
    the next request connects at once instead of after a long back-off.
``prepare_threshold``
    psycopg's: executions before a statement is prepared server-side (default 5); ``none``
    to never prepare, e.g. behind PgBouncer < 1.21 in transaction mode.

Any other query parameter (``sslmode``, ``application_name``, ``options``, keepalives …) goes
to libpq unchanged.

How it talks to the server: each of Load, Create, Apply, Rename and Delete is one statement
in one round trip on an autocommit connection (no BEGIN/COMMIT), and the pools are configured
with no checkout check, no reset and no configure statements. The statements and the parsing
of rows live once, in :mod:`._postgres_sql`; this module only runs them, sync and async.
"""

from __future__ import annotations

import asyncio
import select
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, urlencode, urlunsplit

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
    from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolClosed, PoolTimeout
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "the PostgreSQL store needs psycopg 3 and psycopg-pool: pip install 'sessionkeeper[postgres]'"
    ) from exc

from ..core.records import Op
from ..errors import ConfigError, StoreError, StoreUnavailable
from . import _postgres_sql as q
from ._postgres_sql import DEFAULT_TABLE, Step
from .base import Store

__all__ = ["DEFAULT_TABLE", "PostgresStore", "ddl"]

_TABLE_EXISTS = sql.Composed([sql.SQL("SELECT to_regclass(%s) IS NOT NULL")])

def ddl(table: str = DEFAULT_TABLE, *, schema: str | None = None, unlogged: bool = False) -> str:
    """The SQL that creates the session table and its indexes, for your migrations.

    It is exactly what ``create_schema=true`` runs (every statement is ``IF NOT EXISTS``).
    """
    return q.ddl_sql(table, schema=schema, unlogged=unlogged).as_string()


# ---- options ---------------------------------------------------------------------------

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_OPTIONS = frozenset({
    "table", "schema", "create_schema", "unlogged", "min_size", "max_size", "pool_timeout",
    "connect_timeout", "reconnect_timeout", "prepare_threshold",
})


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ConfigError(f"PostgreSQL option {name}={value!r} must be true or false")


def _int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"PostgreSQL option {name}={value!r} must be a whole number")
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"PostgreSQL option {name}={value!r} must be a whole number") from None
    if number < minimum:
        raise ConfigError(f"PostgreSQL option {name}={value!r} must be at least {minimum}")
    return number


def _seconds(name: str, value: Any, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"PostgreSQL option {name}={value!r} must be a number of seconds")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"PostgreSQL option {name}={value!r} must be a number of seconds") from None
    if not number >= minimum or number == float("inf"):  # also refuses NaN
        raise ConfigError(f"PostgreSQL option {name}={value!r} must be a finite number >= {minimum:g}")
    return number


def _first_line(exc: BaseException) -> str:
    # The first line only: later lines (DETAIL, CONTEXT) may quote parameter values.
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _stale(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """True if an idle pooled connection is dead, found without a round trip.

    An idle connection has nothing to read unless the server said goodbye (a FATAL message
    on termination or shutdown, then EOF), so a readable socket marks it for replacement.
    This keeps the first requests after a server restart from failing on old connections.
    """
    if conn.closed:
        return True
    try:
        fd = conn.pgconn.socket
    except psycopg.Error:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)  # pragma: no cover - Windows
    return bool(readable)


def _has_rows(cur: Any) -> bool:
    """Whether the statement returned rows to fetch. Not ``cur.description is not None``:
    that builds a ``Column`` object per column on every call (a fifth of a Load's CPU in
    psycopg 3.3, measured with cProfile); the result's field count says the same."""
    res = cur.pgresult
    return res is not None and res.nfields > 0


class PostgresStore(Store):
    """Sessions in a PostgreSQL table, shared by every process that uses the same table.

    The async face opens its pool in the first event loop that uses it; use one store per
    event loop and ``await store.aclose()`` before that loop ends (ASGI servers: on lifespan
    shutdown), so that the pool's background tasks end cleanly.
    """

    name = "postgresql"

    def __init__(
        self,
        conninfo: str = "",
        *,
        table: str = DEFAULT_TABLE,
        schema: str | None = None,
        create_schema: bool = True,
        unlogged: bool = False,
        min_size: int = 1,
        max_size: int = 10,
        pool_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        reconnect_timeout: float = 2.0,
        prepare_threshold: int | None = 5,
    ) -> None:
        try:
            params = conninfo_to_dict(conninfo)
        except psycopg.Error as exc:
            raise ConfigError(f"invalid PostgreSQL connection string: {_first_line(exc)}") from None
        self._statements = q.Statements(table, schema, _bool("unlogged", unlogged))
        self._create_schema = _bool("create_schema", create_schema)
        self._min_size = _int("min_size", min_size, 0)
        self._max_size = _int("max_size", max_size, max(1, self._min_size))
        self._pool_timeout = _seconds("pool_timeout", pool_timeout, 0.001)
        connect = _seconds("connect_timeout", connect_timeout, 0.001)
        reconnect = _seconds("reconnect_timeout", reconnect_timeout, 0)
        if prepare_threshold is not None:
            prepare_threshold = _int("prepare_threshold", prepare_threshold, 0)

        # Named without the password, for messages and the pool's log lines.
        host = params.get("host") or params.get("hostaddr") or "localhost"
        port = params.get("port") or 5432
        user = str(params.get("user") or "")
        dbname = params.get("dbname") or user
        self._address = f"postgresql://{user + '@' if user else ''}{host}:{port}/{dbname}"
        self.where = self._address  # messages start with it, as the Redis store's do

        connect_kwargs: dict[str, Any] = {
            "autocommit": True,  # one statement = one transaction = one round trip
            "prepare_threshold": prepare_threshold,
            "connect_timeout": max(1, round(connect)),  # libpq takes whole seconds
        }
        if "application_name" not in params:
            connect_kwargs["application_name"] = "sessionkeeper"
        # No check/reset/configure callbacks: taking a connection sends nothing.
        self._pool_args: dict[str, Any] = {
            "conninfo": conninfo,
            "kwargs": connect_kwargs,
            "min_size": self._min_size,
            "max_size": self._max_size,
            "timeout": self._pool_timeout,
            "reconnect_timeout": reconnect,
            "name": f"sessionkeeper {self.where}",
            "open": False,
        }
        self._lock = threading.Lock()
        self._closed = False
        self._ready = False  # the table has been seen (or made) by this store
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._apool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._apool_open = False

    @classmethod
    def from_url(cls, url: SplitResult, **options: Any) -> PostgresStore:
        """Build from ``postgresql://`` URL parts; our options leave the query, the rest is libpq's."""
        if url.fragment:
            raise ConfigError("a PostgreSQL store URL takes no #fragment")
        ours: dict[str, Any] = {}
        libpq: list[tuple[str, str]] = []
        for name, value in parse_qsl(url.query, keep_blank_values=True):
            if name not in _OPTIONS:
                libpq.append((name, value))
            elif name in ours:
                raise ConfigError(f"PostgreSQL option {name} is given twice in the URL")
            else:
                ours[name] = value
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ConfigError(
                f"unknown PostgreSQL store option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_OPTIONS))}"
            )
        ours.update(options)
        threshold = ours.get("prepare_threshold")
        if isinstance(threshold, str) and threshold.lower() in ("", "none"):
            ours["prepare_threshold"] = None
        # quote, not quote_plus: libpq reads "+" as a plus sign, not as a space.
        conninfo = urlunsplit((url.scheme, url.netloc, url.path, urlencode(libpq, quote_via=quote), ""))
        return cls(conninfo, **ours)

    def __repr__(self) -> str:
        return f"<PostgresStore {self.where} table={self._statements.table!r}>"

    @property
    def address(self) -> str:
        """The server as a URL without password: ``postgresql://user@host:port/dbname``."""
        return self._address

    def ddl(self) -> str:
        """The SQL that creates this store's table and indexes, for your migrations (what
        ``create_schema=true`` runs when the table is missing)."""
        return self._statements.ddl.as_string()

    # ---- the single source: plans -------------------------------------------------------

    def _plan(self, op: Op) -> q.Plan:
        plan = q.plan(self._statements, op)
        if self._ready:
            return plan
        return q.after(self._ensure_schema(), plan)

    def _ensure_schema(self) -> Generator[Step, Any, None]:
        """Once per store: look the table up; create it if allowed, else say how to."""
        st = self._statements
        # Identifiers are checked plain names ([A-Za-z_][A-Za-z0-9_]*): quoting them is exact.
        name = (f'"{st.schema}".' if st.schema else "") + f'"{st.table}"'
        rows = yield Step(_TABLE_EXISTS, [name])
        if not (rows and rows[0][0]):
            if not self._create_schema:
                raise StoreError(
                    f"{self.where}: the session table {name} does not exist. Create it in a "
                    "migration with the SQL of store.ddl() (sessionkeeper.stores.postgres.ddl()), "
                    "or open the store with create_schema=true (the default) to create it on first use"
                )
            yield Step(st.ensure, None)
        self._ready = True  # reached once the table is known to exist

    def _pool_was_full(self, asynchronous: bool) -> bool:
        """After a PoolTimeout: did the pool hold all its connections (busy), or too few
        because connecting failed (unreachable)?"""
        pool: Any = self._apool if asynchronous else self._pool
        if pool is None:
            return False
        stats = pool.get_stats()
        return int(stats.get("pool_size", 0)) >= self._max_size and not stats.get("pool_available", 0)

    @contextmanager
    def _errors(self, asynchronous: bool = False) -> Iterator[None]:
        """Turn driver errors into this library's: unreachable -> StoreUnavailable, else StoreError."""
        try:
            yield
        except StoreError:
            raise
        except PoolClosed as exc:
            raise StoreError(f"{self.where}: the store is closed") from exc
        except PoolTimeout as exc:
            if self._pool_was_full(asynchronous):
                raise StoreUnavailable(
                    f"{self.where} busy (reachable, but all {self._max_size} connections stayed "
                    f"in use for {self._pool_timeout:g}s): raise max_size or pool_timeout, or look "
                    "for slow statements or locks"
                ) from exc
            raise StoreUnavailable(
                f"{self.where} unavailable: could not connect within {self._pool_timeout:g}s "
                "(the psycopg.pool log says why connecting failed)"
            ) from exc
        except psycopg.OperationalError as exc:  # connection refused or lost, shutdown, too many …
            raise StoreUnavailable(f"{self.where} unavailable: {_first_line(exc)}") from exc
        except pg_errors.UndefinedTable as exc:
            raise StoreError(
                f"{self.where}: {_first_line(exc)}; create it with sessionkeeper.stores.postgres.ddl() "
                "in a migration, or open the store with create_schema=true"
            ) from exc
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: {type(exc).__name__}: {_first_line(exc)}") from exc
        except UnicodeError as exc:  # e.g. a lone surrogate cannot be sent as UTF-8
            raise StoreError(f"{self.where}: a value cannot be sent as UTF-8 ({type(exc).__name__})") from exc

    # ---- sync face ----------------------------------------------------------------------

    def _sync_pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        with self._lock:
            if self._closed:
                raise StoreError(f"{self.where}: the store is closed")
            if self._pool is None:
                self._pool = ConnectionPool(**self._pool_args)
                self._pool.open()
            return self._pool

    def execute(self, op: Op) -> Any:
        """Perform ``op`` on a connection from the sync pool."""
        plan = self._plan(op)
        with self._errors():
            try:
                step = next(plan)
            except StopIteration as stop:  # answered without the server (e.g. malformed key)
                return stop.value
            pool = self._pool or self._sync_pool()
            conn = pool.getconn()
            for _ in range(self._max_size):
                if not _stale(conn):
                    break
                conn.close()
                pool.putconn(conn)
                conn = pool.getconn()
            try:
                while True:
                    cur = conn.execute(step.query, step.params, prepare=step.prepare)
                    step = plan.send(cur.fetchall() if _has_rows(cur) else [])
            except StopIteration as stop:
                return stop.value
            finally:
                pool.putconn(conn)

    # ---- async face ---------------------------------------------------------------------

    async def _async_pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                raise StoreError(f"{self.where}: the store is closed")
            if self._aloop is not loop:
                if self._aloop is not None and not self._aloop.is_closed():
                    raise StoreError(
                        f"{self.where}: this store's async pool belongs to another event loop; "
                        "open one store per event loop"
                    )
                # Created here, inside the loop that will run its tasks.
                self._apool = AsyncConnectionPool(**self._pool_args)
                self._aloop, self._apool_open = loop, False
            apool = self._apool
            assert apool is not None
        if not self._apool_open:
            await apool.open()  # idempotent: concurrent first callers all wait for it
            self._apool_open = True
        return apool

    async def aexecute(self, op: Op) -> Any:
        """Perform ``op`` on a connection from the async pool (opened in the running loop)."""
        plan = self._plan(op)
        with self._errors(asynchronous=True):
            try:
                step = next(plan)
            except StopIteration as stop:
                return stop.value
            pool = await self._async_pool()
            conn = await pool.getconn()
            for _ in range(self._max_size):
                if not _stale(conn):
                    break
                await conn.close()
                await pool.putconn(conn)
                conn = await pool.getconn()
            try:
                while True:
                    cur = await conn.execute(step.query, step.params, prepare=step.prepare)
                    step = plan.send(await cur.fetchall() if _has_rows(cur) else [])
            except StopIteration as stop:
                return stop.value
            finally:
                await pool.putconn(conn)

    # ---- closing ------------------------------------------------------------------------

    def _detach(self) -> tuple[
        ConnectionPool[psycopg.Connection[Any]] | None,
        AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None,
        asyncio.AbstractEventLoop | None,
    ]:
        with self._lock:
            self._closed = True
            pools = self._pool, self._apool, self._aloop
            self._pool = self._apool = None
            return pools

    def close(self) -> None:
        """Close both pools. Idempotent. From async code prefer :meth:`aclose`."""
        pool, apool, aloop = self._detach()
        if pool is not None:
            pool.close()
        if apool is None or aloop is None or aloop.is_closed():
            return  # a closed loop took the async pool's tasks with it
        running = _running_loop()
        if aloop.is_running():
            future = asyncio.run_coroutine_threadsafe(apool.close(), aloop)
            if running is not aloop:  # never block the loop that must do the work
                future.result(timeout=30)
        elif running is None:  # a stopped loop: run it just long enough to close the pool
            aloop.run_until_complete(apool.close())

    async def aclose(self) -> None:
        """Close both pools from async code. Idempotent."""
        pool, apool, aloop = self._detach()
        if apool is not None and aloop is not None:
            if aloop is asyncio.get_running_loop():
                await apool.close()
            elif aloop.is_running():
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(apool.close(), aloop))
            # else: that loop is stopped or closed and its pool tasks with it
        if pool is not None:
            await asyncio.to_thread(pool.close)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
