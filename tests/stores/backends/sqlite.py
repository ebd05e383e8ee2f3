"""SQLite: a database file in the test's tmp_path, and ``sqlite://`` (in memory)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sessionkeeper import Store, open_store

NAMES = ["sqlite", "sqlite-memory"]


@contextmanager
def open(name: str, tmp_path: Path) -> Iterator[Store]:
    url = "sqlite://" if name == "sqlite-memory" else "sqlite:///" + quote(str(tmp_path / "sessions.db"))
    store = open_store(url)
    try:
        yield store
    finally:
        store.close()
