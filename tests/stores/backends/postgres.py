"""The PostgreSQL store in the conformance suite: a fresh table per test in database ``test``.

The server comes from ``SESSIONKEEPER_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/test``); tests are skipped (failed under CI=true) when
nothing listens there.
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sessionkeeper import Store, open_store
from tests.conftest import port_open, require_service

NAMES = ["postgres"]

URL = os.environ.get("SESSIONKEEPER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def require_postgres() -> None:
    """Skip (or fail under CI) unless the test server listens."""
    parts = urlsplit(URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    if not port_open(host, port):
        require_service("PostgreSQL", f"nothing listens on {host}:{port} (set SESSIONKEEPER_TEST_POSTGRES)")


def admin() -> Any:
    """An autocommit connection to the test database, for set-up and inspection."""
    import psycopg

    return psycopg.connect(URL, autocommit=True)


def new_table() -> str:
    return "sk_test_" + secrets.token_hex(6)


def drop_table(table: str, schema: str | None = None) -> None:
    from psycopg import sql

    name = sql.Identifier(schema, table) if schema else sql.Identifier(table)
    with admin() as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))


@contextmanager
def open(name: str, tmp_path: Path) -> Iterator[Store]:
    require_postgres()
    table = new_table()
    # A small pool: other engineers' test runs share the server's max_connections.
    store = open_store(URL, table=table, create_schema=True, max_size=4)
    try:
        yield store
    finally:
        store.close()
        drop_table(table)
