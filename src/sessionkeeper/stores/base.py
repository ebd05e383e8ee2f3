"""The store contract and :func:`open_store`.

A store performs the operations in :mod:`sessionkeeper.core.records`; their docstrings and
that module's header state the rules every store keeps. A store offers both faces:
``execute(op)`` for sync code and ``await aexecute(op)`` for async code. Stores without a
native async client get ``aexecute`` by running ``execute`` in a worker thread.
"""

from __future__ import annotations

import asyncio
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import SplitResult, urlsplit

from ..core.records import Apply, Count, Create, Delete, ListUser, Load, Meta, Op, Purge, Record, Rename
from ..errors import ConfigError, StoreError


class Store(ABC):
    """A place to keep session records. Subclass it to add a backend."""

    #: a name for messages and diagnostics, e.g. ``"sqlite"``
    name: ClassVar[str] = "store"

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
        """Remove sessions expired at ``now``; return how many went."""
        return int(self.execute(Purge(now, batch)))

    def count(self, now: float) -> int:
        """How many sessions are live at ``now``."""
        return int(self.execute(Count(now)))

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
            case Purge(now, batch):
                return self.do_purge(now, batch)
            case Count(now):
                return self.do_count(now)
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
        raise ConfigError(
            f"store URL {url!r} is not a URL; use one of: "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"store URL {url!r} is malformed: {exc}") from None
    opener = SCHEMES.get(parts.scheme.lower())
    if opener is None:
        raise ConfigError(
            f"unsupported store URL scheme {parts.scheme!r}; supported: "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    return opener(parts, options)
