from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sessionkeeper import Store, open_store

NAMES = ["memory"]


@contextmanager
def open(name: str, tmp_path: Path) -> Iterator[Store]:
    store = open_store("memory://")
    try:
        yield store
    finally:
        store.close()
