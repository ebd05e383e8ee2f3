"""The file store, in a fresh directory under the test's tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sessionkeeper import Store, open_store

NAMES = ["file"]


@contextmanager
def open(name: str, tmp_path: Path) -> Iterator[Store]:
    store = open_store("file://" + quote(str(tmp_path / "sessions")))
    try:
        yield store
    finally:
        store.close()
