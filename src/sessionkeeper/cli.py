"""The sessionkeeper command: see and act on the sessions in a store.

Every command that touches a store takes its URL with --store (or the environment variable
SESSIONKEEPER_STORE), the same URL open_store() takes. Sessions are named by the short public
id that Device.session_id shows on account pages ("handle"); it depends on the app's id_secret,
so pass the same one with --id-secret or SESSIONKEEPER_ID_SECRET.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any, TextIO

from . import __version__
from . import _cli_output as out
from ._cli_scan import redis_heal_indexes, scan, size
from .core import lifecycle
from .core.config import SessionConfig
from .core.events import SessionEvent
from .core.ids import public_id
from .core.records import Meta
from .errors import SessionError
from .stores.base import Store, open_store

ENV_STORE = "SESSIONKEEPER_STORE"
ENV_SECRET = "SESSIONKEEPER_ID_SECRET"  # noqa: S105 - the variable's name, not a secret

EPILOG = f"""\
environment:
  {ENV_STORE}      store URL, instead of --store
  {ENV_SECRET}  the app's id_secret, instead of --id-secret

examples:
  sessionkeeper stats  --store sqlite:///sessions.db
  sessionkeeper list   --store redis://127.0.0.1:6379/0 --user 42
  sessionkeeper revoke --store postgresql://app@db/app 3f9c2a
  sessionkeeper purge  --store postgresql://app@db/app
  sessionkeeper check  redis://127.0.0.1:6379/0

