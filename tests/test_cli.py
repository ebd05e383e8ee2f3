"""The ``sessionkeeper`` command line (issue 13), against every real store: SQLite, files,
PostgreSQL, Redis and Redis Cluster, each with its own file, table or key prefix.

Commands run through ``main([...])`` with captured output; ``test_cli_as_a_subprocess`` runs
the installed entry point once more as an operator would.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from sessionkeeper import SessionConfig, SessionManager, Store, open_store
from sessionkeeper.cli import build_parser, main
from sessionkeeper.core import ids
from sessionkeeper.core.records import Create, Meta, Record
from tests.stores.backends import postgres as pg_backend
from tests.stores.backends import redis as redis_backend

BACKENDS = ["sqlite", "file", "postgres", "redis", "redis-cluster"]
SQLISH = ["sqlite", "file", "postgres"]  # stores that keep expired rows until a purge
REDISES = ["redis", "redis-cluster"]
FIREFOX = "Firefox on Linux"
DEFAULT_SECRET = SessionConfig().id_secret_bytes


@dataclass
class Env:
    name: str
    url: str
    store: Store  # the same store, opened by the test to seed and inspect it

    def seed(self, user: str | None = None, *, ttl: float = 600, age: float = 60, ua: str = FIREFOX,
             fields: dict[str, str] | None = None, key: str | None = None) -> str:
        now = time.time()
        key = key or ids.storage_key(ids.new_token())
        meta = Meta(created_at=now - age, last_seen=now - age / 2, expires_at=now + ttl,
                    absolute_at=now + max(ttl, 0) + 3600, user_id=user,
                    info={"ua": ua, "ip": "203.0.113.9"})
        assert self.store.execute(Create(key, Record(fields or {"cart": '{"tea": 2}'}, meta)))
        return key

    def live(self) -> int:
        return self.store.count(time.time())


@pytest.fixture(params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    name: str = request.param
    cleanup: Any = None
    if name == "sqlite":
        url = "sqlite:///" + quote(str(tmp_path / "sessions.db"))
    elif name == "file":
        url = "file://" + quote(str(tmp_path / "sessions"))
    elif name == "postgres":
        pg_backend.require_postgres()
        table = pg_backend.new_table()
        url = f"{pg_backend.URL}?table={table}&max_size=2"
        cleanup = lambda: pg_backend.drop_table(table)  # noqa: E731
    else:
        if name == "redis":
            redis_backend.require_redis()
            base = redis_backend.URL
        else:
            base = redis_backend.require_cluster().url
        prefix = redis_backend.new_prefix()
        # index_grace=0: the stale-index test may drop an entry added a moment ago
        url = f"{base}?prefix={quote(prefix)}&index_grace=0"
        cleanup = lambda: redis_backend.redis_servers.delete_prefix(  # noqa: E731
            redis_backend.primaries(name), prefix)
    store = open_store(url)
    try:
        yield Env(name, url, store)
    finally:
        store.close()
        if cleanup is not None:
            cleanup()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def pid(key: str, secret: bytes = DEFAULT_SECRET) -> str:
    return ids.public_id(key, secret)


# ---- one handle everywhere -----------------------------------------------------------------


def test_list_prints_the_device_ids_that_show_and_revoke_accept(
        env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """The handle `list` prints is `Device.session_id`; `show` and `revoke` take a prefix of it
    (the old CLI printed a key prefix that `revoke --key` did not accept, exit 0)."""
    a = env.seed("u1", fields={"cart": '{"tea": 2}', "secret_note": '"hunter2"'})
    b = env.seed("u1", ua="Chrome on Windows")
    anon = env.seed(None, ua="Safari on iOS")
    code, text, _ = run(capsys, "list", "--store", env.url)
    assert code == 0
    for key in (a, b, anon):
        assert pid(key) in text
        assert key not in text  # never the storage key
    assert "rot=" not in text and "ua=" not in text  # human columns, no raw info fields
    assert FIREFOX in text and "(anonymous)" in text and "ago" in text and "in " in text
    devices = SessionManager(env.store).devices("u1")
    code, text, _ = run(capsys, "list", "--store", env.url, "--user", "u1", "--json")
    assert code == 0
    assert sorted(d["session_id"] for d in json.loads(text)) == sorted(d.session_id for d in devices)

    code, text, _ = run(capsys, "show", "--store", env.url, pid(a)[:6])
    assert code == 0
    assert pid(a) in text and "cart, secret_note" in text
    assert "hunter2" not in text  # values only with --values
    code, text, _ = run(capsys, "show", "--store", env.url, pid(a)[:6], "--values", "--json")
    assert json.loads(text)["values"]["secret_note"] == "hunter2"

    code, text, _ = run(capsys, "revoke", "--store", env.url, pid(a)[:8], "--yes")
    assert (code, text.strip()) == (0, "revoked 1 session(s)")
    assert env.store.load(a, time.time()) is None and env.store.load(b, time.time()) is not None
    code, _, err = run(capsys, "revoke", "--store", env.url, pid(a)[:8], "--yes")
    assert code == 1 and "no live session matches" in err  # nothing matched: non-zero
    code, _, err = run(capsys, "show", "--store", env.url, pid(a))
    assert code == 1


def test_an_ambiguous_prefix_is_refused_listing_the_candidates(
        env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    seen: dict[str, str] = {}
    while True:  # two keys whose public ids share their first 4 hex characters (~300 tries)
        key = secrets.token_hex(32)
        head = pid(key)[:4]
        if head in seen:
            break
        seen[head] = key
    first, second = env.seed("u2", key=seen[head]), env.seed("u2", key=key)
    for argv in (["show", head], ["revoke", head, "--yes"]):
        code, _, err = run(capsys, argv[0], "--store", env.url, *argv[1:])
        assert code == 1
        assert "matches 2 sessions" in err and pid(first) in err and pid(second) in err
    assert env.live() == 2  # nothing revoked
    code, _, _ = run(capsys, "show", "--store", env.url, pid(first))
    assert code == 0


def test_id_secret_option_and_environment_name_sessions_like_the_app(
        env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    key = env.seed("u3")
    secret = "s3cret-of-this-deployment"
    app_ids = [d.session_id for d in SessionManager(env.store, id_secret=secret).devices("u3")]
    code, text, _ = run(capsys, "list", "--store", env.url, "--user", "u3", "--json", "--id-secret", secret)
    assert [d["session_id"] for d in json.loads(text)] == app_ids
    code, text, _ = run(capsys, "list", "--store", env.url, "--user", "u3", "--json")
    assert [d["session_id"] for d in json.loads(text)] == [pid(key)] != app_ids
    code, _, err = run(capsys, "show", "--store", env.url, app_ids[0])
    assert code == 1 and "--id-secret" in err  # the likely cause is named
    monkeypatch.setenv("SESSIONKEEPER_ID_SECRET", secret)
    monkeypatch.setenv("SESSIONKEEPER_STORE", env.url)
    code, _, _ = run(capsys, "show", app_ids[0])
    assert code == 0


# ---- revoke --user / --all and confirmation -------------------------------------------------


class _Stdin:
    def __init__(self, tty: bool, answer: str = "") -> None:
        self.tty, self.answer = tty, answer

    def isatty(self) -> bool:
        return self.tty

    def readline(self) -> str:
        return self.answer


def test_revoke_user_and_all_ask_first(env: Env, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for user in ("u4", "u4", "u5", None):
        env.seed(user)
    # not a terminal and no --yes: refused, nothing deleted
    monkeypatch.setattr(sys, "stdin", _Stdin(tty=False))
    code, _, err = run(capsys, "revoke", "--store", env.url, "--all")
    assert code == 1 and "--yes" in err and env.live() == 4
    # a terminal: asks; "n" declines
    monkeypatch.setattr(sys, "stdin", _Stdin(tty=True, answer="n\n"))
    code, text, err = run(capsys, "revoke", "--store", env.url, "--user", "u4")
    assert code == 1 and "Revoke all 2 session(s) of user 'u4'?" in text and env.live() == 4
    monkeypatch.setattr(sys, "stdin", _Stdin(tty=True, answer="y\n"))
    code, text, _ = run(capsys, "revoke", "--store", env.url, "--user", "u4")
    assert code == 0 and "revoked 2 session(s)" in text and env.live() == 2
    code, _, err = run(capsys, "revoke", "--store", env.url, "--user", "u4", "--yes")
    assert code == 1 and "no live session" in err
    code, text, _ = run(capsys, "revoke", "--store", env.url, "--all", "--yes")
    assert code == 0 and "revoked 2 session(s)" in text and env.live() == 0
    code, _, _ = run(capsys, "revoke", "--store", env.url, "--all", "--yes")
    assert code == 1
    code, _, err = run(capsys, "revoke", "--store", env.url, "--all", "--user", "u5")
    assert code == 2 and "exactly one" in err


# ---- stats ---------------------------------------------------------------------------------


def test_stats_counts_kinds_ages_expiry_and_top_users(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(3):
        env.seed("heavy", age=30, ttl=120)
    env.seed("light", age=2 * 3600, ttl=3 * 3600)
    env.seed(None, age=10, ttl=30)
    code, text, _ = run(capsys, "stats", "--store", env.url, "--json", "--top", "1")
    assert code == 0
    doc = json.loads(text)
    assert (doc["live"], doc["signed_in"], doc["anonymous"]) == (5, 4, 1)
    assert doc["top_users"] == [{"user_id": "heavy", "sessions": 3}]
    assert doc["by_age"]["< 1 min"] == 4 and doc["by_age"]["< 6 h"] == 1
    assert doc["by_time_to_expiry"]["< 1 min"] == 1 and doc["by_time_to_expiry"]["< 5 min"] == 3
    assert doc["by_time_to_expiry"]["< 12 h"] == 1
    if env.name in ("sqlite", "file", "postgres", "redis", "redis-cluster"):
        assert doc["size"]  # every real store can tell something
    code, text, _ = run(capsys, "stats", "--store", env.url)
    assert code == 0
    assert "5 session(s): 4 signed in, 1 anonymous" in text
    assert re.search(r"< 1 min\s+4\s+█+", text)  # the histogram's bars
    assert "heavy" in text and "sessions per user" in text


# ---- purge ---------------------------------------------------------------------------------


def _expired(env: Env, n: int, spread: float) -> None:
    now = time.time()
    for i in range(n):
        meta = Meta(now - 2 * spread - 10, now - 2 * spread - 10, now - 1 - spread * i / n, now + 60,
                    user_id="gone" if i % 2 else None)
        assert env.store.execute(Create(ids.storage_key(ids.new_token()), Record({}, meta)))


@pytest.mark.parametrize("env", SQLISH, indirect=True)
def test_purge_deletes_expired_rows_and_keeps_live_ones(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    live = [env.seed("u6"), env.seed(None)]
    _expired(env, 120, 3600)
    code, text, _ = run(capsys, "purge", "--store", env.url, "--batch", "10")
    assert code == 0, text
    assert "120 expired row(s) to delete" in text
    assert "removed 120 expired row(s)" in text
    lines = [line for line in text.splitlines() if line.startswith("purging:")]
    assert len(lines) >= 3  # progress while it works, not one final line
    assert lines[-1].startswith("purging: 120/120 (100%)")
    assert "/s" in lines[0] and "ETA" in lines[0]
    assert all(env.store.load(k, time.time()) is not None for k in live)
    code, text, _ = run(capsys, "purge", "--store", env.url)
    assert code == 0 and "removed 0 expired" in text


@pytest.mark.parametrize("env", SQLISH, indirect=True)
def test_purge_stops_between_chunks_on_ctrl_c_and_resumes(
        env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _expired(env, 200, 6 * 3600)
    store_cls = type(env.store)
    real = store_cls.purge
    calls: list[int] = []

    def purge_then_ctrl_c(self: Store, now: float, batch: int = 500) -> int:
        n = real(self, now, batch)
        calls.append(n)
        if sum(calls) > 0 and len(calls) >= 2:
            handler = signal.getsignal(signal.SIGINT)
            assert callable(handler)
            handler(signal.SIGINT, None)  # what Ctrl-C does: the CLI's handler runs
        return n

    monkeypatch.setattr(store_cls, "purge", purge_then_ctrl_c)
    # Whatever SIGINT did before (a shell started in the background ignores it) comes back.
    before = signal.getsignal(signal.SIGINT)
    code, text, err = run(capsys, "purge", "--store", env.url, "--batch", "5")
    monkeypatch.setattr(store_cls, "purge", real)
    assert code == 130
    assert "stopping after this chunk" in err
    done = int(re.search(r"stopped: removed (\d+)", text).group(1))  # type: ignore[union-attr]
    assert 0 < done < 200 and "run purge again to continue" in text
    code, text, _ = run(capsys, "purge", "--store", env.url, "--batch", "5")
    assert code == 0 and f"{200 - done} expired row(s) to delete" in text
    assert f"removed {200 - done} expired" in text
    assert signal.getsignal(signal.SIGINT) is before  # put back


def _delete_raw(env: Env, key: bytes) -> None:
    import redis

    for client in redis_backend.primaries(env.name):
        try:
            client.delete(key)
        except redis.ResponseError:  # MOVED: another primary holds it
            pass
        finally:
            client.close()


@pytest.mark.parametrize("env", REDISES, indirect=True)
def test_purge_on_redis_says_so_and_heals_stale_index_entries(
        env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    from sessionkeeper._cli_scan import _redis_send

    keep = env.seed("u7")
    gone = env.seed("u7")
    layout = env.store.plans.layout  # type: ignore[attr-defined]
    _delete_raw(env, layout.session(gone))  # what Redis's own expiry does: the index stays
    index = layout.index("u7")

    def members() -> list[bytes]:
        return sorted(_redis_send(env.store, (("ZRANGE", index, 0, -1),))[0])

    assert members() == sorted([keep.encode(), gone.encode()])
    code, text, _ = run(capsys, "purge", "--store", env.url)
    assert code == 0
    assert "Redis expires sessions by itself" in text
    assert "1 stale user-index entries" in text
    assert members() == [keep.encode()]
    assert SessionManager(env.store).devices("u7")[0].session_id == pid(keep)


@pytest.mark.parametrize("env", SQLISH, indirect=True)
def test_purge_events_prints_an_expired_event_per_session_as_json_lines(
        env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """``--events``: one ``expired`` audit event per session purged, as a JSON line on stdout
    (progress and summary on stderr); renewal aliases are removed without one. Sessions are
    named by the handle the app shows (its id_secret), never by key or token (ASVS 5.0 V7 /
    WSTG-SESS: identifiers in logs only in a one-way form)."""
    secret = "cli-events-secret"
    now = time.time()
    gone: dict[str, str | None] = {}
    for i in range(12):
        key = ids.storage_key(ids.new_token())
        meta = Meta(now - 900, now - 600, now - 300 + i, now + 60, user_id="u8" if i % 3 else None)
        assert env.store.execute(Create(key, Record({"cart": "[]"}, meta)))
        gone[pid(key, secret.encode())] = meta.user_id
    alias = ids.alias_key(ids.new_token())
    renewal = Meta(now - 60, now - 60, now - 30, now - 30)  # an expired renewal alias (core/flow.py)
    assert env.store.execute(Create(alias, Record({"to": '"x"'}, renewal)))
    keep = env.seed("u8")
    code, text, err = run(capsys, "purge", "--store", env.url, "--events", "--id-secret", secret,
                          "--batch", "5")
    assert code == 0, err
    events = [json.loads(line) for line in text.splitlines()]
    assert {e["session_id"]: e["user_id"] for e in events} == gone
    assert len(events) == 12
    for e in events:
        assert e["kind"] == "expired" and e["reason"] == "purge"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e["at"])
        assert e["expires_at"] < e["at"]
    assert "removed 13 expired row(s)" in err and "13 expired row(s) to delete" in err
    assert alias not in text and keep not in text
    assert env.store.load(keep, time.time()) is not None
    code, text, err = run(capsys, "purge", "--store", env.url, "--events")
    assert code == 0 and text == "" and "removed 0 expired" in err


@pytest.mark.parametrize("env", REDISES, indirect=True)
def test_purge_events_on_redis_reports_what_it_removes_and_not_what_redis_expired(
        env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """On Redis, ``purge --events`` names the sessions it removes itself (expired by this
    machine's clock, not yet by Redis's); a session Redis expired natively leaves only a stale
    user-index entry, whose user the index's hashed name does not tell: it is dropped with no
    event (docs/account-security.md says what Redis can and cannot report)."""
    soon = env.seed("u9", ttl=600)
    natively = env.seed("u9", ttl=600)
    _delete_raw(env, env.store.plans.layout.session(natively))  # type: ignore[attr-defined]
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 700)  # this machine's clock runs ahead
    code, text, err = run(capsys, "purge", "--store", env.url, "--events")
    monkeypatch.setattr(time, "time", real)
    assert code == 0, err
    events = [json.loads(line) for line in text.splitlines()]
    assert [(e["kind"], e["session_id"], e["user_id"], e["reason"]) for e in events] == [
        ("expired", pid(soon), "u9", "purge")]
    assert "removed 1 expired session(s) and 1 stale user-index entries" in err


# ---- check ---------------------------------------------------------------------------------


def test_check_reports_reach_version_round_trip_and_write(
        env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    code, text, _ = run(capsys, "check", env.url)
    assert code == 0, text
    assert re.search(r"\[ok\] +reachable.*round trip [\d.]+ ms best", text)
    assert "[ok]   write: a probe session was created and deleted" in text
    assert "[FAIL]" not in text
    if env.name != "file":
        assert re.search(r"\[ok\] +(SQLite|PostgreSQL|Redis) \d", text)
    assert env.live() == 0  # the probe left nothing behind


def test_check_explains_failures_in_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, text, _ = run(capsys, "check", "redis://127.0.0.1:1/0")
    assert code == 1
    fails = [line for line in text.splitlines() if line.startswith("[FAIL]")]
    assert len(fails) == 1 and "127.0.0.1:1" in fails[0]
    code, text, _ = run(capsys, "check", "nosuch://x")
    assert code == 1 and "[FAIL] store URL: unsupported store URL scheme" in text
    # as a command: the outage is said once (stdout), not repeated by the library's log line
    # unless -v asks for the log
    for verbose, logged in (([], False), (["-v"], True)):
        proc = subprocess.run([sys.executable, "-m", "sessionkeeper", *verbose, "check", "redis://127.0.0.1:1/0"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and proc.stdout.count("[FAIL]") == 1
        line = "ERROR sessionkeeper: session store redis://127.0.0.1:1/0 unavailable"
        assert (line in proc.stderr) is logged


def test_check_names_a_missing_postgres_table(capsys: pytest.CaptureFixture[str]) -> None:
    pg_backend.require_postgres()
    table = pg_backend.new_table()
    code, text, _ = run(capsys, "check", f"{pg_backend.URL}?table={table}&create_schema=false")
    assert code == 1
    fails = [line for line in text.splitlines() if line.startswith("[FAIL]")]
    assert len(fails) == 1 and table in fails[0]


# ---- doctor --------------------------------------------------------------------------------


def test_doctor_flags_cookie_domain_path_and_same_site(capsys: pytest.CaptureFixture[str]) -> None:
    code, text, _ = run(capsys, "doctor", "--url", "https://shop.example.com/", "--offline",
                        "--cookie-domain", "example.org")
    assert code == 1 and "does not cover the host 'shop.example.com'" in text
    code, text, _ = run(capsys, "doctor", "--url", "https://shop.example.com/", "--offline",
                        "--cookie-domain", ".example.com")
    assert code == 0 and "covers shop.example.com" in text
    code, text, _ = run(capsys, "doctor", "--url", "https://x.example/api/cart", "--offline",
                        "--cookie-path", "/app")
    assert "[warn] cookie_path '/app' does not cover '/api/cart'" in text
    code, text, _ = run(capsys, "doctor", "--insecure", "--same-site", "none")
    assert code == 1 and "SameSite=None without Secure" in text


class _Site:
    """A tiny HTTP server answering every GET with the given extra headers."""

    def __init__(self, headers: list[tuple[str, str]], status: int = 200) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(status)
                for name, value in site.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.headers = headers
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Site:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_doctor_reads_what_the_site_sends(capsys: pytest.CaptureFixture[str]) -> None:
    with _Site([("Set-Cookie", "session=abc; Path=/; HttpOnly; SameSite=None"), ("Vary", "Cookie")]) as site:
        code, text, _ = run(capsys, "doctor", "--url", site.url, "--insecure")
    assert code == 1 and "SameSite=None without Secure: browsers reject" in text
    with _Site([("Set-Cookie", "big=" + "x" * 5000)]) as site:
        code, text, _ = run(capsys, "doctor", "--url", site.url, "--insecure")
    assert code == 1 and "cookie 'big' is 5,004 bytes" in text
    with _Site([("Set-Cookie", "session=abc; Path=/; HttpOnly; SameSite=Lax")]) as site:
        code, text, _ = run(capsys, "doctor", "--url", site.url, "--insecure")
    assert "without 'Vary: Cookie'" in text
    # The Date header is the stdlib server's own: an hour-off clock is faked on our side.
    with _Site([]) as site:
        code, text, _ = run(capsys, "doctor", "--url", site.url, "--insecure")
    assert re.search(r"\[ok\] +clock: the site is within 5 s", text)
    assert "no session cookie on this response" in text


def test_doctor_sees_an_app_that_thinks_it_is_on_plain_http(capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy terminating TLS without forwarding the scheme: the app redirects to http://."""
    from sessionkeeper import _cli_doctor

    with _Site([("Location", "http://shop.example/login")], status=302) as site:
        # the site is plain HTTP here; doctor is told it is reached over HTTPS
        client = _cli_doctor.http.client
        real = client.HTTPSConnection
        monkeypatch.setattr(client, "HTTPSConnection", client.HTTPConnection)
        code, text, _ = run(capsys, "doctor", "--url", site.url.replace("http://", "https://"))
        monkeypatch.setattr(client, "HTTPSConnection", real)
    assert code == 1 and "X-Forwarded-Proto" in text


