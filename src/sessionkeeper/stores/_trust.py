"""Which paths an embedded store (SQLite, files) may trust: OpenSSH's StrictModes, for sessions.

Whoever can write a store's files can read every session and forge a signed-in one; whoever
can write a directory on the way to them can swap a file or a directory for one of their own. So
before a store uses a path it checks, and refuses with a :class:`~sessionkeeper.ConfigError`
that names the path and the command that fixes it:

- Every file and directory of the store, and the directory that holds them, must be owned by the
  user the process runs as (its effective uid) or by root, and must not be writable by group
  or others. Files must be regular files and directories real directories, never symbolic links.
- Each directory further up the chain (up to ``/``) must be owned by us or root and not be
  writable by group or others, except that a *sticky* world-writable directory such as ``/tmp``
  is accepted as the parent of a directory that we (or root) own: the sticky bit stops others
  from renaming or deleting that directory, so they cannot swap it. A sticky directory is never
  accepted as the store's own directory (a database file directly in ``/tmp``): there anyone
  could create the database, or its ``-wal``/``-shm``/``-journal`` companions, before us.
- A path with symbolic links is resolved once, and the real chain is what gets checked.

What the checks cannot see: a user with root, or with the same uid, can do anything anyway;
ACLs and network filesystems' own permissions are not read. New files are made 0600 and new
directories 0700 whatever the umask, so nothing we create starts out readable by others; an
existing store file that group or others can read is made private when it is ours (logged),
and refused (``chmod 600``) when it is root's (:func:`make_private`).
"""

from __future__ import annotations

import logging
import os
import stat

from ..errors import ConfigError

log = logging.getLogger("sessionkeeper")

__all__ = ["check_chain", "check_fd", "check_lstat", "make_private", "make_private_dir",
           "make_private_path", "supported"]

#: Whether this platform has POSIX owners (Windows has no geteuid: no checks there).
supported = hasattr(os, "geteuid")


def _me() -> int:
    return os.geteuid()


def _who(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _subject(what: str, path: str) -> str:
    # "above <x>" names a directory on the way to the store: say which one, then why it matters.
    return f"directory {path!r} ({what})" if what.startswith("above ") else f"{what} {path!r}"


def _refuse_owner(what: str, path: str, uid: int) -> ConfigError:
    me = _me()
    return ConfigError(
        f"{_subject(what, path)} is owned by {_who(uid)}, not by the user this process runs as "
        f"({_who(me)}) or root: its owner could read every session and forge signed-in ones. "
        f"Fix: `chown {me} {path}` if it is yours, or choose a store location in a private "
        "directory of your own"
    )


def _refuse_mode(what: str, path: str, mode: int) -> ConfigError:
    subject = f"{_subject(what, path)} is writable by group or others (mode {stat.S_IMODE(mode):04o})"
    if stat.S_ISDIR(mode) and mode & stat.S_ISVTX:
        # A shared directory like /tmp: its mode is right for what it is; the location is not.
        return ConfigError(
            f"{subject}: a shared directory like /tmp is no place for a session store, as anyone "
            f"could create its files before us. Fix: put the store in a private directory "
            f"(e.g. {os.path.join(path, 'myapp')}/, which the store creates 0700, or a "
            "per-user location such as ~/.local/state/myapp/)"
        )
    return ConfigError(
        f"{subject}: they could replace it and read or forge sessions. Fix: `chmod go-w {path}`, "
        "or choose a store location in a private directory of your own"
    )


def check_stat(st: os.stat_result, path: str, what: str, *, sticky_ok: bool = False) -> None:
    """Refuse ``st`` (of ``path``) unless we or root own it and only its owner can write it.

    ``sticky_ok``: a sticky directory writable by others (``/tmp``) is accepted; only for a
    directory *above* the store's own (see the module header).
    """
    if not supported:
        return
    if st.st_uid not in (0, _me()):
        raise _refuse_owner(what, path, st.st_uid)
    if st.st_mode & 0o022 and not (sticky_ok and stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX):
        raise _refuse_mode(what, path, st.st_mode)


def check_lstat(path: str, what: str, *, directory: bool, missing_ok: bool = False) -> bool:
    """Check the entry at ``path`` itself (a symbolic link is refused, never followed).

    Returns whether it exists (``False`` only with ``missing_ok``).
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if missing_ok:
            return False
        raise
    kind = "directory" if directory else "regular file"
    if stat.S_ISLNK(st.st_mode):
        raise ConfigError(
            f"{what} {path!r} is a symbolic link; a store never follows links inside itself, as "
            f"whoever planted it would choose what the store reads and writes. Fix: remove the "
            f"link (`rm {path}`) and check who else can write to its directory"
        )
    if not (stat.S_ISDIR(st.st_mode) if directory else stat.S_ISREG(st.st_mode)):
        raise ConfigError(f"{what} {path!r} is not a {kind}; remove it or choose another location")
    check_stat(st, path, what)
    return True


def check_fd(fd: int, path: str, what: str) -> None:
    """Check an open file (no window between the check and the use)."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{what} {path!r} is not a regular file; choose another location")
    check_stat(st, path, what)


def make_private(fd: int, path: str, what: str) -> bool:
    """Make the open file ``fd`` (of ``path``) readable by its owner only; whether it changed.

    A session store is a secret (every session's data, CSRF tokens and user ids), so a file of
    it that group or others can read (one made beforehand with the usual umask: ``sqlite3
    sessions.db``, a restore from backup) is made private on the spot when it is ours, with one
    warning saying so; one owned by root that we cannot change is refused, naming the fix.
    """
    if not supported:
        return False
    st = os.fstat(fd)
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o077:
        return False
    if st.st_uid != _me():
        raise ConfigError(
            f"{what} {path!r} is readable by group or others (mode {mode:04o}): anyone on this "
            f"host could read every session. Fix: `chmod 600 {path}`"
        )
    os.fchmod(fd, mode & 0o700)
    log.warning("%s %r was readable by group or others (mode %04o): made private (%04o), as a "
                "session store holds every session's data", what, path, mode, mode & 0o700)
    return True


def make_private_path(path: str, what: str) -> None:
    """:func:`make_private` for an existing file named by ``path`` (never through a link)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        check_fd(fd, path, what)
        make_private(fd, path, what)
    finally:
        os.close(fd)


def check_chain(directory: str, what: str) -> str:
    """Check the store's own directory ``directory`` and every directory above it; its real path.

    The directory itself must be ours (or root's) and writable by nobody else; directories above
    it may also be sticky and world-writable (see the module header).
    """
    real = os.path.realpath(directory)
    st = os.stat(real)
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{what} {real!r} is not a directory; choose another location")
    if supported:
        check_stat(st, real, what)
        path = real
        while True:
            parent = os.path.dirname(path)
            if parent == path:
                break
            check_stat(os.stat(parent), parent, f"above {what} {real!r}",
                       sticky_ok=True)
            path = parent
    return real


def make_private_dir(path: str) -> None:
    """Create ``path`` and any missing directories above it, each 0700 whatever the umask."""
    missing = []
    p = os.path.abspath(path)
    while not os.path.lexists(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for p in reversed(missing):
        try:
            os.mkdir(p, 0o700)
        except FileExistsError:
            continue  # made meanwhile by someone else: the checks that follow judge it
        os.chmod(p, 0o700)
