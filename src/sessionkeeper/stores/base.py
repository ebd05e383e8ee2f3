"""The store contract and :func:`open_store`.

A store performs the operations in :mod:`sessionkeeper.core.records`; their docstrings and
that module's header state the rules every store keeps. A store offers both faces:
``execute(op)`` for sync code and ``await aexecute(op)`` for async code. Stores without a
native async client get ``aexecute`` by running ``execute`` in a worker thread.

Every store also has :meth:`Store.ping` / :meth:`Store.aping` (a startup or health check: one
read, its duration, or an error that says what is wrong) and :attr:`Store.address` (where it
lives, without password). Outages are logged here, once each: see :func:`report_unavailable`.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, ClassVar
from urllib.parse import SplitResult, urlsplit, urlunsplit

from ..core.records import (
    Apply,
    Count,
    Create,
    Delete,
    ListUser,
    Load,
    Meta,
    Op,
    Purge,
    PurgeReport,
    Record,
    Rename,
    Scan,
    ScanPage,
)
from ..errors import ConfigError, StoreError, StoreUnavailable

log = logging.getLogger("sessionkeeper")

#: the storage key :meth:`Store.ping` loads: well formed, and no token hashes to it in practice
#: (a read of a key nobody has, so a ping never changes anything)
PING_KEY = "0" * 64


class Store(ABC):
    """A place to keep session records. Subclass it to add a backend."""

    #: a name for messages and diagnostics, e.g. ``"sqlite"``
    name: ClassVar[str] = "store"

    # Outage bookkeeping (see :func:`report_unavailable`): the monotonic time the current
    # outage began, or None while the store answers. A class attribute, so that subclasses
    # need not call ``super().__init__``; an instance gets its own on its first failure.
    _down_since: float | None = None
    _down_failures: int = 0
    _down_last: float = 0.0  # monotonic time of the latest failure
    _opened_as: str | None = None

    @property
    def address(self) -> str:
        """Where this store lives, as a URL without password or options, for messages and
        logs (e.g. ``redis://127.0.0.1:6379/0``). Backends with a network address override it;
        otherwise it is the URL :func:`open_store` was given, redacted."""
        return self._opened_as or f"{self.name}://"

    def ping(self) -> float:
        """Check that the store answers: one round trip (a read of a key nobody has).

        Returns the seconds it took. Raises :class:`~sessionkeeper.errors.StoreUnavailable`
        (unreachable, timing out, every connection busy) or
        :class:`~sessionkeeper.errors.StoreError` (e.g. a missing table, refused credentials),
        with a message that names the store without its password. Call it at startup or from
        a health endpoint; an outage it meets is logged like one a request meets.
        """
        started = time.monotonic()
        try:
            self.execute(Load(PING_KEY, time.time()))
        except BaseException as exc:
            err = _ping_error(self, exc)
            if err is exc:
                raise
            raise err from exc
        report_ok(self, started)
        return time.monotonic() - started

    async def aping(self) -> float:
        """:meth:`ping` from async code, through the store's async face."""
        started = time.monotonic()
        try:
            await self.aexecute(Load(PING_KEY, time.time()))
        except BaseException as exc:
            err = _ping_error(self, exc)
            if err is exc:
                raise
            raise err from exc
        report_ok(self, started)
        return time.monotonic() - started

    @abstractmethod
    def execute(self, op: Op) -> Any:
        """Perform one operation and return its result (see each op's docstring)."""

    async def aexecute(self, op: Op) -> Any:
        """Perform one operation from async code (default: ``execute`` in a worker thread)."""
        return await asyncio.to_thread(self.execute, op)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files."""

    async def aclose(self) -> None:
        """Release connections from async code."""
        await asyncio.to_thread(self.close)

    # Typed conveniences for code and tools outside a request (tests, CLI, admin pages).
    def load(self, key: str, now: float) -> Record | None:
        """Return the live record under ``key``, or ``None``."""
        result: Record | None = self.execute(Load(key, now))
        return result

    def list_user(self, user_id: str, now: float) -> list[tuple[str, Meta]]:
        """The live sessions of ``user_id`` as (storage key, metadata) pairs."""
        result: list[tuple[str, Meta]] = self.execute(ListUser(user_id, now))
        return result

    def delete(self, key: str) -> bool:
        """Delete the session under ``key``; return whether it existed."""
        return bool(self.execute(Delete(key)))

    def purge(self, now: float, batch: int = 500) -> int:
        """Remove sessions expired at ``now``; return how many went.

        To also learn *which* sessions went (for ``expired`` audit events), use
        :meth:`SessionManager.purge`, or run ``Purge(now, batch, report=True)``."""
        return int(self.execute(Purge(now, batch)))

    def count(self, now: float) -> int:
        """How many sessions are live at ``now``."""
        return int(self.execute(Count(now)))

    def scan(self, now: float, cursor: str = "", limit: int = 500) -> ScanPage:
        """One page of the live sessions at ``now``: pass ``""``, then each page's ``cursor``
        until it is ``""`` (see :class:`~sessionkeeper.core.records.Scan` for the rules)."""
        result: ScanPage = self.execute(Scan(now, cursor, limit))
        return result

    def scan_all(self, now: float, limit: int = 500) -> Iterator[tuple[str, Meta]]:
        """Every live session at ``now`` as (storage key, metadata), read page by page (each
        page one short read: nothing is held between pages, so it is safe while the app
        serves). Renewal aliases are left out. On Redis a key may come twice (``SCAN``)."""
        cursor = ""
        while True:
            page = self.scan(now, cursor, limit)
            yield from page.sessions
            if page.done:
                return
            cursor = page.cursor

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MethodStore(Store):
    """A store written as one method per operation; ``execute`` dispatches to them."""

    def execute(self, op: Op) -> Any:
        match op:
            case Load(key, now):
                return self.do_load(key, now)
            case Apply(key, delta, now):
                return self.do_apply(key, delta, now)
            case Create(key, record):
                return self.do_create(key, record)
            case Rename(old, new, delta, now):
                return self.do_rename(old, new, delta, now)
            case Delete(key):
                return self.do_delete(key)
            case ListUser(user_id, now):
                return self.do_list_user(user_id, now)
            case Purge(now, batch, report):
                return self.do_purge_report(now, batch) if report else self.do_purge(now, batch)
            case Count(now):
                return self.do_count(now)
            case Scan(now, cursor, limit):
                return self.do_scan(now, cursor, limit)
        raise StoreError(f"{type(self).__name__} cannot perform {op!r}")

    @abstractmethod
    def do_load(self, key: str, now: float) -> Record | None: ...
    @abstractmethod
    def do_apply(self, key: str, delta: Any, now: float) -> bool: ...
    @abstractmethod
    def do_create(self, key: str, record: Record) -> bool: ...
    @abstractmethod
    def do_rename(self, old: str, new: str, delta: Any, now: float) -> bool: ...
    @abstractmethod
    def do_delete(self, key: str) -> bool: ...
    @abstractmethod
    def do_list_user(self, user_id: str, now: float) -> list[tuple[str, Meta]]: ...
    @abstractmethod
    def do_purge(self, now: float, batch: int) -> int: ...
    @abstractmethod
    def do_count(self, now: float) -> int: ...

    # Capabilities added after the first stores: not abstract, so that a store written before
    # them still works for everything else, and says clearly what it cannot do.
    def do_purge_report(self, now: float, batch: int) -> PurgeReport:
        """``Purge(report=True)``: as :meth:`do_purge`, naming the sessions removed."""
        raise StoreError(f"the {self.name} store cannot report what it purges (no Purge(report=True))")

    def do_scan(self, now: float, cursor: str, limit: int) -> ScanPage:
        """``Scan``: one page of the live sessions at ``now``."""
        raise StoreError(f"the {self.name} store cannot list all its sessions (no Scan operation); "
                         "list one user's sessions instead")


class PurgeNaming(MethodStore):
    """For a store whose one purge can also name what it removes: ``do_purge`` and
    ``do_purge_report`` both run :meth:`_purge`."""

    @abstractmethod
    def _purge(self, now: float, batch: int, sessions: list[tuple[str, Meta]] | None) -> int:
        """Remove what expired at ``now``; append the sessions among it to ``sessions``
        (``None``: nobody asked)."""

    def do_purge(self, now: float, batch: int) -> int:
        return self._purge(now, batch, None)

    def do_purge_report(self, now: float, batch: int) -> PurgeReport:
        sessions: list[tuple[str, Meta]] = []
        removed = self._purge(now, batch, sessions)
        return PurgeReport(removed, tuple(sessions))


# ---- open_store ------------------------------------------------------------------------

Opener = Callable[[SplitResult, dict[str, Any]], Store]


def _lazy(module: str, cls: str) -> Opener:
    """An opener that imports the store's module only when its scheme is used, so that
    ``pip install sessionkeeper`` without the redis/postgres extras still imports."""

    def opener(url: SplitResult, options: dict[str, Any]) -> Store:
        store_cls = getattr(importlib.import_module(f"{__package__}.{module}"), cls)
        store: Store = store_cls.from_url(url, **options)
        return store

    return opener


_redis = _lazy("redis", "RedisStore")
_postgres = _lazy("postgres", "PostgresStore")

#: scheme -> opener
SCHEMES: dict[str, Opener] = {
    "memory": _lazy("memory", "MemoryStore"),
    "file": _lazy("file", "FileStore"),
    "sqlite": _lazy("sqlite", "SQLiteStore"),
    "postgresql": _postgres,
    "postgres": _postgres,
    "redis": _redis,
    "rediss": _redis,
    "redis+cluster": _redis,
    "rediss+cluster": _redis,
    "redis+sentinel": _redis,
    "valkey": _redis,
}


def open_store(url: str, **options: Any) -> Store:
    """Open the store named by ``url``.

    ``memory://``, ``file:///abs/dir``, ``sqlite:///path/to.db`` (``sqlite://`` alone: in
    memory), ``postgresql://user@host:port/db``, ``redis://host:port/0``, ``rediss://…``,
    ``redis+cluster://host:port,host:port``, ``redis+sentinel://host:port/service``.
    """
    if not isinstance(url, str) or "://" not in url:
        shown = repr(redact_url(url)) if isinstance(url, str) else f"of type {type(url).__name__}"
        raise ConfigError(
            f"store URL {shown} is not a URL; use one of: "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    malformed: str | None = None
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        # urlsplit's own message may quote the netloc, credentials and all: reworded here, and
        # raised outside this block so that the original is not chained as its context.
        netloc = _split_text(url).netloc
        malformed = str(exc).replace(netloc, _redact_netloc(netloc)) if netloc else str(exc)
    if malformed is not None:
        raise ConfigError(f"store URL {redact_url(url)!r} is malformed: {malformed}")
    opener = SCHEMES.get(parts.scheme.lower())
    if opener is None:
        raise ConfigError(
            f"unsupported store URL scheme {parts.scheme!r}; supported: "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    store = opener(parts, options)
    if store._opened_as is None:
        store._opened_as = redact_url(parts)
    return store


def redact_url(url: SplitResult | str) -> str:
    """``url`` for messages, logs and reprs: no password, no query (options may hold secrets),
    no fragment. Every message that quotes a store URL goes through here.

    ``url`` is split parts, or the text itself, also one that :func:`urlsplit` refuses (an
    unclosed IPv6 bracket): it is split the same way without urlsplit's checks, so a
    malformed URL's message never shows its password either."""
    parts = _split_text(url) if isinstance(url, str) else url
    netloc = _redact_netloc(parts.netloc)
    if not parts.scheme:  # not a URL at all ("user:pw@host"): what is left of it
        return f"{netloc}{parts.path}"
    if not netloc:  # memory://, sqlite:///path, file:///dir: urlunsplit would drop the "//"
        return f"{parts.scheme}://{parts.path}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _redact_netloc(netloc: str) -> str:
    """``user:password@host`` -> ``user@host``; the user name is kept (it says which account)."""
    creds, at, hosts = netloc.rpartition("@")
    if not at:
        return netloc
    user = creds.partition(":")[0]
    return f"{user}@{hosts}" if user else hosts


