"""In-process store: a dict behind a lock. For tests, demos and single-process apps.

Expired entries are never returned. An entry past both its expiry and its absolute limit is
garbage (Redis's TTL rule: a merely idle session stays until its absolute limit, so the
request flow can still tell "expired" from "unknown"); renewal aliases (issue 8.8) expire at
their absolute limit, the end of their grace window. Garbage leaves the dict promptly rather
than at the next purge: a Load that meets it deletes it, and each Rename (every renewal
writes its alias just before its Rename) deletes up to :data:`SWEEP_BATCH` entries, found
through a heap of "garbage from" times. The heap is lazy: an entry whose limits moved since it
was pushed is pushed again when its old time comes up, keys deleted meanwhile are dropped,
and purge rebuilds it.
"""

from __future__ import annotations

import heapq
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult

from ..core.patch import apply_patch_text
from ..core.records import (
    Delta,
    Meta,
    Op,
    Record,
    ScanPage,
    is_renewal_alias,
    scan_start,
)
from ..errors import ConfigError
from .base import PurgeNaming

#: How many heap entries each Rename examines on its way.
SWEEP_BATCH = 32


def _garbage_from(meta: Meta) -> float:
    """When an entry becomes garbage: expired and past its absolute limit."""
    return max(meta.expires_at, meta.absolute_at)


@dataclass(slots=True)
class _Entry:
    fields: dict[str, str]
    meta: Meta


class MemoryStore(PurgeNaming):
    """Sessions in a dict. Lost on restart; not shared between processes."""

    name = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, _Entry] = {}
        self._by_user: dict[str, set[str]] = {}
        self._expiry: list[tuple[float, str]] = []  # heap: (garbage-from time when pushed, key)

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

    def _drop(self, key: str) -> None:
        entry = self._data.pop(key, None)
        if entry is not None:
            self._index(key, entry.meta, None)

    def _sweep(self, now: float) -> None:
        """Delete up to SWEEP_BATCH garbage entries (caller holds the lock)."""
        heap = self._expiry
        for _ in range(SWEEP_BATCH):
            if not heap or heap[0][0] > now:
                return
            _, key = heapq.heappop(heap)
            entry = self._data.get(key)
            if entry is None:
                continue  # deleted or renamed away since
            if _garbage_from(entry.meta) <= now:
                self._drop(key)
            else:
                heapq.heappush(heap, (_garbage_from(entry.meta), key))  # extended since: later

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
            entry = self._data.get(key)
            if entry is None:
                return None
            if entry.meta.expires_at <= now:
                if _garbage_from(entry.meta) <= now:
                    self._drop(key)  # garbage: nobody may read it again, so it goes now
                return None
            return Record(dict(entry.fields), entry.meta)

    def do_create(self, key: str, record: Record) -> bool:
        with self._lock:
            if key in self._data:
                return False
            self._data[key] = _Entry(dict(record.fields), record.meta)
            self._index(key, None, record.meta)
            heapq.heappush(self._expiry, (_garbage_from(record.meta), key))
            return True

    @staticmethod
    def _patch(entry: _Entry, delta: Delta) -> None:
        for k in delta.delete:
            entry.fields.pop(k, None)
        entry.fields.update(delta.set)
        for k, ops in delta.patch.items():  # merge rules: core/patch.py, applied in place
            text = apply_patch_text(entry.fields.get(k), ops)
            if text is not None:
                entry.fields[k] = text
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
            heapq.heappush(self._expiry, (_garbage_from(entry.meta), new))
            self._sweep(now)
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

    def _purge(self, now: float, batch: int, sessions: list[tuple[str, Meta]] | None) -> int:
        """Remove what expired at ``now``; name the sessions among it in ``sessions``."""
        if batch < 1:
            raise ConfigError(f"purge batch must be at least 1, not {batch}")
        removed = 0
        while True:
            with self._lock:  # batches keep the lock short for concurrent requests
                dead = [k for k, e in self._data.items() if e.meta.expires_at <= now][:batch]
                for k in dead:
                    entry = self._data.pop(k)
                    self._index(k, entry.meta, None)
                    if sessions is not None and not is_renewal_alias(entry.fields, entry.meta):
                        sessions.append((k, entry.meta))
            removed += len(dead)
            if len(dead) < batch:
                with self._lock:  # drop the heap's stale entries (deleted, renamed keys)
                    self._expiry = [(_garbage_from(e.meta), k) for k, e in self._data.items()]
                    heapq.heapify(self._expiry)
                return removed

    def do_count(self, now: float) -> int:
        with self._lock:
            return sum(1 for e in self._data.values() if e.meta.expires_at > now)

    def do_scan(self, now: float, cursor: str, limit: int) -> ScanPage:
        after = scan_start(cursor, limit)
        with self._lock:  # one pass over the keys (no sorted copy of the whole dict)
            window = heapq.nsmallest(limit + 1, (k for k in self._data if k > after))
            read = window[:limit]
            found = [(k, e.meta) for k in read if (e := self._data[k]).meta.expires_at > now
                     and not is_renewal_alias(e.fields, e.meta)]
        # One key more than the page was looked at, only to know whether another page follows.
        return ScanPage(tuple(found), read[-1] if len(window) > limit else "")
