"""Issue 8.7: the embedded stores trust only paths that no other user controls.

Requirement: OWASP ASVS 5.0 V7.2.1 ("the application performs all session token verification
using a trusted back-end service") is the closest V7 item: a session store that another local
user can write is no trusted back-end, as whoever writes it can forge a signed-in session
(reproduced by the review: an unprivileged user pre-created the database and forged an admin
session). WSTG-SESS-01 (session management schema) covers the same ground from the tester's
side. The rule itself is OpenSSH's StrictModes, stated in ``sessionkeeper/stores/_trust.py``.

These tests run as root: "another user" is simulated with ``os.chown`` to an unprivileged uid
(65534, nobody) and with group/other write bits.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from sessionkeeper import ConfigError, StoreError, open_store
from sessionkeeper.core.ids import storage_key
from sessionkeeper.core.records import Apply, Create, Delete, Delta, Load, Meta, Purge, Record
from sessionkeeper.stores.file import FileStore
from sessionkeeper.stores.sqlite import SQLiteStore
from tests.conftest import require_service

NOBODY = 65534
NOW = 1_800_000_000.0
KEY = storage_key("forged-token-for-the-test-0123456789abcdefghijk")



def give_away(path: Path) -> None:
    """Make ``path`` another user's (needs root: skipped locally, failed under CI=true)."""
    try:
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    except PermissionError:
        require_service("root", "simulating another user needs chown")


def take_back(path: Path) -> None:
    os.chown(path, os.geteuid(), os.getegid(), follow_symlinks=False)


def meta(user: str | None = "admin") -> Meta:
    return Meta(created_at=NOW, last_seen=NOW, expires_at=NOW + 1800, absolute_at=NOW + 43200, user_id=user)


def sqlite_url(path: Path) -> str:
    return "sqlite:///" + quote(str(path))


def file_url(path: Path) -> str:
    return "file://" + quote(str(path))


@pytest.fixture
def private(tmp_path: Path) -> Path:
    """A private directory of ours (tmp_path is one, but say so: the tests depend on it)."""
    d = tmp_path / "private"
    d.mkdir(mode=0o700)
    return d


@pytest.fixture
def umask_0() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def forge_sqlite(db: Path) -> None:
    """What the attacker does: a database holding a signed-in admin session of their making."""
    store = SQLiteStore(str(db))
    assert store.execute(Create(KEY, Record({"role": '"admin"'}, meta())))
    store.close()


# ---- SQLite --------------------------------------------------------------------------------


def test_v7_2_1_sqlite_refuses_a_database_another_user_owns(private: Path) -> None:
    """ASVS 5.0 V7.2.1 / WSTG-SESS-01: a pre-created database owned by someone else (holding a
    forged admin session) is refused, so its sessions are never loaded."""
    db = private / "sessions.db"
    forge_sqlite(db)
    give_away(db)
    with pytest.raises(ConfigError, match=r"owned by .*uid 65534.*chown"):
        open_store(sqlite_url(db))


def test_v7_2_1_sqlite_refuses_a_database_others_can_write(private: Path) -> None:
    """ASVS 5.0 V7.2.1 / WSTG-SESS-01: group/other write access to the database file."""
    db = private / "sessions.db"
    forge_sqlite(db)
    for mode in (0o620, 0o602, 0o666):
        db.chmod(mode)
        with pytest.raises(ConfigError, match=r"writable by group or others.*chmod go-w"):
            open_store(sqlite_url(db))
    db.chmod(0o600)
    with open_store(sqlite_url(db)) as store:
        assert store.execute(Load(KEY, NOW)) is not None  # our own file: used as before


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_v7_2_1_sqlite_refuses_companion_files_another_user_controls(private: Path, suffix: str) -> None:
    """ASVS 5.0 V7.2.1 / WSTG-SESS-01: a planted -wal/-shm/-journal file (SQLite would replay a
    -wal or -journal into the database) that is someone else's, writable by others, or a link."""
    db = private / "sessions.db"
    forge_sqlite(db)
    companion = Path(str(db) + suffix)
    companion.unlink(missing_ok=True)
    companion.write_bytes(b"")
    give_away(companion)
    with pytest.raises(ConfigError, match=rf"{suffix[1:]} file .*owned by"):
        open_store(sqlite_url(db))
    take_back(companion)
    companion.chmod(0o666)
    with pytest.raises(ConfigError, match=r"writable by group or others"):
        open_store(sqlite_url(db))
    companion.unlink()
    companion.symlink_to(private / "elsewhere")
    with pytest.raises(ConfigError, match=r"symbolic link"):
        open_store(sqlite_url(db))


