"""In-process store: a dict behind a lock. For tests, demos and single-process apps."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult

from ..core.records import Delta, Meta, Op, Record
from ..errors import ConfigError
from .base import MethodStore


@dataclass(slots=True)
class _Entry:
    fields: dict[str, str]
    meta: Meta


class MemoryStore(MethodStore):
    """Sessions in a dict. Lost on restart; not shared between processes."""

    name = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, _Entry] = {}
        self._by_user: dict[str, set[str]] = {}

    @classmethod
    def from_url(cls, url: SplitResult, **options: Any) -> MemoryStore:
        if url.netloc or url.path.strip("/") or url.query or options:
            raise ConfigError("memory:// takes no host, path or options")
        return cls()

    async def aexecute(self, op: Op) -> Any:
        # No I/O and the lock is held for microseconds: run in the event loop's thread.
        return self.execute(op)

    async def aclose(self) -> None:
        self.close()

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._data.get(key)
        if entry is None or entry.meta.expires_at <= now:
            return None
        return entry

    def _index(self, key: str, old: Meta | None, new: Meta | None) -> None:
        if old is not None and old.user_id is not None and (new is None or new.user_id != old.user_id):
            keys = self._by_user.get(old.user_id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_user[old.user_id]
        if new is not None and new.user_id is not None:
            self._by_user.setdefault(new.user_id, set()).add(key)

    def do_load(self, key: str, now: float) -> Record | None:
        with self._lock:
            entry = self._live(key, now)
            return None if entry is None else Record(dict(entry.fields), entry.meta)

    def do_create(self, key: str, record: Record) -> bool:
        with self._lock:
            if key in self._data:
                return False
            self._data[key] = _Entry(dict(record.fields), record.meta)
            self._index(key, None, record.meta)
            return True

    @staticmethod
    def _patch(entry: _Entry, delta: Delta) -> None:
        for k in delta.delete:
            entry.fields.pop(k, None)
        entry.fields.update(delta.set)
        if delta.meta is not None:
            entry.meta = delta.meta

    def do_apply(self, key: str, delta: Delta, now: float) -> bool:
        with self._lock:
            entry = self._live(key, now)
            if entry is None:
                return False
            old = entry.meta
            self._patch(entry, delta)
            self._index(key, old, entry.meta)
            return True

    def do_rename(self, old: str, new: str, delta: Delta, now: float) -> bool:
        with self._lock:
            entry = self._live(old, now)
            if entry is None or new in self._data:
                return False
            del self._data[old]
            self._index(old, entry.meta, None)
            self._patch(entry, delta)
            self._data[new] = entry
            self._index(new, None, entry.meta)
            return True

    def do_delete(self, key: str) -> bool:
        with self._lock:
            entry = self._data.pop(key, None)
            if entry is None:
                return False
            self._index(key, entry.meta, None)
            return True

    def do_list_user(self, user_id: str, now: float) -> list[tuple[str, Meta]]:
        with self._lock:
            out = []
            for key in sorted(self._by_user.get(user_id, ())):
                entry = self._live(key, now)
                if entry is not None:
                    out.append((key, entry.meta))
            return out

    def do_purge(self, now: float, batch: int) -> int:
        if batch < 1:
            raise ConfigError(f"purge batch must be at least 1, not {batch}")
        removed = 0
        while True:
            with self._lock:  # batches keep the lock short for concurrent requests
                dead = [k for k, e in self._data.items() if e.meta.expires_at <= now][:batch]
                for k in dead:
                    self._index(k, self._data.pop(k).meta, None)
            removed += len(dead)
            if len(dead) < batch:
                return removed

    def do_count(self, now: float) -> int:
        with self._lock:
            return sum(1 for e in self._data.values() if e.meta.expires_at > now)
