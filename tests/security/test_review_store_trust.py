"""Review R1: the embedded stores' path checks (``stores/_trust.py``) against a hostile
co-tenant on the same host: another local user who may *read* what the store leaves readable.

The checks refuse paths others can *write* (OpenSSH's StrictModes). A session store is also a
secret: every session's data (user ids, CSRF tokens, whatever the app keeps: ASVS 5.0 V3.5.1 is
defeated by a readable CSRF token) lies in it. New files are made 0600; this probes files
that already exist. WSTG-SESS-01 (session management schema), ASVS 5.0 V7.2.1 (the backend
that verifies tokens is trusted) and the store trust rule of issue 8.7.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from sessionkeeper import ConfigError, new_token, open_store, storage_key
from sessionkeeper.core.records import Create, Meta, Record


def readable_by_others(path: Path) -> bool:
    return bool(stat.S_IMODE(os.stat(path).st_mode) & 0o044)


def test_v7_2_1_new_sqlite_store_files_are_private(tmp_path: Path) -> None:
    """WSTG-SESS-01: a database the store creates is 0600 (its directory 0700), whatever the
    umask, so nobody else on the host reads the sessions (guard)."""
    old = os.umask(0o022)
    try:
        store = open_store(f"sqlite:///{tmp_path}/private/sessions.db")
        store.execute(Create(storage_key(new_token()), Record({"_sk_csrf": '"t"'},
                                                              Meta(1, 1, 2e9, 2e9, "u", None, {}))))
        store.close()
    finally:
        os.umask(old)
    assert not readable_by_others(tmp_path / "private" / "sessions.db")
    assert stat.S_IMODE(os.stat(tmp_path / "private").st_mode) == 0o700


def test_v7_2_1_existing_world_readable_sqlite_file_is_refused_or_made_private(tmp_path: Path) -> None:
    """WSTG-SESS-01 / ASVS 5.0 V3.5.1: a database file created beforehand with the usual umask
    (``sqlite3 sessions.db`` by an operator, a migration script, a restore from backup) is
    0644. The store opens it, and every local account can read every session's data, CSRF
    tokens and user ids included. It should be refused (naming ``chmod 600``) or made 0600."""
    directory = tmp_path / "app"
    directory.mkdir(mode=0o700)
    db = directory / "sessions.db"
    sqlite3.connect(db).close()
    os.chmod(db, 0o644)
    try:
        store = open_store(f"sqlite:///{db}")
    except ConfigError:
        return  # refused: sound
    try:
        store.execute(Create(storage_key(new_token()), Record({"_sk_csrf": '"t"'},
                                                              Meta(1, 1, 2e9, 2e9, "u", None, {}))))
        leaking = [p.name for p in directory.iterdir() if readable_by_others(p)]
    finally:
        store.close()
    assert leaking == [], f"readable by every local user: {leaking}"