def test_doctor_checks_store_and_clock(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env.seed("u8")
    code, text, _ = run(capsys, "doctor", "--store", env.url)
    assert code == 0, text
    assert re.search(r"\[ok\] +store reachable .* 1 live session", text)
    if env.name in ("postgres", "redis", "redis-cluster"):
        assert "clock: the" in text
    code, text, _ = run(capsys, "doctor", "--store", "redis://127.0.0.1:1/0")
    assert code == 1 and "[FAIL] store:" in text


# ---- the command line itself ---------------------------------------------------------------


def _all_parsers() -> Iterator[tuple[str, Any]]:
    import argparse

    parser = build_parser()
    yield "sessionkeeper", parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def test_every_option_has_help_and_help_has_no_rst() -> None:
    for name, parser in _all_parsers():
        for action in parser._actions:
            if action.dest in ("help",):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
        text = parser.format_help()
        assert "``" not in text and ":func:" not in text, name
    top = build_parser().format_help()
    for command in ("stats", "list", "show", "revoke", "purge", "check", "doctor", "--version"):
        assert command in top
    assert "SESSIONKEEPER_STORE" in top and "SESSIONKEEPER_ID_SECRET" in top


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_every_store_command_takes_store_from_the_environment(
        env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    key = env.seed("u9")
    monkeypatch.setenv("SESSIONKEEPER_STORE", env.url)
    for argv in (["count"], ["list"], ["stats"], ["show", pid(key)], ["purge"], ["check"], ["doctor"]):
        code, text, err = run(capsys, *argv)
        assert code == 0, (argv, text, err)
    monkeypatch.delenv("SESSIONKEEPER_STORE")
    for argv in (["count"], ["list"], ["stats"], ["show", "abcd"], ["purge"], ["revoke", "--all"], ["check"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "--store" in err, argv


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_plain_fallback_without_rich(env: Env, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``[cli]`` extra is optional: without rich, tables and progress are plain text."""
    import io

    from sessionkeeper import _cli_output

    key = env.seed("u10")
    code, with_rich, _ = run(capsys, "list", "--store", env.url)
    for mod in ("rich", "rich.console", "rich.table", "rich.markup", "rich.progress"):
        monkeypatch.setitem(sys.modules, mod, None)  # import fails as if not installed
    assert _cli_output.rich_module() is None
    code, plain, _ = run(capsys, "list", "--store", env.url)
    assert code == 0
    header, row = plain.splitlines()[:2]
    assert re.fullmatch(r"handle +user +device +created +last seen +expires", header)
    assert re.match(rf"{pid(key)}  +u10  +{FIREFOX}, 203\.0\.113\.9  +1 min ago", row), row
    assert [w for w in with_rich.split() if w] == [w for w in plain.split() if w]  # same content
    # progress on a terminal without rich: one line rewritten with \r, a bar, rate and ETA
    stream = io.StringIO()
    bar = _cli_output.Progress("purging", 10, stream, tty=True)
    bar.update(5)
    bar.close()
    assert stream.getvalue().startswith("\r[##########..........] purging: 5/10 (50%)")
    code, text, _ = run(capsys, "stats", "--store", env.url)
    assert code == 0 and "sessions per user (top 10)" in text and "u10" in text


@pytest.mark.parametrize("env", ["postgres"], indirect=True)
def test_cli_as_a_subprocess(env: Env) -> None:
    key = env.seed("u11")
    proc = subprocess.run([sys.executable, "-m", "sessionkeeper", "list", "--store", env.url, "--json"],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["session_id"] == pid(key)
    proc = subprocess.run([sys.executable, "-m", "sessionkeeper", "revoke", "--store", env.url, pid(key)],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1 and "stdin is not a terminal" in proc.stderr  # refuses without --yes
    assert env.live() == 1
    proc = subprocess.run([sys.executable, "-m", "sessionkeeper", "revoke", "--store", env.url, pid(key),
                           "-y"], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and env.live() == 0


def test_user_index_hash_matches_the_store_layout() -> None:
    """redis_heal_indexes matches an index to its user by sha256(user id), as the layout names it."""
    from sessionkeeper.stores._redis_plan import Layout

    layout = Layout(prefix="p:", cluster=False)
    assert layout.index("42") == f"p:u:{{{hashlib.sha256(b'42').hexdigest()}}}".encode()
