"""File store: one JSON file per session under a directory, safe across threads and processes.

URL: ``file:///absolute/directory`` (created 0700 if missing). POSIX only, one host, a local
filesystem: it relies on ``flock`` and an atomic ``rename``, which network filesystems do not
all provide.

Layout (every directory 0700, every file 0600)::

    root/s/<ab>/<key>.json   a session: {"fields": {name: encoded text}, "meta": Meta.to_dict()}
    root/l/<ab>              the lock stripe for every key starting with <ab> (256 stripes)
    root/u/<sha256(user)>/<key>   empty marker: the user index behind ListUser
    root/x/<slot>/<key>      empty marker: a short-lived record (a renewal alias) becomes
                             garbage in time slot <slot> (16 s each); swept by Rename

How it keeps the store rules:
- Writes go to a temporary file in the session's own directory, then ``os.replace`` it over
  the old one, so a reader sees the old or the new file, never half of one: loads, ListUser
  and Count take no lock.
- Create, Apply, Rename and Delete read, change and write under ``flock`` on the key's lock
  stripe. The lock is on a separate, never-replaced file: a lock on the data file itself would
  be left behind on the inode that ``os.replace`` swaps out. Each operation opens the stripe
  afresh, so threads of one process exclude each other as processes do, and a fork never
  shares a lock. Rename takes its two stripes in sorted order, so two renames cannot deadlock.
- The user index is a directory of marker files per user, kept under the same stripe lock as
  the session. A marker is only a hint: ListUser reads each session and lists it only if it is
  alive and really belongs to that user, so it never shows an expired, deleted or re-assigned
  session. Markers are written before a session gains a user and removed after it loses one,
  so a crash leaves at worst an extra marker (which purge sweeps), never a missing one: a
  "log out everywhere" sees every session. A full scan would need no upkeep but reads every
  session of every user on each call.
- A file that does not parse is treated as missing and removed by purge, as are temporary
  files a crashed process left behind.
- Scan walks the 256 shards in order and each shard's keys in order (so key order overall),
  reading at most ``limit`` session files per page without a lock, as a Load does; the
  cursor is the last key read.
- No fsync: a power cut may lose the last writes or leave a torn file, which reads as missing.

Trust (issue 8.7, OpenSSH's StrictModes; the rule is stated in ``_trust``): at start the root,
every directory above it, ``s``, ``l``, ``u``, the 256 shards and the user directories must be
ours (or root's), writable by nobody else and not symbolic links, or the store refuses to open
with a :class:`~sessionkeeper.ConfigError` saying how to fix it. While it runs it never follows
a link inside itself: every shard and user directory is opened ``O_NOFOLLOW | O_DIRECTORY``
for each operation and the files in it are reached through that descriptor (``dir_fd``), and
every file is opened ``O_NOFOLLOW``. A session file that is a link, not a regular file, or
owned or writable by someone else is never read (it counts as corrupt: missing to a Load,
replaced by a Create, removed by a Delete or a purge, and logged); ``os.replace`` and
``unlink`` act on a link itself, never on what it points to.

Expiry (issue 8.8): an expired file is never returned. One past both its expiry and its
absolute limit is garbage (Redis's TTL rule: a merely idle session stays until then, so the
request flow can tell "expired" from "unknown"; a renewal alias expires at its absolute
limit, the end of its grace window). Garbage goes promptly, not at the next purge:
- a Load that meets it deletes it under the stripe lock;
- records that live at most an hour (renewal aliases: their grace window is at most 300 s)
  get a marker in ``x/<slot>``, the 16-second slot in which they become garbage. Each Rename
  (a renewal writes its alias just before its Rename) takes up to :data:`SWEEP_BATCH` markers
  from slots wholly in the past and, under each key's stripe lock, deletes the record if it
  is garbage (or moves the marker to the record's new slot if it was extended). So an alias
  is gone from the disk after the first Rename at least 16 s past its window (unless more
  than a batch waits). Markers are hints, as in the user index: written before the record,
  checked against it before anything is deleted. Longer-lived sessions are left to purge;
- purge removes all garbage, and sweeps every past slot.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from functools import partial
from typing import Any
from urllib.parse import SplitResult, unquote

from ..core.ids import is_valid_key
from ..core.patch import apply_patch_text
from ..core.records import Delta, Meta, Op, Record, ScanPage, is_renewal_alias, scan_start
from ..errors import ConfigError, StoreError
from . import _trust
from .base import PurgeNaming, redact_url

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FileStore"]

_URL_FORM = "file:///absolute/directory"
_SUFFIX = ".json"
_TMP = ".tmp."
_STRIPES = [f"{i:02x}" for i in range(256)]  # fixed: every process sharing a root must agree
# O_NONBLOCK: a FIFO planted in place of a session file must not hang the reader.
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LOCK = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
_MARK = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC

log = logging.getLogger("sessionkeeper")
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

# What reading a session file can give besides a Record.
_CORRUPT = object()


#: How many expiry markers each Rename takes on its way.
SWEEP_BATCH = 32
_SLOT = 16.0  # seconds per expiry slot
_SHORT = 3600.0  # records living at most this long are indexed by expiry (aliases: <= 300 s)


def _garbage_from(meta: Meta) -> float:
    """When a record becomes garbage: expired and past its absolute limit."""
    return max(meta.expires_at, meta.absolute_at)


def _stripe(key: str) -> str:
    return key[:2]


def _user_dir_name(user_id: str) -> str:
    # A user id is any string: hashing makes it a safe, fixed-length directory name.
    return hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()


class FileStore(PurgeNaming):
    """Sessions as JSON files under ``root`` (an absolute directory path)."""

    name = "file"

    def __init__(self, root: str) -> None:
        if fcntl is None:  # pragma: no cover - Windows
            raise ConfigError("the file store needs POSIX flock(); use sqlite:// on this platform")
        if not os.path.isabs(root):
            raise ConfigError(f"file store directory {root!r} must be an absolute path; expected {_URL_FORM}")
        self.root = os.path.normpath(root)
        try:
            if not os.path.lexists(self.root):
                _trust.make_private_dir(self.root)
            # The real path from now on: the checks judged that chain, not a link's.
            self.root = _trust.check_chain(self.root, "file store directory")
        except OSError as exc:
            raise ConfigError(f"cannot use {self.root!r} as a file store directory: {exc}") from None
        self._sessions = os.path.join(self.root, "s")
        self._locks = os.path.join(self.root, "l")
        self._users = os.path.join(self.root, "u")
        self._slots = os.path.join(self.root, "x")
        try:
            self._prepare()
        except OSError as exc:
            raise ConfigError(f"cannot use {self.root!r} as a file store directory: {exc}") from None

    @classmethod
    def from_url(cls, url: SplitResult, **options: Any) -> FileStore:
        """Open ``file:///absolute/directory``."""
        if options:
            raise ConfigError(f"the file store takes no options (got {', '.join(sorted(options))})")
        if url.netloc not in ("", "localhost") or url.query or url.fragment:
            raise ConfigError(
                f"file store URL {redact_url(url)!r} is malformed: it takes no host, query or fragment; "
                f"expected {_URL_FORM}"
            )
        path = unquote(url.path)
        if not path.startswith("/") or path.strip("/") == "" or "\x00" in path:
            raise ConfigError(
                f"file store URL {redact_url(url)!r} needs an absolute directory path; expected {_URL_FORM} "
                "(three slashes, then the path from the root)"
            )
        return cls(path)

    def _prepare(self) -> None:
        # Every directory the store uses, made 0700 if missing, then checked (a link, another
        # owner, or group/other write access is refused: see the module header).
        dirs = [self._sessions, self._locks, self._users, self._slots]
        dirs += [os.path.join(self._sessions, s) for s in _STRIPES]
        for d in dirs:
            self._private_dir(d)
        for name in os.listdir(self._users):
            _trust.check_lstat(os.path.join(self._users, name), "file store user index directory",
                               directory=True)
        for name in os.listdir(self._slots):
            _trust.check_lstat(os.path.join(self._slots, name), "file store expiry slot directory",
                               directory=True)
        for s in _STRIPES:
            self._private_file(os.path.join(self._locks, s), "file store lock file")

    @staticmethod
    def _private_file(path: str, what: str) -> None:
        """Create ``path`` 0600 whatever the umask, or check the one that is there."""
        try:
            fd = os.open(path, _LOCK | os.O_EXCL, 0o600)
        except FileExistsError:
            _trust.check_lstat(path, what, directory=False)
        else:
            os.fchmod(fd, 0o600)
            os.close(fd)

    @staticmethod
    def _private_dir(path: str) -> None:
        try:
            os.mkdir(path, 0o700)
            os.chmod(path, 0o700)  # whatever the umask
        except FileExistsError:
            pass
        _trust.check_lstat(path, "file store directory", directory=True)

    def execute(self, op: Op) -> Any:
        """Perform one operation; filesystem failures become :class:`StoreError`."""
        try:
            return super().execute(op)
        except OSError as exc:
            raise StoreError(f"file store {self.root!r}: {exc}") from exc

    # ---- files ---------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        """For messages and tests; operations reach files through :meth:`_dir`."""
        return os.path.join(self._sessions, _stripe(key), key + _SUFFIX)

    @contextmanager
    def _dir(self, path: str) -> Iterator[int]:
        """A descriptor of the directory ``path``, which must not be a symbolic link."""
        try:
            fd = os.open(path, _DIR)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise StoreError(
                    f"file store directory {path!r} is a symbolic link or not a directory; the "
                    "store never follows links inside itself. Remove it, check who else can "
                    "write to the store, and restart"
                ) from None
            raise
        try:
            yield fd
        finally:
            os.close(fd)

    def _shard(self, key: str) -> Any:
        return self._dir(os.path.join(self._sessions, _stripe(key)))

    @contextmanager
    def _locked(self, *keys: str) -> Iterator[None]:
        """Hold the lock stripes of ``keys`` (each once, in sorted order)."""
        with ExitStack() as stack:
            for s in sorted({_stripe(k) for k in keys}):
                fd = os.open(os.path.join(self._locks, s), _LOCK, 0o600)
                stack.callback(os.close, fd)  # closing the descriptor releases the lock
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield

    def _read(self, key: str) -> Record | object | None:
        """``key``'s Record; ``None`` if there is no file; ``_CORRUPT`` if it won't parse or
        is not a file of ours (a link, a FIFO, another owner's or writable by others)."""
        name = key + _SUFFIX
        with self._shard(key) as dfd:
            try:
                fd = os.open(name, _READ, dir_fd=dfd)
            except FileNotFoundError:
                return None
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                self._untrusted(key, "is a symbolic link")
                return _CORRUPT
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    self._untrusted(key, "is not a regular file")
                    return _CORRUPT
                try:
                    _trust.check_stat(st, self._path(key), "session file")
                except ConfigError as exc:
                    self._untrusted(key, str(exc))
                    return _CORRUPT
                raw = f.read()
        try:
            doc = json.loads(raw)
            fields = doc["fields"]
            if not isinstance(fields, dict) or not all(type(v) is str for v in fields.values()):
                return _CORRUPT
            return Record(fields, Meta.from_dict(doc["meta"]))
        except (ValueError, TypeError, KeyError):  # UnicodeDecodeError is a ValueError
            return _CORRUPT

    def _untrusted(self, key: str, why: str) -> None:
        log.warning("file store %r: the session file of key %s… %s; it is not read, and a write, "
                    "delete or purge replaces it. Check who else can write to the store.",
                    self.root, key[:8], why)

    def _live(self, key: str, now: float) -> Record | None:
        got = self._read(key)
        if isinstance(got, Record) and got.meta.expires_at > now:
            return got
        return None

    def _exists(self, key: str) -> bool:
        with self._shard(key) as dfd:
            try:
                os.lstat(key + _SUFFIX, dir_fd=dfd)
            except FileNotFoundError:
                return False
            return True

    def _unlink(self, key: str) -> None:
        """Remove ``key``'s file (a link itself, never what it points to)."""
        with self._shard(key) as dfd:
            os.unlink(key + _SUFFIX, dir_fd=dfd)

    @staticmethod
    def _write_tmp(dfd: int, key: str, record: Record) -> str:
        """Write ``record`` to a new temporary file in the shard ``dfd``; its name."""
        doc = {"fields": dict(record.fields), "meta": record.meta.to_dict()}
        data = json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode("ascii")
        tmp = f"{_TMP}{key}.{secrets.token_hex(8)}"
        fd = os.open(tmp, _NEW, 0o600, dir_fd=dfd)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise
        return tmp

    def _write(self, key: str, record: Record) -> None:
        with self._shard(key) as dfd:
            tmp = self._write_tmp(dfd, key, record)
            try:
                # replace() swaps the directory entry: a link there is replaced, not written through.
                os.replace(tmp, key + _SUFFIX, src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                with suppress(OSError):
                    os.unlink(tmp, dir_fd=dfd)
                raise

    def _mark(self, user_id: str | None, key: str) -> None:
        if user_id is not None:
            self._put_marker(os.path.join(self._users, _user_dir_name(user_id)), key, "user index")

    def _put_marker(self, directory: str, key: str, what: str) -> None:
        """An empty file ``key`` in ``directory`` (made if need be), owner-only whatever the
        umask; a purge or sweep may remove the (then empty) directory in between: make it
        again."""
        for _ in range(10):
            try:
                os.mkdir(directory, 0o700)
                os.chmod(directory, 0o700)
            except FileExistsError:
                pass
            except FileNotFoundError:
                continue
            try:
                with self._dir(directory) as dfd:
                    fd = os.open(key, _MARK, 0o600, dir_fd=dfd)
                    try:
                        os.fchmod(fd, 0o600)  # whatever the umask
                    finally:
                        os.close(fd)
                return
            except FileNotFoundError:
                continue
        raise StoreError(f"cannot write the {what} under {directory!r}")

    def _unmark(self, user_id: str | None, key: str) -> None:
        if user_id is not None:
            directory = os.path.join(self._users, _user_dir_name(user_id))
            with suppress(FileNotFoundError), self._dir(directory) as dfd:
                os.unlink(key, dir_fd=dfd)

    @staticmethod
    def _patched(record: Record, delta: Delta) -> Record:
        fields = {k: v for k, v in record.fields.items() if k not in delta.delete}
        fields.update(delta.set)
        for k, ops in delta.patch.items():  # merge rules: core/patch.py (we hold the lock)
            text = apply_patch_text(fields.get(k), ops)
            if text is not None:
                fields[k] = text
        return Record(fields, delta.meta if delta.meta is not None else record.meta)

    # ---- operations ----------------------------------------------------------------------

    def do_load(self, key: str, now: float) -> Record | None:
        if not is_valid_key(key):
            return None
        got = self._read(key)
        if isinstance(got, Record):
            if got.meta.expires_at > now:
                return got
            if got.meta.absolute_at <= now:
                # Garbage (an old renewal alias above all): nobody may read it again, so it
                # goes now rather than at the next purge (under the lock, as purge does).
                self._purge_batch(_stripe(key), [key], [], now)
        return None

    def do_create(self, key: str, record: Record) -> bool:
        if not is_valid_key(key):
            return False
        with self._locked(key):
            if isinstance(self._read(key), Record):
                return False  # taken (a corrupt file counts as missing and is overwritten)
            self._mark(record.meta.user_id, key)
            self._mark_expiry(record.meta, key)
            self._write(key, record)
        return True

    def do_apply(self, key: str, delta: Delta, now: float) -> bool:
        if not is_valid_key(key):
            return False
        with self._locked(key):
            current = self._live(key, now)
            if current is None:
                return False
            new = self._patched(current, delta)
            old_user, new_user = current.meta.user_id, new.meta.user_id
            if new_user != old_user:
                self._mark(new_user, key)
            self._write(key, new)
            if new_user != old_user:
                self._unmark(old_user, key)
        return True

    def do_rename(self, old: str, new: str, delta: Delta, now: float) -> bool:
        if not (is_valid_key(old) and is_valid_key(new)) or old == new:
            return False
        with self._locked(old, new):
            current = self._live(old, now)
            if current is None or self._exists(new):
                return False
            moved = self._patched(current, delta)
            self._mark(moved.meta.user_id, new)
            self._mark_expiry(moved.meta, new)
            with self._shard(new) as dfd:
                tmp = self._write_tmp(dfd, new, moved)
                try:
                    # The old key dies before the new one is born: a crash in between logs the
                    # user out rather than leaving a token alive that rename meant to kill.
                    self._unlink(old)
                    os.replace(tmp, new + _SUFFIX, src_dir_fd=dfd, dst_dir_fd=dfd)
                except BaseException:
                    with suppress(OSError):
                        os.unlink(tmp, dir_fd=dfd)
                    raise
            self._unmark(current.meta.user_id, old)
        # After the locks (it takes each key's own). Best effort: the rename is done, and
        # what a failed sweep leaves, the next one or a purge removes.
        with suppress(OSError, StoreError):
            self._sweep_slots(now, SWEEP_BATCH)
        return True

    def do_delete(self, key: str) -> bool:
        if not is_valid_key(key):
            return False
        with self._locked(key):
            current = self._read(key)
            if current is None:
                return False
            self._unlink(key)
            if isinstance(current, Record):
                self._unmark(current.meta.user_id, key)
                return True
            return False  # a corrupt file counts as missing; it is gone now all the same

    def do_list_user(self, user_id: str, now: float) -> list[tuple[str, Meta]]:
        try:
            with self._dir(os.path.join(self._users, _user_dir_name(user_id))) as dfd:
                names = os.listdir(dfd)
        except FileNotFoundError:
            return []
        out = []
        for key in sorted(names):
            if not is_valid_key(key):
                continue
            record = self._live(key, now)
            if record is not None and record.meta.user_id == user_id:
                out.append((key, record.meta))
        return out

    def _session_keys(self, stripe: str) -> tuple[list[str], list[str]]:
        """The keys stored in one stripe's directory, and any temporary files there."""
        keys, tmps = [], []
        with self._dir(os.path.join(self._sessions, stripe)) as dfd:
            names = os.listdir(dfd)
        for name in names:
            if name.startswith(_TMP):
                tmps.append(name)
            elif name.endswith(_SUFFIX) and is_valid_key(name[: -len(_SUFFIX)]):
                keys.append(name[: -len(_SUFFIX)])
        return keys, tmps

    def _dead(self, key: str, now: float) -> tuple[bool, Record | None]:
        """Whether ``key``'s file is expired or corrupt, and its record if it parsed."""
        got = self._read(key)
        if got is _CORRUPT:
            return True, None
        if isinstance(got, Record):
            return got.meta.expires_at <= now, got
        return False, None

    def _purge_batch(self, stripe: str, keys: list[str], tmps: list[str], now: float, *,
                     sessions: list[tuple[str, Meta]] | None = None) -> int:
        """Remove the sessions in ``keys`` that are still dead, under the stripe's lock; name
        the sessions among them (not aliases, not unreadable files) in ``sessions``."""
        removed = 0
        with self._locked(stripe):
            for key in keys:
                dead, got = self._dead(key, now)  # again: it may have been touched meanwhile
                if dead:
                    with suppress(FileNotFoundError):  # a Load that met it dead came first
                        self._unlink(key)
                        if got is not None:
                            self._unmark(got.meta.user_id, key)
                            if sessions is not None and not is_renewal_alias(got.fields, got.meta):
                                sessions.append((key, got.meta))
                        removed += 1
            # Writers hold this lock while their temporary file exists: any left now is
            # debris from a process that died mid-write.
            if tmps:
                with self._dir(os.path.join(self._sessions, stripe)) as dfd:
                    for name in tmps:
                        with suppress(FileNotFoundError):
                            os.unlink(name, dir_fd=dfd)
        return removed

    def _purge(self, now: float, batch: int, sessions: list[tuple[str, Meta]] | None) -> int:
        if batch < 1:
            raise ConfigError(f"purge batch must be at least 1, not {batch!r}")
        removed = 0
        remove = self._purge_batch if sessions is None else partial(self._purge_batch, sessions=sessions)
        for stripe in _STRIPES:
            keys, tmps = self._session_keys(stripe)
            # Find the dead without a lock, then confirm and remove them in locked batches.
            dead = [k for k in keys if self._dead(k, now)[0]]
            for i in range(0, len(dead), batch):
                removed += remove(stripe, dead[i : i + batch], tmps if i == 0 else [], now)
            if not dead and tmps:
                self._purge_batch(stripe, [], tmps, now)
        self._sweep_index(now)
        self._sweep_slots(now, None)
        return removed

    # ---- the expiry slots (see the module header) ----------------------------------------

    def _mark_expiry(self, meta: Meta, key: str) -> None:
        """Index a short-lived record (a renewal alias) by the slot it becomes garbage in."""
        at = _garbage_from(meta)
        if at - meta.created_at > _SHORT:
            return  # a session: purge's business
        self._put_marker(os.path.join(self._slots, str(int(at // _SLOT))), key, "expiry index")

    def _sweep_slots(self, now: float, budget: int | None) -> None:
        """Take markers from slots wholly past ``now`` (at most ``budget``; all if None)."""
        past = sorted(int(n) for n in os.listdir(self._slots) if n.isdigit() and (int(n) + 1) * _SLOT <= now)
        for slot in past:
            directory = os.path.join(self._slots, str(slot))
            try:
                with self._dir(directory) as dfd:
                    keys = [k for k in os.listdir(dfd) if is_valid_key(k)]
                    for key in keys[:budget]:
                        with self._locked(key):
                            got = self._read(key)
                            if isinstance(got, Record):
                                if _garbage_from(got.meta) <= now:
                                    self._unlink(key)
                                    self._unmark(got.meta.user_id, key)
                                else:
                                    self._mark_expiry(got.meta, key)  # extended since: its new slot
                            with suppress(FileNotFoundError):
                                os.unlink(key, dir_fd=dfd)
            except (FileNotFoundError, StoreError):
                continue  # swept by another process meanwhile, or not ours: never followed
            if budget is not None:
                budget -= min(budget, len(keys))
            with suppress(OSError):  # not empty (budget ran out, or a late marker): next time
                os.rmdir(directory)
            if budget == 0:
                return

    def _sweep_index(self, now: float) -> None:
        """Drop user-index markers whose session is gone, dead or someone else's."""
        for user_dir in os.listdir(self._users):
            directory = os.path.join(self._users, user_dir)
            try:
                with self._dir(directory) as dfd:
                    names = os.listdir(dfd)
            except (FileNotFoundError, StoreError):
                continue  # gone, or not a directory of ours: never followed
            for key in names:
                if not is_valid_key(key) or self._marker_ok(user_dir, key, now):
                    continue  # alive (or not a marker of ours: left alone)
                with self._locked(key):
                    if not self._marker_ok(user_dir, key, now):
                        with suppress(FileNotFoundError), self._dir(directory) as dfd:
                            os.unlink(key, dir_fd=dfd)
            with suppress(OSError):  # not empty (a session gained this user meanwhile): keep
                os.rmdir(directory)

    def _marker_ok(self, user_dir: str, key: str, now: float) -> bool:
        record = self._live(key, now)
        return (
            record is not None
            and record.meta.user_id is not None
            and _user_dir_name(record.meta.user_id) == user_dir
        )

    def do_count(self, now: float) -> int:
        n = 0
        for stripe in _STRIPES:
            keys, _ = self._session_keys(stripe)
            n += sum(1 for k in keys if self._live(k, now) is not None)
        return n

    def do_scan(self, now: float, cursor: str, limit: int) -> ScanPage:
        after = scan_start(cursor, limit)
        found: list[tuple[str, Meta]] = []
        read, last = 0, after
        for stripe in _STRIPES[_STRIPES.index(_stripe(after)) if after else 0 :]:
            keys, _ = self._session_keys(stripe)
            for key in sorted(k for k in keys if k > after):
                if read == limit:  # another key follows: this page ends at the last one read
                    return ScanPage(tuple(found), last)
                read += 1
                last = key
                record = self._live(key, now)
                if record is not None and not is_renewal_alias(record.fields, record.meta):
                    found.append((key, record.meta))
        return ScanPage(tuple(found), "")