def test_v7_2_1_sqlite_refuses_a_directory_another_user_owns_or_can_write(tmp_path: Path) -> None:
    """ASVS 5.0 V7.2.1 / WSTG-SESS-01: whoever can write the database's directory can swap the
    file (or plant it before us), so that directory is checked too."""
    d = tmp_path / "theirs"
    d.mkdir(mode=0o700)
    give_away(d)
    with pytest.raises(ConfigError, match=r"SQLite database directory .*owned by .*uid 65534"):
        open_store(sqlite_url(d / "sessions.db"))
    take_back(d)
    d.chmod(0o770)
    with pytest.raises(ConfigError, match=r"directory .* is writable by group or others.*chmod go-w"):
        open_store(sqlite_url(d / "sessions.db"))
    d.chmod(0o700)
    open_store(sqlite_url(d / "sessions.db")).close()


def test_v7_2_1_sqlite_refuses_a_database_directly_in_a_sticky_shared_directory(tmp_path: Path) -> None:
    """ASVS 5.0 V7.2.1 / WSTG-SESS-01: a /tmp-like (sticky, world-writable) directory is no
    home for the database itself: anyone can create the file or its -wal before us. It is fine
    as the parent of a private directory of ours (the sticky bit stops others swapping it)."""
    shared = tmp_path / "tmp-like"
    shared.mkdir()
    shared.chmod(0o1777)
    sticky = r"directory .*writable by group or others \(mode 1777\): a shared directory like /tmp is no"
    with pytest.raises(ConfigError, match=sticky):
        open_store(sqlite_url(shared / "sessions.db"))
    assert not (shared / "sessions.db").exists()  # refused before anything was created
    with open_store(sqlite_url(shared / "mine" / "sessions.db")) as store:
        assert store.execute(Create(KEY, Record({}, meta())))
    assert stat.S_IMODE((shared / "mine").stat().st_mode) == 0o700


def test_v7_2_1_sqlite_refuses_a_shared_non_sticky_ancestor(tmp_path: Path) -> None:
    """ASVS 5.0 V7.2.1 / WSTG-SESS-01: a world-writable directory without the sticky bit
    anywhere above lets others rename our directory away and put theirs in its place."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    (shared / "mine").mkdir(mode=0o700)
    with pytest.raises(ConfigError, match=r"directory .*shared'.*writable by group or others"):
        open_store(sqlite_url(shared / "mine" / "sessions.db"))
    owned = tmp_path / "owned-by-other"
    owned.mkdir(mode=0o755)
    (owned / "mine").mkdir(mode=0o700)
    give_away(owned)
    with pytest.raises(ConfigError, match=r"owned-by-other'.*owned by"):
        open_store(sqlite_url(owned / "mine" / "sessions.db"))


def test_v7_2_1_sqlite_refuses_a_symlinked_database_and_never_writes_through_it(private: Path) -> None:
    """ASVS 5.0 V7.2.1 / WSTG-SESS-01: the database file as a link to a file the attacker
    controls is refused; the target is not touched."""
    target = private / "attacker.db"
    forge_sqlite(target)
    before = target.read_bytes()
    give_away(target)
    link = private / "sessions.db"
    link.symlink_to(target)
    with pytest.raises(ConfigError, match=r"symbolic link"):
        open_store(sqlite_url(link))
    assert target.read_bytes() == before


def test_v7_2_1_sqlite_new_files_are_0600_and_new_directories_0700_whatever_the_umask(
    tmp_path: Path, umask_0: None
) -> None:
    """ASVS 5.0 V7.2.1 / WSTG-SESS-01: under umask 0 the database, its -wal and -shm, and any
    directory the store makes are private all the same."""
    db = tmp_path / "new" / "deeper" / "sessions.db"
    with open_store(sqlite_url(db)) as store:
        assert store.execute(Create(KEY, Record({"a": "1"}, meta())))
        for path in (db, Path(str(db) + "-wal"), Path(str(db) + "-shm")):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for d in (tmp_path / "new", db.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_v7_2_1_sqlite_in_memory_still_works(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ASVS 5.0 V7.2.1: the in-memory database has no path to check, and is not made a file
    (even in a directory the checks would refuse)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.chdir(shared)
    with open_store(url) as store:
        assert store.execute(Create(KEY, Record({"a": "1"}, meta())))
        assert store.execute(Load(KEY, NOW)) == Record({"a": "1"}, meta())
    assert list(shared.iterdir()) == []


# ---- file store ----------------------------------------------------------------------------


def shard(root: Path, key: str = KEY) -> Path:
    return root / "s" / key[:2]


def forged_file(path: Path) -> bytes:
    """A session file of the attacker's making: a signed-in admin."""
    data = json.dumps({"fields": {"role": '"admin"'}, "meta": meta().to_dict()}).encode()
    path.write_bytes(data)
    return data


