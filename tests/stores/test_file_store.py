"""FileStore beyond the conformance suite: URLs, permissions, atomic writes, corrupt files,
the user index, batched purge, processes sharing one directory, no raw tokens on disk."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from sessionkeeper import ConfigError, Session, SessionConfig, SessionFlow, open_store
from sessionkeeper.core.flow import RequestInfo
from sessionkeeper.core.ids import storage_key
from sessionkeeper.core.records import (
    Apply,
    Create,
    Delete,
    Delta,
    ListUser,
    Load,
    Meta,
    Purge,
    Record,
    Rename,
)
from sessionkeeper.drivers import run_sync
from sessionkeeper.stores.file import FileStore

NOW = 1_800_000_000.0


def key(n: int | str, prefix: str = "") -> str:
    k = hashlib.sha256(str(n).encode()).hexdigest()
    return prefix + k[len(prefix):]


def meta(ttl: float = 1800, user: str | None = None) -> Meta:
    return Meta(created_at=NOW, last_seen=NOW, expires_at=NOW + ttl, absolute_at=NOW + 43200, user_id=user)


def url_for(path: Path) -> str:
    return "file://" + quote(str(path))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "sessions"


@pytest.fixture
def store(root: Path) -> Iterator[FileStore]:
    s = open_store(url_for(root))
    assert isinstance(s, FileStore)
    try:
        yield s
    finally:
        s.close()


def session_file(root: Path, k: str) -> Path:
    return root / "s" / k[:2] / f"{k}.json"


def user_dir(root: Path, user: str) -> Path:
    return root / "u" / hashlib.sha256(user.encode()).hexdigest()


# ---- URLs --------------------------------------------------------------------------------


def test_url_forms(tmp_path: Path) -> None:
    with open_store(url_for(tmp_path / "a dir" / "x")) as s:  # percent-encoded, parents made
        assert isinstance(s, FileStore) and s.root == str(tmp_path / "a dir" / "x")
    with open_store("file://localhost" + quote(str(tmp_path / "y"))) as s:
        assert isinstance(s, FileStore) and s.root == str(tmp_path / "y")


@pytest.mark.parametrize("url", ["file://", "file:///", "file://relative/dir", "file://host/abs/dir",
                                 "file:///abs/dir?x=1", "file:///abs/dir#f"])
def test_malformed_url_names_the_expected_form(url: str) -> None:
    with pytest.raises(ConfigError, match="file:///absolute/directory"):
        open_store(url)


def test_relative_path_and_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="absolute path"):
        FileStore("relative/dir")
    with pytest.raises(ConfigError, match="no options"):
        open_store(url_for(tmp_path / "x"), fsync=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="not a directory"):
        open_store(url_for(tmp_path / "file"))


def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o775)
    with pytest.raises(ConfigError, match="writable by group or others"):
        open_store(url_for(shared))
    shared.chmod(0o700)
    open_store(url_for(shared)).close()


# ---- permissions and atomic writes -------------------------------------------------------


def test_directories_are_0700_and_files_0600(store: FileStore, root: Path) -> None:
    assert store.execute(Create(key(1), Record({"a": "1"}, meta(user="alice"))))
    assert store.execute(Apply(key(1), Delta(set={"b": "2"}), NOW))
    assert store.execute(Rename(key(1), key(2), Delta(meta=meta(user="bob")), NOW))
    dirs, files = [root], []
    for parent, dirnames, filenames in os.walk(root):
        dirs += [Path(parent, d) for d in dirnames]
        files += [Path(parent, f) for f in filenames]
    assert len(dirs) > 256 and {"s", "l", "u"} <= {d.name for d in dirs}
    assert session_file(root, key(2)) in files and user_dir(root, "bob") / key(2) in files
    assert any(f.parent.name == "l" for f in files)  # lock stripes
    assert {stat.S_IMODE(d.stat().st_mode) for d in dirs} == {0o700}
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}


def test_file_content_is_fields_and_meta(store: FileStore, root: Path) -> None:
    m = meta(user="alice")
    store.execute(Create(key(1), Record({"a\x00": '"ü"'}, m)))
    raw = session_file(root, key(1)).read_bytes()
    assert raw.isascii()
    assert json.loads(raw) == {"fields": {"a\x00": '"ü"'}, "meta": json.loads(json.dumps(m.to_dict()))}


def test_readers_never_see_a_half_written_file(store: FileStore, root: Path) -> None:
    big = {f"f{i}": json.dumps("x" * 20_000) for i in range(5)}
    store.execute(Create(key(1), Record(big, meta())))
    stop = threading.Event()
    seen: list[object] = []

    def reader() -> None:
        while not stop.is_set():
            seen.append(store.load(key(1), NOW))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(150):
            assert store.execute(Apply(key(1), Delta(set={"n": str(i)}), NOW))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert seen and all(isinstance(r, Record) and r.fields["f4"] == big["f4"] for r in seen)
    assert [p.name for p in session_file(root, key(1)).parent.iterdir()] == [f"{key(1)}.json"]


# ---- corrupt files, the user index, purge ------------------------------------------------------


def test_corrupt_files_read_as_missing_and_purge_removes_them(store: FileStore, root: Path) -> None:
    for i, junk in enumerate([b"{not json", b"\xff\xfe", b'{"fields": {"a": 1}, "meta": {}}', b"[]", b""]):
        store.execute(Create(key(i), Record({"a": "1"}, meta())))
        session_file(root, key(i)).write_bytes(junk)
        assert store.load(key(i), NOW) is None
        assert store.execute(Apply(key(i), Delta(set={"a": "2"}), NOW)) is False
        assert store.execute(Rename(key(i), key(f"new{i}"), Delta(), NOW)) is False
    store.execute(Create(key("live"), Record({"a": "1"}, meta())))
    assert store.count(NOW) == 1
    assert store.purge(NOW) == 5
    assert not any(session_file(root, key(i)).exists() for i in range(5))
    assert store.load(key("live"), NOW) is not None


def test_stray_temporary_files_are_purged(store: FileStore, root: Path) -> None:
    store.execute(Create(key(1), Record({"a": "1"}, meta())))
    stray = session_file(root, key(1)).parent / f".tmp.{key(1)}.deadbeef"
    stray.write_bytes(b'{"half')
    assert store.purge(NOW) == 0
    assert not stray.exists() and store.load(key(1), NOW) is not None


def test_purge_removes_only_expired_sessions_in_several_batches(
    store: FileStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Same two-hex prefix: one lock stripe, so batching is what splits the work.
    dead = [key(i, "00") for i in range(5)] + [key(i, "ff") for i in range(5, 7)]
    live = [key(i, "00") for i in range(7, 10)]
    for k in dead:
        store.execute(Create(k, Record({"a": "1"}, meta(ttl=10, user="u"))))
    for k in live:
        store.execute(Create(k, Record({"a": "1"}, meta(user="u"))))
    calls: list[int] = []
    original = store._purge_batch

    def spy(stripe: str, keys: list[str], tmps: list[str], now: float) -> int:
        calls.append(len(keys))
        return original(stripe, keys, tmps, now)

    monkeypatch.setattr(store, "_purge_batch", spy)
    assert store.execute(Purge(NOW + 10, 2)) == 7
    assert sorted(calls) == [1, 2, 2, 2]  # "00": 2 + 2 + 1, "ff": 2
    assert all(store.load(k, NOW + 10) is None for k in dead)
    assert all(store.load(k, NOW + 10) is not None for k in live)
    assert sorted(p.name for p in user_dir(root, "u").iterdir()) == sorted(live)
    assert store.execute(Purge(NOW + 10, 2)) == 0


def test_user_index_markers_follow_the_session(store: FileStore, root: Path) -> None:
    store.execute(Create(key(1), Record({}, meta(user="alice"))))
    assert (user_dir(root, "alice") / key(1)).exists()
    store.execute(Apply(key(1), Delta(meta=meta(user="bob")), NOW))  # re-assigned
    assert not (user_dir(root, "alice") / key(1)).exists() and (user_dir(root, "bob") / key(1)).exists()
    store.execute(Rename(key(1), key(2), Delta(), NOW))
    assert [p.name for p in user_dir(root, "bob").iterdir()] == [key(2)]
    store.execute(Delete(key(2)))
    assert list(user_dir(root, "bob").iterdir()) == []


def test_stale_markers_are_never_listed_and_purge_sweeps_them(store: FileStore, root: Path) -> None:
    store.execute(Create(key(1), Record({}, meta(user="alice"))))
    store.execute(Create(key(2), Record({}, meta(user="bob"))))
    # What a crash between writing a session and updating the index can leave behind:
    (user_dir(root, "alice") / key(2)).touch()  # bob's session under alice
    (user_dir(root, "alice") / key(3)).touch()  # no session at all
    (user_dir(root, "carol")).mkdir()
    (user_dir(root, "carol") / key(4)).touch()
    assert [k for k, _ in store.execute(ListUser("alice", NOW))] == [key(1)]
    assert store.execute(ListUser("carol", NOW)) == []
    assert store.purge(NOW) == 0
    assert [p.name for p in user_dir(root, "alice").iterdir()] == [key(1)]
    assert [p.name for p in user_dir(root, "bob").iterdir()] == [key(2)]
    assert not user_dir(root, "carol").exists()


def test_rename_refuses_a_taken_key(store: FileStore) -> None:
    store.execute(Create(key(1), Record({"a": "1"}, meta())))
    store.execute(Create(key(2), Record({"b": "2"}, meta())))
    assert store.execute(Rename(key(1), key(2), Delta(set={"x": "1"}), NOW)) is False
    assert store.load(key(1), NOW) == Record({"a": "1"}, meta())
    assert store.load(key(2), NOW) == Record({"b": "2"}, meta())


def test_malformed_keys_never_touch_the_filesystem(store: FileStore, root: Path) -> None:
    before = sorted(p for p in root.rglob("*"))
    for bad in ["../../x", "00/../../x", "." * 64, key(1)[:63] + "/"]:
        assert store.execute(Create(bad, Record({}, meta()))) is False
        assert store.execute(Rename(key(1), bad, Delta(), NOW)) is False
        assert store.execute(Load(bad, NOW)) is None
    assert sorted(p for p in root.rglob("*")) == before


def test_close_is_idempotent(store: FileStore) -> None:
    import asyncio

    store.close()
    store.close()
    asyncio.run(store.aclose())
    asyncio.run(store.aclose())


# ---- processes ---------------------------------------------------------------------------


def _apply_fields(url: str, k: str, worker: int, n: int, barrier: threading.Barrier) -> None:
    with open_store(url) as s:
        barrier.wait(60)
        for i in range(n):
            if not s.execute(Apply(k, Delta(set={f"w{worker}-{i}": str(i)}), NOW)):
                raise SystemExit(3)


def test_processes_applying_different_fields_all_survive(root: Path) -> None:
    workers, n = 4, 40
    url = url_for(root)
    with open_store(url) as s:
        s.execute(Create(key(1), Record({}, meta())))
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers)
    procs = [ctx.Process(target=_apply_fields, args=(url, key(1), w, n, barrier)) for w in range(workers)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0] * workers
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    with open_store(url) as s:
        got = s.load(key(1), NOW)
    assert got is not None
    assert dict(got.fields) == {f"w{w}-{i}": str(i) for w in range(workers) for i in range(n)}


# ---- secrets -----------------------------------------------------------------------------


def test_raw_token_never_reaches_the_disk(root: Path) -> None:
    flow = SessionFlow(SessionConfig())
    with open_store(url_for(root)) as store:
        state = flow.begin(RequestInfo())
        session: Session = flow.open(state)
        session["user"] = "alice"
        session.login("alice")
        headers = run_sync(flow.commit(state, session, 200), store)
    (set_cookie,) = [v for k, v in headers if k == "Set-Cookie"]
    token = flow.token(set_cookie.split(";")[0])
    assert token is not None
    names = [str(p.relative_to(root)) for p in root.rglob("*")]
    contents = b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())
    assert token not in "".join(names) and token.encode() not in contents
    assert session_file(root, storage_key(token)).exists()
