"""``sessionkeeper check`` (is this store usable?) and ``sessionkeeper doctor`` (why does my
session not persist?): each finding is one line, ``[ok]``, ``[warn]``, ``[FAIL]`` or ``[info]``.
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import http.client
import os
import secrets
import statistics
import time
from typing import Any
from urllib.parse import urlsplit

from . import __version__
from .core.config import SessionConfig
from .core.records import Create, Meta, Record
from .errors import ConfigError, SessionError, StoreError
from .stores.base import Store, open_store

SKEW_WARN = 5.0  # seconds between this machine's clock and the store's or the site's


class Report:
    """Findings, printed as they come; ``failed`` counts the ``[FAIL]`` ones."""

    def __init__(self) -> None:
        self.failed = 0

    def ok(self, text: str) -> None:
        print(f"[ok]   {text}")

    def warn(self, text: str) -> None:
        print(f"[warn] {text}")

    def fail(self, text: str) -> None:
        self.failed += 1
        print(f"[FAIL] {text}")

    def info(self, text: str) -> None:
        print(f"[info] {text}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# ---- check ---------------------------------------------------------------------------------


def check(url: str | None, *, write: bool = True, rounds: int = 5) -> int:
    """Connect to the store at ``url`` and report, one line each; 1 if anything failed."""
    r = Report()
    if not url:
        raise SessionError("name the store: sessionkeeper check URL (or --store, or $SESSIONKEEPER_STORE)")
    try:
        store = open_store(url)
    except ConfigError as exc:
        r.fail(f"store URL: {_one_line(exc)}")
        return 1
    with store:
        r.info(f"store {store.address} (sessionkeeper {__version__})")
        times: list[float] = []
        try:
            for _ in range(max(1, rounds)):
                times.append(store.ping())
        except SessionError as exc:
            r.fail(f"reach: {_one_line(exc)}")
            return 1
        schema = ", schema in place" if store.name in ("sqlite", "postgresql", "postgres") else ""
        r.ok(f"reachable{schema}: round trip {_ms(min(times))} best, "
             f"{_ms(statistics.median(times))} median of {len(times)}")
        _versions(store, r)
        try:
            n = store.count(time.time())
            r.ok(f"read: {n:,} live session(s)")
        except SessionError as exc:
            r.fail(f"read (count): {_one_line(exc)}")
        if write:
            _write_probe(store, r)
        else:
            r.info("write check skipped (--read-only)")
    return 1 if r.failed else 0


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _write_probe(store: Store, r: Report) -> None:
    """Create a probe session under a random key (it expires in a minute should the delete
    fail) and delete it: proves the app's writes will be accepted (not a read-only replica,
    the user has INSERT/DELETE, the directory is writable)."""
    now = time.time()
    key = secrets.token_hex(32)
    record = Record({}, Meta(now, now, now + 60, now + 60, info={"probe": "sessionkeeper check"}))
    try:
        created = store.execute(Create(key, record))
        deleted = store.delete(key)
    except SessionError as exc:
        r.fail(f"write: {_one_line(exc)} (the app could read sessions but not save them)")
        return
    if created and deleted:
        r.ok("write: a probe session was created and deleted")
    else:
        r.fail(f"write: create returned {created!r}, delete returned {deleted!r}")


def _versions(store: Store, r: Report) -> None:
    try:
        if store.name == "sqlite":
            import sqlite3

            v = sqlite3.sqlite_version_info
            text = f"SQLite {sqlite3.sqlite_version}"
            (r.ok if v >= (3, 38) else r.fail)(
                text + ("" if v >= (3, 38) else ": sessionkeeper needs SQLite >= 3.38 (JSON functions)"))
        elif store.name == "redis":
            from ._cli_scan import _redis_run, redis_info
            from .stores._redis_plan import Nodes, Send, _check

            def one(request: Any) -> Any:
                reply = yield request
                return reply

            for node in _redis_run(store, one(Nodes())):
                info = redis_info(_check(_redis_run(store, one(Send((("INFO", "server"),), node)))[0]))
                version = str(info.get("redis_version", "?")).strip()
                major = int(version.split(".")[0]) if version[:1].isdigit() else 0
                where = "" if node is None else f" at {node.host}:{node.port}"
                (r.ok if major >= 6 else r.warn)(
                    f"Redis {version}{where}" + ("" if major >= 6 else ": Redis >= 6.2 is supported"))
                skew = _redis_skew(store, node)
                if skew is not None:
                    _skew(r, "the Redis server", skew)
        elif store.name in ("postgresql", "postgres"):
            from ._cli_scan import _pg_rows

            (version, now), = _pg_rows(store, "SELECT current_setting('server_version'), "
                                       "extract(epoch from clock_timestamp())::float8", ())
            major = int(str(version).split(".")[0])
            (r.ok if major >= 13 else r.warn)(
                f"PostgreSQL {version}" + ("" if major >= 13 else ": PostgreSQL >= 13 is supported"))
            _skew(r, "the PostgreSQL server", float(now) - time.time())
    except SessionError as exc:
        r.warn(f"version: {_one_line(exc)}")


def _redis_skew(store: Store, node: Any) -> float | None:
    from ._cli_scan import _redis_run
    from .stores._redis_plan import Send, _check

    def one() -> Any:
        reply = yield Send((("TIME",),), node)
        return reply

    before = time.time()
    reply = _check(_redis_run(store, one())[0])
    after = time.time()
    try:
        seconds, micros = reply
        return float(seconds) + float(micros) / 1e6 - (before + after) / 2
    except (TypeError, ValueError):
        return None


def _skew(r: Report, whom: str, skew: float) -> None:
    if abs(skew) <= SKEW_WARN:
        r.ok(f"clock: {whom} is within {SKEW_WARN:g} s of this machine ({skew:+.1f} s)")
    else:
        r.warn(f"clock: {whom} is {skew:+.1f} s off this machine: expiry is judged by each app "
               "server's clock (and Redis expires keys by its own), so sessions may end early "
               "or late; run NTP (chrony, systemd-timesyncd) everywhere")


# ---- doctor --------------------------------------------------------------------------------


def doctor(args: argparse.Namespace) -> int:
    """Explain the usual reasons a session "does not persist", one finding per line."""
    r = Report()
    options: dict[str, Any] = {"secure": not args.insecure}
    for name in ("cookie_domain", "cookie_path", "cookie_name", "same_site"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    if options.get("same_site") == "none" and args.insecure:
        r.fail("SameSite=None without Secure: browsers reject the cookie. Keep secure=True "
               "(and HTTPS), or use same_site='lax'.")
        options["secure"] = True  # judge the rest as if that were fixed
    try:
        config = SessionConfig.from_options(**options)
    except SessionError as exc:
        r.fail(f"configuration: {exc}")
        return 1
    cookie = config.cookie
    r.ok(f"cookie name sent to browsers: {cookie.cookie_name}")
    if args.url:
        _judge_url(args.url, config, r)
        if not args.offline:
            _fetch(args.url, config, r)
    else:
        r.info("pass --url https://your.site/ to check the cookie against the site as browsers see it")
    url = args.store or os.environ.get("SESSIONKEEPER_STORE")
    if url:
        _store_checks(url, r)
    else:
        r.info("pass --store URL (or $SESSIONKEEPER_STORE) to check that the store answers")
    r.info("a session is saved only when the app writes to it; a read-only request sets no cookie.")
    r.info("a response with status 5xx, or an exception in the app, saves nothing.")
    r.info("memory:// lives in one process: with several workers each has its own sessions.")
    r.info("more: docs/troubleshooting.md, 'My session does not persist'.")
    return 1 if r.failed else 0


_LOOPBACK = ("localhost", "127.0.0.1", "[::1]", "::1")


def _judge_url(url: str, config: SessionConfig, r: Report) -> None:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        r.fail(f"--url {url!r} is not an http(s) URL with a host")
        return
    if config.secure and parts.scheme == "http":
        if host in _LOOPBACK or host.endswith(".localhost"):
            r.warn("plain HTTP on loopback: Chromium and Firefox accept Secure cookies on "
                   "localhost, other clients (curl without a jar, some test clients) may not.")
        else:
            r.fail(f"{url} is plain HTTP: browsers drop Secure (and __Host-) cookies there. "
                   "Serve HTTPS, or pass secure=False for local development only.")
    domain = (config.cookie_domain or "").lstrip(".").lower()
    if domain:
        if host != domain and not host.endswith("." + domain):
            r.fail(f"cookie_domain {config.cookie_domain!r} does not cover the host {host!r}: "
                   "browsers reject the cookie. Use the site's domain (or leave it unset).")
        else:
            r.ok(f"cookie_domain {config.cookie_domain!r} covers {host}")
    path = config.cookie_path or "/"
    here = parts.path or "/"
    if not (here == path or here.startswith(path.rstrip("/") + "/") or path == "/"):
        r.warn(f"cookie_path {path!r} does not cover {here!r}: the browser does not send the "
               "cookie there, so that page sees no session.")


def _fetch(url: str, config: SessionConfig, r: Report) -> None:
    """One GET of ``url`` (no redirects followed): what the site actually sends."""
    parts = urlsplit(url)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname or "", parts.port, timeout=10)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        before = time.time()
        conn.request("GET", target, headers={"User-Agent": f"sessionkeeper-doctor/{__version__}"})
        resp = conn.getresponse()
        after = time.time()
        resp.read(1 << 20)
    except (OSError, http.client.HTTPException) as exc:
        r.fail(f"GET {url}: {_one_line(exc)}")
        return
    finally:
        conn.close()
    r.ok(f"GET {url}: {resp.status} {resp.reason}")
    location = resp.getheader("Location") or ""
    if parts.scheme == "https" and location.startswith("http://"):
        r.fail(f"the site redirects to {location.split('?')[0]}: the app believes it is served "
               "over plain HTTP. Behind a proxy, make it trust X-Forwarded-Proto (ProxyFix, "
               "uvicorn --proxy-headers --forwarded-allow-ips, gunicorn forwarded_allow_ips).")
    date = resp.getheader("Date")
    if date:
        with contextlib.suppress(TypeError, ValueError):
            _skew(r, "the site", email.utils.parsedate_to_datetime(date).timestamp() - (before + after) / 2)
    cookies = resp.headers.get_all("Set-Cookie") or []
    mine = [c for c in cookies if c.split("=", 1)[0].strip() == config.cookie.cookie_name]
    for c in cookies:
        if len(c) > 4096:
            name = c.split("=", 1)[0].strip()
            r.fail(f"cookie {name!r} is {len(c):,} bytes: browsers drop cookies over 4096. "
                   "Keep data server-side.")
    total = sum(len(c.split(";", 1)[0]) for c in cookies)
    if total > 7000:
        r.warn(f"the cookies this page sets add up to {total:,} bytes: with others, the Cookie "
               "header may pass servers' 8 KiB header limit (431 or 400 errors).")
    if not mine:
        r.info(f"no {config.cookie.cookie_name} cookie on this response (normal if this page does "
               "not write to the session; try a page that does, e.g. after signing in)")
        return
    attrs = {a.split("=", 1)[0].strip().lower(): [*a.split("=", 1), ""][1].strip()
             for a in mine[-1].split(";")[1:]}
    if "secure" in attrs and parts.scheme == "http" and (parts.hostname or "") not in _LOOPBACK:
        r.fail("the site sets a Secure cookie over plain HTTP: browsers drop it")
    if attrs.get("samesite", "").lower() == "none" and "secure" not in attrs:
        r.fail("the site sets SameSite=None without Secure: browsers reject the cookie")
    dom = attrs.get("domain", "").lstrip(".").lower()
    host = (parts.hostname or "").lower()
    if dom and host != dom and not host.endswith("." + dom):
        r.fail(f"the cookie's Domain={dom} does not cover {host}: browsers reject it "
               "(a proxy rewriting cookies?)")
    if not any(v == "Cookie" or "cookie" in v.lower() for v in (resp.headers.get_all("Vary") or [])):
        r.warn("the response sets the session cookie without 'Vary: Cookie': a shared cache "
               "could serve one visitor's page to another")
    else:
        r.ok(f"the site sets {config.cookie.cookie_name} ({len(mine[-1].split(';', 1)[0])} bytes) "
             f"with {', '.join(sorted(attrs)) or 'no attributes'}")


def _store_checks(url: str, r: Report) -> None:
    try:
        with open_store(url) as store:
            took = store.ping()
            n = store.count(time.time())
            r.ok(f"store reachable ({store.address}), round trip {_ms(took)}, {n:,} live session(s)")
            if store.name == "memory":
                r.warn("memory:// is private to each process: the app's sessions are not here, "
                       "and with several workers each has its own")
            with contextlib.suppress(StoreError):
                _versions(store, _ClockOnly(r))
    except SessionError as exc:
        r.fail(f"store: {exc}")


class _ClockOnly(Report):
    """Forwards only the clock findings (doctor shows versions through ``check``)."""

    def __init__(self, inner: Report) -> None:
        super().__init__()
        self.inner = inner

    def ok(self, text: str) -> None:
        if text.startswith("clock:"):
            self.inner.ok(text)

    def warn(self, text: str) -> None:
        if text.startswith("clock:"):
            self.inner.warn(text)

    def fail(self, text: str) -> None:
        if text.startswith("clock:"):
            self.inner.fail(text)