def test_v7_2_1_file_store_refuses_a_root_directory_another_user_owns(private: Path) -> None:
    """ASVS 5.0 V7.2.1 / WSTG-SESS-01: the root's owner counts, not only its mode: a 0700
    directory pre-created by someone else is theirs to fill with forged sessions."""
    root = private / "sessions"
    root.mkdir(mode=0o700)
    give_away(root)
    with pytest.raises(ConfigError, match=r"file store directory .*owned by .*uid 65534.*chown"):
        open_store(file_url(root))


@pytest.mark.parametrize("sub", ["s", "l", "u", "s/ab"])
def test_v7_2_1_file_store_refuses_a_subdirectory_another_user_owns_or_can_write(
    private: Path, sub: str
) -> None:
    """ASVS 5.0 V7.2.1 / WSTG-SESS-01: every directory the store uses is checked, not only
    the root: a shard or index directory of someone else's lets them plant sessions."""
    root = private / "sessions"
    FileStore(str(root)).close()
    give_away(root / sub)
    with pytest.raises(ConfigError, match=r"owned by .*uid 65534"):
        open_store(file_url(root))
    take_back(root / sub)
    (root / sub).chmod(0o733)
    with pytest.raises(ConfigError, match=r"writable by group or others"):
        open_store(file_url(root))
    (root / sub).chmod(0o700)
    open_store(file_url(root)).close()


def test_v7_2_1_file_store_refuses_user_index_and_lock_files_of_others(private: Path) -> None:
    """ASVS 5.0 V7.2.1 / WSTG-SESS-01: a user index directory or a lock stripe file that is
    someone else's (they could list or hold our locks) is refused."""
    root = private / "sessions"
    with FileStore(str(root)) as store:
        assert store.execute(Create(KEY, Record({}, meta(user="alice"))))
    (user_dir,) = (root / "u").iterdir()
    give_away(user_dir)
    with pytest.raises(ConfigError, match=r"user index directory .*owned by"):
        open_store(file_url(root))
    take_back(user_dir)
    lock = root / "l" / KEY[:2]
    give_away(lock)
    with pytest.raises(ConfigError, match=r"lock file .*owned by"):
        open_store(file_url(root))


def test_v7_2_1_file_store_refuses_a_symlinked_shard_planted_before_start(private: Path) -> None:
    """ASVS 5.0 V7.2.1 / WSTG-SESS-01: a shard directory replaced by a link (to a directory
    the attacker fills) is refused at start."""
    root = private / "sessions"
    FileStore(str(root)).close()
    theirs = private / "theirs"
    theirs.mkdir()
    forged_file(theirs / (KEY + ".json"))
    shard(root).rmdir()
    shard(root).symlink_to(theirs)
    with pytest.raises(ConfigError, match=r"symbolic link"):
        open_store(file_url(root))


def test_v7_2_1_file_store_never_follows_a_shard_replaced_by_a_link_while_running(private: Path) -> None:
    """ASVS 5.0 V7.2.1 / WSTG-SESS-01: a shard swapped for a link while the store runs is
    never followed: the forged session behind it is never read and nothing is written there."""
    root = private / "sessions"
    theirs = private / "theirs"
    theirs.mkdir()
    planted = forged_file(theirs / (KEY + ".json"))
    with FileStore(str(root)) as store:
        shard(root).rmdir()
        shard(root).symlink_to(theirs)
        for op in (Load(KEY, NOW), Create(KEY, Record({"a": "1"}, meta(user=None))),
                   Apply(KEY, Delta(set={"role": '"root"'}), NOW), Delete(KEY)):
            with pytest.raises(StoreError, match=r"symbolic link or not a directory"):
                store.execute(op)
    assert sorted(p.name for p in theirs.iterdir()) == [KEY + ".json"]
    assert (theirs / (KEY + ".json")).read_bytes() == planted


