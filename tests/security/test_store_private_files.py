"""An existing SQLite store file others can read is made private (ASVS 5.0 V7.2.1 / WSTG-SESS-01:
the store holds every session's data): the database, and ``-wal`` / ``-shm`` files left over
from an earlier run, all come out 0600, with one warning saying what was changed."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from sessionkeeper import new_token, open_store, storage_key
from sessionkeeper.core.records import Create, Meta, Record
from sessionkeeper.stores import _trust

pytestmark = pytest.mark.skipif(not _trust.supported, reason="no POSIX owners on this platform")


def test_v7_2_1_readable_database_and_leftover_wal_shm_are_made_private(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "app"
    directory.mkdir(mode=0o700)
    db = directory / "sessions.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x)")
    # keep the -wal and -shm files: copy them aside before the last connection removes them
    wal, shm = (directory / "sessions.db-wal").read_bytes(), (directory / "sessions.db-shm").read_bytes()
    conn.close()
    for name, data in (("sessions.db-wal", wal), ("sessions.db-shm", shm)):
        (directory / name).write_bytes(data)
    for p in directory.iterdir():
        os.chmod(p, 0o644)
    with caplog.at_level(logging.WARNING, logger="sessionkeeper"):
        store = open_store(f"sqlite:///{db}")
    try:
        store.execute(Create(storage_key(new_token()), Record({"a": "1"}, Meta(1, 1, 2e9, 2e9))))
        modes = {p.name: stat.S_IMODE(os.stat(p).st_mode) for p in directory.iterdir()}
    finally:
        store.close()
    assert modes and all(mode == 0o600 for mode in modes.values()), modes
    assert "made private" in caplog.text and "sessions.db" in caplog.text