exit status: 0 done, 1 nothing matched / a check failed / declined, 2 usage or store error,
130 interrupted."""


class CliError(Exception):
    """A message for the operator (exit status 1): nothing matched, ambiguous, declined."""


# ---- shared plumbing ---------------------------------------------------------------------


def _store(args: argparse.Namespace) -> Store:
    url = getattr(args, "store", None) or os.environ.get(ENV_STORE)
    if not url:
        raise SessionError(f"name the store with --store URL or the {ENV_STORE} environment variable")
    return open_store(url)


def _secret(args: argparse.Namespace) -> bytes:
    secret = getattr(args, "id_secret", None) or os.environ.get(ENV_SECRET) or None
    return SessionConfig.from_options(id_secret=secret).id_secret_bytes


def _device(meta: Meta) -> str:
    ua = meta.info.get("ua") or "unknown device"
    where = meta.info.get("ip") or meta.info.get("net")
    text = f"{ua}, {where}" if where else ua
    if lifecycle.own_limits(meta) is not None:
        text += " (remembered)"
    return text


def _as_json(pid: str, meta: Meta) -> dict[str, Any]:
    return {
        "session_id": pid,
        "user_id": meta.user_id,
        "device": meta.info.get("ua"),
        "ip": meta.info.get("ip") or meta.info.get("net"),
        "remembered": lifecycle.own_limits(meta) is not None,
        "created_at": out.iso(meta.created_at),
        "last_seen": out.iso(meta.last_seen),
        "expires_at": out.iso(meta.expires_at),
        "absolute_at": out.iso(meta.absolute_at),
        "auth_at": out.iso(meta.auth_at),
    }


def _sessions(store: Store, user: str | None, now: float) -> Iterator[tuple[str, Meta]]:
    if user is not None:
        yield from ((k, m) for k, m in store.list_user(user, now) if m.user_id == user)
    else:
        yield from scan(store, now)


_HANDLE = re.compile(r"[0-9a-f]{4,16}")


def _resolve(store: Store, secret: bytes, handle: str, user: str | None, now: float) -> tuple[str, str, Meta]:
    """(public id, storage key, meta) of the one live session whose public id starts with
    ``handle``; :class:`CliError` when none or several do."""
    h = handle.strip().lower()
    if not _HANDLE.fullmatch(h):
        raise SessionError(f"{handle!r} is not a session handle: give the id 'list' shows "
                           "(16 hex characters; a unique prefix of at least 4 will do)")
    found = [(pid, k, m) for k, m in _sessions(store, user, now)
             if (pid := public_id(k, secret)).startswith(h)]
    if not found:
        hint = "" if os.environ.get(ENV_SECRET) else (
            " (if the app sets id_secret, pass it with --id-secret: ids depend on it)")
        raise CliError(f"no live session matches {handle!r}{hint}")
    if len(found) > 1:
        names = ", ".join(sorted(pid for pid, _, _ in found)[:10])
        raise CliError(f"{handle!r} matches {len(found)} sessions ({names}): give more characters")
    return found[0]


def _confirm(args: argparse.Namespace, question: str) -> None:
    if args.yes:
        return
    if not out.is_tty(sys.stdin):
        raise CliError(f"{question} Refused: stdin is not a terminal, pass --yes to confirm")
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise CliError("nothing revoked")


# ---- commands ----------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo.app import serve

    serve(host=args.host, port=args.port, store_url=args.store, idle_timeout=args.idle_timeout,
          warn_before=args.warn_before)
    return 0


def cmd_count(args: argparse.Namespace) -> int:
    with _store(args) as store:
        print(store.count(time.time()))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    now = time.time()
    secret = _secret(args)
    with _store(args) as store:
        rows = sorted(_sessions(store, args.user, now), key=lambda r: r[1].last_seen, reverse=True)
    shown = rows if args.limit <= 0 else rows[: args.limit]
    if args.json:
        print(json.dumps([_as_json(public_id(k, secret), m) for k, m in shown], indent=2))
        return 0
    if not rows:
        print("no live sessions" + (f" for user {args.user!r}" if args.user else ""))
        return 0
    out.table(
        ["handle", "user", "device", "created", "last seen", "expires"],
        [[public_id(k, secret), m.user_id or "(anonymous)", _device(m), out.relative(m.created_at, now),
          out.relative(m.last_seen, now), out.relative(m.expires_at, now)] for k, m in shown],
        sys.stdout,
    )
    more = len(rows) - len(shown)
    print(f"{len(rows):,} live session(s)" + (f", {more:,} not shown (--limit 0 shows all)" if more else ""))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    now = time.time()
    with _store(args) as store:
        pid, key, meta = _resolve(store, _secret(args), args.handle, args.user, now)
        record = store.load(key, now)
    if record is None:
        raise CliError(f"session {pid} ended while being looked up")
    fields = dict(record.fields)
    if args.json:
        doc = _as_json(pid, meta)
        doc["info"] = dict(meta.info)
        doc["keys"] = sorted(fields)
        if args.values:
            doc["values"] = {k: _decoded(v) for k, v in sorted(fields.items())}
        print(json.dumps(doc, indent=2))
        return 0
    facts = [
        ("session", pid),
        ("user", meta.user_id or "(anonymous)"),
        ("device", _device(meta)),
        ("created", f"{out.relative(meta.created_at, now)} ({out.iso(meta.created_at)})"),
        ("last seen", f"{out.relative(meta.last_seen, now)} ({out.iso(meta.last_seen)})"),
        ("expires", f"{out.relative(meta.expires_at, now)} ({out.iso(meta.expires_at)})"),
        ("absolute limit", f"{out.relative(meta.absolute_at, now)} ({out.iso(meta.absolute_at)})"),
        ("signed in", "-" if meta.auth_at is None else f"{out.relative(meta.auth_at, now)}"),
    ]
    w = max(len(k) for k, _ in facts)
    for k, v in facts:
        print(f"{k.ljust(w)}  {v}")
    print(f"{'keys'.ljust(w)}  " + (", ".join(sorted(fields)) if fields else "(none)"))
    if args.values:
        for k, v in sorted(fields.items()):
            print(f"  {k} = {v}")
    elif fields:
        print(f"{''.ljust(w)}  (values hidden: --values shows them)")
    return 0


def _decoded(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def cmd_revoke(args: argparse.Namespace) -> int:
    now = time.time()
    secret = _secret(args)
    with _store(args) as store:
        if args.handle:
            pid, key, meta = _resolve(store, secret, args.handle, args.user, now)
            who = meta.user_id or "an anonymous visitor"
            _confirm(args, f"Revoke session {pid} of {who} ({_device(meta)})?")
            gone = int(store.delete(key))
        elif args.user is not None:
            from .manager import SessionManager

            n = len([k for k, m in store.list_user(args.user, now) if m.user_id == args.user])
            if n == 0:
                raise CliError(f"user {args.user!r} has no live session")
            _confirm(args, f"Revoke all {n} session(s) of user {args.user!r}?")
            gone = SessionManager(store, id_secret=secret).revoke_all(args.user)
        else:
            keys = [k for k, _ in scan(store, now)]
            if not keys:
                raise CliError("the store holds no live session")
            _confirm(args, f"Revoke ALL {len(keys):,} live sessions in {store.address}? "
                           "Everybody will be signed out.")
            gone = sum(store.delete(k) for k in keys)
    if gone == 0:
        raise CliError("nothing revoked: the session(s) ended or moved meanwhile")
    print(f"revoked {gone} session(s)")
    return 0


AGE_BUCKETS = [(60, "< 1 min"), (600, "< 10 min"), (3600, "< 1 h"), (6 * 3600, "< 6 h"),
               (86400, "< 1 d"), (7 * 86400, "< 7 d"), (math.inf, ">= 7 d")]
LEFT_BUCKETS = [(60, "< 1 min"), (300, "< 5 min"), (1800, "< 30 min"), (2 * 3600, "< 2 h"),
                (12 * 3600, "< 12 h"), (86400, "< 1 d"), (7 * 86400, "< 7 d"), (math.inf, ">= 7 d")]


def _bucket(value: float, buckets: list[tuple[float, str]]) -> str:
    return next(label for limit, label in buckets if value < limit)


def cmd_stats(args: argparse.Namespace) -> int:
    now = time.time()
    with _store(args) as store:
        metas = [m for _, m in scan(store, now)]
        stored = None if store.name in ("redis", "memory") else store.count(0.0)
        where, occupied = store.address, size(store)
    signed_in = sum(1 for m in metas if m.user_id)
    remembered = sum(1 for m in metas if lifecycle.own_limits(m) is not None)
    ages = Counter(_bucket(now - m.created_at, AGE_BUCKETS) for m in metas)
    left = Counter(_bucket(m.expires_at - now, LEFT_BUCKETS) for m in metas)
    users = Counter(m.user_id for m in metas if m.user_id).most_common(args.top)
    waiting = None if stored is None else max(0, stored - len(metas))
    if args.json:
        print(json.dumps({
            "store": where, "live": len(metas), "signed_in": signed_in,
            "anonymous": len(metas) - signed_in, "remembered": remembered,
            "expired_awaiting_purge": waiting,
            "by_age": {label: ages.get(label, 0) for _, label in AGE_BUCKETS},
            "by_time_to_expiry": {label: left.get(label, 0) for _, label in LEFT_BUCKETS},
            "top_users": [{"user_id": u, "sessions": n} for u, n in users],
            "size": occupied,
        }, indent=2))
        return 0
    print(f"store        {where}")
    print(f"live         {len(metas):,} session(s): {signed_in:,} signed in, "
          f"{len(metas) - signed_in:,} anonymous, {remembered:,} remembered")
    if waiting is not None:
        print(f"expired      {waiting:,} row(s) awaiting purge (expired sessions, renewal aliases)")
    print(f"size         {occupied or 'not known for this store'}")
    if metas:
        print()
        out.histogram("by age (since created)", [(label, ages.get(label, 0)) for _, label in AGE_BUCKETS],
                      sys.stdout)
        out.histogram("by time to expiry", [(label, left.get(label, 0)) for _, label in LEFT_BUCKETS],
                      sys.stdout)
    if users:
        print()
        out.table(["user", "sessions"], [[u, f"{n:,}"] for u, n in users], sys.stdout,
                  title=f"sessions per user (top {args.top})")
    return 0


# ---- purge -------------------------------------------------------------------------------


class _Interrupt:
    """Ctrl-C during a purge: the first stops after the current chunk (every batch already
    done stays done, so running purge again continues), the second stops at once."""

    def __init__(self) -> None:
        self.asked = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True
        print("\nstopping after this chunk (Ctrl-C again to stop now) ...", file=sys.stderr)


@contextmanager
def _sigint(handler: _Interrupt) -> Iterator[None]:
    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (tests, embedding): Ctrl-C raises as usual
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _oldest_expiry(store: Store, now: float, total: int) -> float:
    """A time before which no session expired (so that ``Purge`` up to it removes nothing):
    steps back from ``now`` by doubling spans, a handful of ``Count`` calls."""
    step = 60.0
    t = now - step
    while t > 0 and total - store.count(t) > 0:
        step *= 2
        t = now - step
    return max(t, 0.0)


def _event_line(event: SessionEvent) -> None:
    """``--events``: one audit event as one JSON line on stdout, written at once."""
    doc: dict[str, Any] = {"kind": event.kind, "at": out.iso(event.at), "session_id": event.session_id,
                           "user_id": event.user_id}
    for name, value in event.detail.items():  # flat, for jq and log shippers; never over the above
        doc.setdefault(name, value)
    if "expires_at" in event.detail:  # the repr of a float: ISO 8601 as "at" is
        doc["expires_at"] = out.iso(float(event.detail["expires_at"]))
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def _purger(args: argparse.Namespace, store: Store) -> Callable[[float], int]:
    """What purges up to a cutoff: the store's own purge, or with ``--events`` the manager's,
    which also names the sessions it removed (one ``expired`` event each, on stdout)."""
    if not args.events:
        return lambda cutoff: store.purge(cutoff, batch=args.batch)
    from .manager import SessionManager

    manager = SessionManager(store, id_secret=_secret(args), on_event=[_event_line])
    return lambda cutoff: manager.purge(now=cutoff, batch=args.batch)


def cmd_purge(args: argparse.Namespace) -> int:
    if args.batch < 1:
        raise SessionError(f"--batch must be at least 1, not {args.batch}")
    now = time.time()
    stop = _Interrupt()
    # With --events, stdout carries the events (JSON lines) and the rest goes to stderr.
    say = sys.stderr if args.events else sys.stdout
    with _store(args) as store, _sigint(stop):
        purge = _purger(args, store)
        if store.name == "redis":
            return _purge_redis(store, now, purge, say)
        total = store.count(0.0)
        expired = total - store.count(now)
        print(f"{store.address}: {expired:,} expired row(s) to delete (sessions and renewal aliases), "
              f"in batches of {args.batch}", file=say)
        progress = out.Progress("purging", expired, say)
        removed = 0
        started = time.monotonic()
        try:
            # Chunks by expiry time: Purge(cutoff) deletes what expired before the cutoff, in
            # short batches of its own, so the app keeps serving; between chunks the bar moves
            # and Ctrl-C may stop. Cutoffs adapt so that a chunk holds about 2 % of the work.
            target = max(args.batch, math.ceil(expired / 50))
            cutoff = _oldest_expiry(store, now, total) if expired > target else now
            step = max(1.0, (now - cutoff) / 50)
            while not stop.asked:
                cutoff = min(now, cutoff + step)
                n = purge(cutoff)
                removed += n
                if n or (cutoff >= now and progress.done == 0 and expired):
                    progress.update(removed)
                if cutoff >= now:
                    break
                if n < target / 2:
                    step *= 2
                elif n > 2 * target:
                    step = max(1.0, step / 2)
        finally:
            progress.close()
    elapsed = time.monotonic() - started
    rate = f", {removed / elapsed:,.0f}/s" if elapsed > 0 and removed else ""
    if stop.asked:
        print(f"stopped: removed {removed:,} expired row(s) in {out.elapsed(elapsed)}{rate}; "
              "run purge again to continue", file=say)
        return 130
    print(f"removed {removed:,} expired row(s) in {out.elapsed(elapsed)}{rate}", file=say)
    return 0


def _purge_redis(store: Store, now: float, purge: Callable[[float], int], say: TextIO) -> int:
    print(f"{store.address}: Redis expires sessions by itself (each key has its expiry), so "
          "there is nothing to delete in bulk. Removing only sessions expired by this machine's "
          "clock but not yet by Redis's, and stale user-index entries.", file=say)
    removed = purge(now)
    lines = out.is_tty(say)

    def progress(seen: int, dropped: int) -> None:
        text = f"user indexes: {seen:,} checked, {dropped:,} stale entries dropped"
        print(("\r" + text) if lines else text, end="" if lines else "\n", file=say, flush=True)

    healed = redis_heal_indexes(store, now, progress)
    if lines:
        print(file=say)
    print(f"removed {removed:,} expired session(s) and {healed:,} stale user-index entries", file=say)
    return 0


# ---- check and doctor live in their own module ----------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    from ._cli_doctor import check

    return check(args.url or args.store or os.environ.get(ENV_STORE), write=not args.read_only,
                 rounds=args.rounds)


def cmd_doctor(args: argparse.Namespace) -> int:
    from ._cli_doctor import doctor

    return doctor(args)


# ---- the parser --------------------------------------------------------------------------


def _with_store(sp: argparse.ArgumentParser, ids: bool = False) -> argparse.ArgumentParser:
    sp.add_argument("--store", metavar="URL",
                    help=f"store URL, as open_store() takes it (default: ${ENV_STORE})")
    if ids:
        sp.add_argument("--id-secret", metavar="SECRET",
                        help=f"the app's id_secret (default: ${ENV_SECRET}); session handles are "
                             "keyed with it, so without the app's secret they do not match the "
                             "ids the app shows")
    return sp


def build_parser() -> argparse.ArgumentParser:
    """The ``sessionkeeper`` argument parser (also used by the docs test for every example)."""
    doc = (__doc__ or "").strip()
    p = argparse.ArgumentParser(prog="sessionkeeper", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"sessionkeeper {__version__}",
                   help="print the version and exit")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also print the library's log lines (logger 'sessionkeeper') on stderr")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           help="run 'sessionkeeper COMMAND --help' for its options")

    d = sub.add_parser("demo", help="run the demo site", description="Run the demo site.")
    d.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    d.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    d.add_argument("--store", default=None, metavar="URL",
                   help="store URL (default: SQLite in $XDG_STATE_HOME/sessionkeeper/demo.db, "
                        "i.e. ~/.local/state/sessionkeeper/demo.db)")
    d.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS",
                   help="idle timeout (default 1800); e.g. 60 to see the expiry warning soon")
    d.add_argument("--warn-before", type=float, default=None, metavar="SECONDS",
                   help="show the expiry warning this long before the idle timeout (at least 20)")
    d.set_defaults(func=cmd_demo)

    st = _with_store(sub.add_parser(
        "stats", help="live sessions by kind, age and time to expiry; top users; store size",
        description="Live sessions: signed in vs anonymous, by age and by time to expiry, "
                    "sessions per user, and the store's size where it can tell."))
    st.add_argument("--top", type=int, default=10, metavar="N", help="users to show (default 10)")
    st.add_argument("--json", action="store_true", help="print JSON instead of text")
    st.set_defaults(func=cmd_stats)

    ls = _with_store(sub.add_parser(
        "list", help="list live sessions (all, or one user's)",
        description="List live sessions, most recently used first. The handle is the id "
                    "the app shows as Device.session_id; 'show' and 'revoke' take it."), ids=True)
    ls.add_argument("--user", metavar="USER_ID", help="only this user's sessions")
    ls.add_argument("--limit", type=int, default=100, metavar="N",
                    help="show at most N sessions (default 100; 0: all)")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=cmd_list)

    sh = _with_store(sub.add_parser(
        "show", help="one session's metadata and the names of its keys",
        description="Show one session: its metadata and the names of the keys in its data "
                    "(values only with --values)."), ids=True)
    sh.add_argument("handle", metavar="HANDLE", help="the session's id as 'list' shows it, or a unique "
                                                      "prefix of it (at least 4 characters)")
    sh.add_argument("--user", metavar="USER_ID", help="look only among this user's sessions (faster)")
    sh.add_argument("--values", action="store_true",
                    help="also print the stored values (may be personal data)")
    sh.add_argument("--json", action="store_true", help="print JSON instead of text")
    sh.set_defaults(func=cmd_show)

    rv = _with_store(sub.add_parser(
        "revoke", help="end a session, a user's sessions, or all sessions",
        description="Revoke (delete) sessions: they end at once on every app server. Asks "
                    "for confirmation on a terminal; without one, --yes is required."), ids=True)
    rv.add_argument("handle", nargs="?", metavar="HANDLE",
                    help="the session's id as 'list' shows it, or a unique prefix (at least 4 characters)")
    rv.add_argument("--user", metavar="USER_ID",
                    help="every session of this user (with HANDLE: look for it among them only)")
    rv.add_argument("--all", action="store_true", help="every live session in the store")
    rv.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    rv.set_defaults(func=cmd_revoke)

    pu = _with_store(sub.add_parser(
        "purge", help="delete expired sessions and renewal aliases, in batches",
        description="Delete expired sessions (and expired renewal aliases) in small batches, "
                    "safe while the app serves. Ctrl-C stops between chunks; running it "
                    "again continues. On Redis, which expires keys itself, only stale "
                    "user-index entries are cleaned."), ids=True)
    pu.add_argument("--batch", type=int, default=500, metavar="N",
                    help="rows per delete statement (default 500): smaller holds locks shorter")
    pu.add_argument("--events", action="store_true",
                    help="print an 'expired' audit event per session removed, one JSON line "
                         "each on stdout (progress and summary then go to stderr)")
    pu.set_defaults(func=cmd_purge)

    co = _with_store(sub.add_parser("count", help="print the number of live sessions",
                                    description="Print the number of live sessions."))
    co.set_defaults(func=cmd_count)

    ck = _with_store(sub.add_parser(
        "check", help="connect to a store and say what is wrong, one line each",
        description="Connect to a store, check its schema, permissions and version, and time "
                    "a round trip (Store.ping(), the check apps run at startup)."))
    ck.add_argument("url", nargs="?", metavar="URL", help="store URL (default: --store or $"
                                                           f"{ENV_STORE})")
    ck.add_argument("--read-only", action="store_true",
                    help="skip the write check (a probe session created and deleted at once)")
    ck.add_argument("--rounds", type=int, default=5, metavar="N", help="pings to time (default 5)")
    ck.set_defaults(func=cmd_check)

    dr = _with_store(sub.add_parser(
        "doctor", help="diagnose 'my session does not persist'",
        description="Check the usual reasons a session does not persist, from outside the app: "
                    "Secure cookies over plain HTTP, cookie domain and path, proxy headers, "
                    "SameSite=None without Secure, cookie size, store reachable, clock skew."))
    dr.add_argument("--url", help="the site's URL as the browser sees it (fetched once, unless --offline)")
    dr.add_argument("--offline", action="store_true", help="do not fetch --url, only judge it")
    dr.add_argument("--insecure", action="store_true", help="the app uses secure=False")
    dr.add_argument("--cookie-domain", metavar="DOMAIN", help="the app's cookie_domain, if set")
    dr.add_argument("--cookie-path", metavar="PATH", help="the app's cookie_path, if set (default /)")
    dr.add_argument("--cookie-name", metavar="NAME", help="the app's cookie_name, if set (default session)")
    dr.add_argument("--same-site", choices=["lax", "strict", "none"],
                    help="the app's same_site (default lax)")
    dr.set_defaults(func=cmd_doctor)
    return p


def _logging(verbose: bool) -> logging.Handler | None:
    """The library logs store outages for servers; a command reports them itself, one line.
    Without ``-v`` those log lines would repeat the command's own message through logging's
    last-resort handler, so they go nowhere unless the caller configured logging already."""
    log = logging.getLogger("sessionkeeper")
    if verbose:
        if not log.handlers and not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        log.setLevel(logging.INFO)
    elif not log.handlers and not logging.getLogger().handlers:
        quiet = logging.NullHandler()
        log.addHandler(quiet)
        return quiet
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sessionkeeper`` command."""
    args = build_parser().parse_args(argv)
    quiet = _logging(args.verbose)
    if args.command == "revoke":
        picked = sum([args.handle is not None, args.all, args.user is not None and args.handle is None])
        if picked != 1:
            print("sessionkeeper revoke: give exactly one of HANDLE, --user USER_ID or --all",
                  file=sys.stderr)
            return 2
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"sessionkeeper: {exc}", file=sys.stderr)
        return 1
    except SessionError as exc:
        print(f"sessionkeeper: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sessionkeeper: interrupted", file=sys.stderr)
        return 130
    finally:
        if quiet is not None:
            logging.getLogger("sessionkeeper").removeHandler(quiet)