def test_v7_2_1_file_store_never_reads_or_writes_through_a_symlinked_session_file(
    private: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ASVS 5.0 V7.2.1 / WSTG-SESS-01: a session file replaced by a link to a file the
    attacker controls is never read (the forged admin session does not load) and never
    written through (Apply fails, Create and Delete replace or remove the link itself)."""
    root = private / "sessions"
    target = private / "attacker.json"
    planted = forged_file(target)
    give_away(target)
    with FileStore(str(root)) as store:
        path = shard(root) / (KEY + ".json")
        path.symlink_to(target)
        with caplog.at_level("WARNING", logger="sessionkeeper"):
            assert store.execute(Load(KEY, NOW)) is None
        assert "symbolic link" in caplog.text and KEY not in caplog.text
        assert store.execute(Apply(KEY, Delta(set={"role": '"root"'}, meta=meta()), NOW)) is False
        assert target.read_bytes() == planted
        assert store.execute(Create(KEY, Record({"a": "1"}, meta(user=None))))
        assert not path.is_symlink() and target.read_bytes() == planted
        assert store.execute(Load(KEY, NOW)) == Record({"a": "1"}, meta(user=None))
        path.unlink()
        path.symlink_to(target)
        assert store.execute(Delete(KEY)) is False  # no session was there; the link is gone
        assert not os.path.lexists(path) and target.read_bytes() == planted
        path.symlink_to(target)
        store.execute(Purge(NOW, 10))
        assert not os.path.lexists(path) and target.read_bytes() == planted


@pytest.mark.parametrize("how", ["owner", "mode", "fifo"])
def test_v7_2_1_file_store_never_reads_a_session_file_it_did_not_write(private: Path, how: str) -> None:
    """ASVS 5.0 V7.2.1 / WSTG-SESS-01: a regular file of someone else's, one writable by
    others, or a FIFO (which would hang a reader) in a shard is not a session."""
    root = private / "sessions"
    with FileStore(str(root)) as store:
        path = shard(root) / (KEY + ".json")
        if how == "fifo":
            os.mkfifo(path, 0o600)
        else:
            forged_file(path)
            if how == "owner":
                give_away(path)
            else:
                path.chmod(0o666)
        assert store.execute(Load(KEY, NOW)) is None


def test_v7_2_1_file_store_refuses_a_shared_non_sticky_ancestor_but_accepts_a_sticky_one(
    tmp_path: Path,
) -> None:
    """ASVS 5.0 V7.2.1 / WSTG-SESS-01: the chain above the root is checked; /tmp-like sticky
    directories are fine above a directory of ours, plain world-writable ones are not."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ConfigError, match=r"shared'.*writable by group or others"):
        open_store(file_url(shared / "sessions"))
    shared.chmod(0o1777)
    open_store(file_url(shared / "sessions")).close()
    assert stat.S_IMODE((shared / "sessions").stat().st_mode) == 0o700


def test_v7_2_1_file_store_follows_no_root_link_into_someone_elses_directory(tmp_path: Path) -> None:
    """ASVS 5.0 V7.2.1 / WSTG-SESS-01: a root given as a link is judged by where it leads."""
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    give_away(theirs)
    link = tmp_path / "sessions"
    link.symlink_to(theirs)
    with pytest.raises(ConfigError, match=r"theirs'.*owned by"):
        open_store(file_url(link))


def test_v7_2_1_file_store_new_files_are_0600_and_directories_0700_whatever_the_umask(
    tmp_path: Path,
) -> None:
    """ASVS 5.0 V7.2.1 / WSTG-SESS-01: under a umask that would give 0500 directories and 0400
    files (or 0777/0666 under umask 0), everything the store makes is 0700/0600."""
    for umask in (0o277, 0):
        root = tmp_path / f"umask{umask:o}" / "sessions"
        old = os.umask(umask)
        try:
            with FileStore(str(root)) as store:
                assert store.execute(Create(KEY, Record({"a": "1"}, meta(user="alice"))))
        finally:
            os.umask(old)
        dirs, files = [root.parent, root], []
        for parent, dirnames, filenames in os.walk(root):
            dirs += [Path(parent, d) for d in dirnames]
            files += [Path(parent, f) for f in filenames]
        assert len(files) >= 3  # the session, its lock stripe, the user index marker
        assert {stat.S_IMODE(d.stat().st_mode) for d in dirs} == {0o700}, umask
        assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}, umask
