"""The ``sessionkeeper`` command: demo, purge, count, list, revoke, doctor.

Every command that touches a store takes its URL with ``--store`` (or the environment variable
``SESSIONKEEPER_STORE``), the same URL ``open_store`` takes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone

from . import __version__
from .core.config import SessionConfig
from .errors import SessionError
from .stores.base import Store, open_store

ENV_STORE = "SESSIONKEEPER_STORE"


def _store(args: argparse.Namespace) -> Store:
    url = args.store or os.environ.get(ENV_STORE)
    if not url:
        raise SessionError(f"name the store with --store URL or the {ENV_STORE} environment variable")
    return open_store(url)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo.app import serve

    serve(host=args.host, port=args.port, store_url=args.store, idle_timeout=args.idle_timeout,
          warn_before=args.warn_before)
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    with _store(args) as store:
        removed = store.purge(time.time(), batch=args.batch)
    print(f"removed {removed} expired session(s)")
    return 0


def cmd_count(args: argparse.Namespace) -> int:
    with _store(args) as store:
        print(store.count(time.time()))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        rows = store.list_user(args.user, time.time())
    if not rows:
        print(f"no live sessions for user {args.user!r}")
        return 0
    print(f"{'session (key prefix)':22} {'created':21} {'last seen':21} {'expires':21} client")
    for key, meta in rows:
        client = " ".join(f"{k}={v}" for k, v in sorted(meta.info.items()))
        print(f"{key[:20]:22} {_when(meta.created_at):21} {_when(meta.last_seen):21} "
              f"{_when(meta.expires_at):21} {client}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    with _store(args) as store:
        keys = [args.key] if args.key else [k for k, _ in store.list_user(args.user, time.time())]
        gone = sum(store.delete(k) for k in keys)
    print(f"revoked {gone} session(s)")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Explain the usual reasons a session "does not persist"."""
    problems = 0
    options: dict[str, object] = {"secure": not args.insecure}
    if args.cookie_domain:
        options["cookie_domain"] = args.cookie_domain
    try:
        config = SessionConfig.from_options(**options)  # type: ignore[arg-type]
    except SessionError as exc:
        print(f"[FAIL] configuration: {exc}")
        return 1
    print(f"[ok]   cookie name sent to browsers: {config.cookie.cookie_name}")
    if config.secure and args.url and args.url.startswith("http://"):
        host = args.url.split("/")[2].split(":")[0]
        if host not in ("localhost", "127.0.0.1", "[::1]"):
            problems += 1
            print(f"[FAIL] {args.url} is plain HTTP: browsers drop Secure (and __Host-) cookies there. "
                  "Serve HTTPS, or pass secure=False for local development only.")
        else:
            print("[warn] plain HTTP on loopback: Chromium and Firefox accept Secure cookies on "
                  "localhost, other clients (curl without a jar, some test clients) may not.")
    if args.store or os.environ.get(ENV_STORE):
        try:
            with _store(args) as store:
                n = store.count(time.time())
            print(f"[ok]   store reachable ({store.name}), {n} live session(s)")
        except SessionError as exc:
            problems += 1
            print(f"[FAIL] store: {exc}")
    print("[info] a session is saved only when the app writes to it; a read-only request sets no cookie.")
    print("[info] a response with status 5xx, or an exception in the app, saves nothing.")
    print("[info] with the cookie transport, the browser must send the cookie back: check that the")
    print("       response's Set-Cookie is accepted (devtools > Application > Cookies).")
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sessionkeeper", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"sessionkeeper {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def with_store(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--store", help=f"store URL (default: ${ENV_STORE})")
        return sp

    d = sub.add_parser("demo", help="run the demo site")
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, default=8000)
    d.add_argument("--store", default=None,
                   help="store URL (default: SQLite in $XDG_STATE_HOME/sessionkeeper/demo.db, "
                        "i.e. ~/.local/state/sessionkeeper/demo.db)")
    d.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS",
                   help="idle timeout (default 1800); e.g. 60 to see the expiry warning soon")
    d.add_argument("--warn-before", type=float, default=None, metavar="SECONDS",
                   help="show the expiry warning this long before the idle timeout (at least 20)")
    d.set_defaults(func=cmd_demo)

    pu = with_store(sub.add_parser("purge", help="delete expired sessions"))
    pu.add_argument("--batch", type=int, default=500)
    pu.set_defaults(func=cmd_purge)

    with_store(sub.add_parser("count", help="count live sessions")).set_defaults(func=cmd_count)

    ls = with_store(sub.add_parser("list", help="list a user's live sessions"))
    ls.add_argument("--user", required=True)
    ls.set_defaults(func=cmd_list)

    rv = with_store(sub.add_parser("revoke", help="revoke a user's sessions, or one by storage key"))
    g = rv.add_mutually_exclusive_group(required=True)
    g.add_argument("--user")
    g.add_argument("--key", help="storage key (as shown by 'list' in full)")
    rv.set_defaults(func=cmd_revoke)

    dr = with_store(sub.add_parser("doctor", help="diagnose 'my session does not persist'"))
    dr.add_argument("--url", help="the site's URL as the browser sees it")
    dr.add_argument("--insecure", action="store_true", help="the app uses secure=False")
    dr.add_argument("--cookie-domain")
    dr.set_defaults(func=cmd_doctor)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sessionkeeper`` command."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SessionError as exc:
        print(f"sessionkeeper: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