def _split_text(url: str) -> SplitResult:
    """``url`` split where :func:`urlsplit` would split it (the authority ends at the first
    ``/``, ``?`` or ``#``), without its validation; no ``://``: no scheme."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    rest, _, fragment = rest.partition("#")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    return SplitResult(scheme, netloc, slash + path, query, fragment)


# ---- outages: logged once each, with their cause and their end -----------------------------
#
# The drivers (and ping) report every StoreUnavailable and every success. The first failure
# of an outage logs its cause on logger "sessionkeeper" (ERROR); later failures only count.
# The outage ends, and its recovery is logged (WARNING), with the first success of an
# operation that started after the *last* failure, once no failure has come for SETTLE
# seconds. Both conditions keep the log at one pair of lines per outage: an operation that
# began before a failure and succeeds late proves nothing, and in a partial outage (one
# Cluster node down: some keys fail, others work) successes and failures interleave until
# the node is back; without the quiet period each success would log a recovery and the next
# failure a new outage. The lock is taken only on these transitions; while the store is up,
# the success path is one attribute read.

#: seconds without a failure before a success counts as the end of an outage
SETTLE = 1.0

_outage_lock = threading.Lock()


def report_unavailable(store: Store, exc: BaseException) -> None:
    """Note that ``store`` failed with ``exc`` (a StoreUnavailable); log it if it is new."""
    now = time.monotonic()
    with _outage_lock:
        store._down_last = now
        if store._down_since is not None:
            store._down_failures += 1
            return
        store._down_since = now
        store._down_failures = 1
    cause = _oneline(exc).rstrip(".")
    if store.address not in cause:
        cause = f"{store.address} unavailable: {cause}"
    log.error(
        "session store %s. Requests that need it get 503 until it answers again "
        "(logged once per outage).",
        cause,
    )


def report_ok(store: Store, started: float) -> None:
    """Note that an operation on ``store`` that began at ``started`` (monotonic) succeeded."""
    since = store._down_since
    if since is None:
        return
    last = store._down_last
    if started < last or time.monotonic() - last < SETTLE:
        return
    with _outage_lock:
        if store._down_since is None or store._down_last != last:
            return
        failures, store._down_since = store._down_failures, None
    log.warning(
        "session store %s reachable again after %.1f s (%d operations failed meanwhile)",
        store.address, time.monotonic() - since, failures,
    )


def _oneline(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _ping_error(store: Store, exc: BaseException) -> BaseException:
    """The error a ping raises for ``exc``: a StoreError that names the store."""
    if isinstance(exc, StoreUnavailable):
        report_unavailable(store, exc)
    if not isinstance(exc, Exception):
        return exc  # KeyboardInterrupt, CancelledError …: not the store's doing
    where = store.address
    text = _oneline(exc)
    if isinstance(exc, StoreError):
        if where in text:
            return exc
        cls = StoreUnavailable if isinstance(exc, StoreUnavailable) else StoreError
        return cls(f"{where}: {text}")
    return StoreError(f"{where}: ping failed: {type(exc).__name__}: {text}")
