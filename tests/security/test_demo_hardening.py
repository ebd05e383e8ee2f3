"""The demo site (``sessionkeeper demo``) as an attacker meets it, issue 8.13 and the demo part of
8.7: it showcases the library, so it is as hardened as the README tells users to be.

- WSTG-SESS-05 (CSRF), login CSRF included: the library's ``csrf=True`` plus a per-form token.
- WSTG-INPV / DoS: request bodies are bounded; a malformed ``Content-Length`` is a 400.
- WSTG-CLNT-09 (clickjacking) and ASVS 5.0 V3 (browser security headers) on every response.
- ASVS 5.0 V13 (secrets): the store URL's password is never shown.
- ASVS 5.0 V7 / issue 8.7: the default database is per user, not a fixed name in shared /tmp.

Tests go through a real demo process and, for the body cases, raw sockets (a client library
would refuse to send such headers).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionkeeper.demo import app as demo_app

from ..test_demo_and_cli import Browser, _status, running_demo


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with running_demo("memory://") as url:
        yield url


def raw_request(base: str, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` (request line and headers, without the blank line) and ``body`` over a
    plain socket, keep the socket open for writing, and read the whole answer. A server that
    waited for more body would hang here until the timeout fails the test."""
    host, port = urllib.parse.urlsplit(base).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head.replace("\n", "\r\n").encode("latin-1") + b"\r\n\r\n" + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    header, _, content = data.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, content


def refused(call: Callable[[], object]) -> tuple[int, list[str]]:
    """Run ``call`` (a urllib request that must fail); its status and Set-Cookie headers."""
    with pytest.raises(urllib.error.HTTPError) as caught:
        call()
    with caught.value as error:  # closes the response it holds
        return error.code, error.headers.get_all("Set-Cookie") or []


def post_raw(base: str, path: str, length: str, body: bytes = b"", extra: str = "") -> tuple[int, bytes]:
    head = f"POST {path} HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/x-www-form-urlencoded\n"
    head += f"Content-Length: {length}" + extra
    status, _, content = raw_request(base, head, body)
    return status, content


# ---- WSTG-SESS-05: CSRF, login CSRF included -------------------------------------------------


def test_wstg_sess_05_cross_site_login_is_refused_by_the_library(base: str) -> None:
    """A cross-site form post (what an attacker's page makes the victim's browser send) is
    refused by ``csrf=True`` before the demo runs, even with a valid form token."""
    victim = Browser(base)
    victim.get()
    assert victim.csrf
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"},
                    {"Sec-Fetch-Site": "same-site", "Origin": "https://sub.127.0.0.1"}):
        req = urllib.request.Request(
            base + "/login", data=urllib.parse.urlencode({"user": "mallory", "csrf": victim.csrf}).encode(),
            headers=headers)
        assert refused(lambda r=req: victim.opener.open(r, timeout=5))[0] == 403  # type: ignore[misc]
    assert "Not signed in" in _status(victim.get())


def test_wstg_sess_05_login_without_the_form_token_is_refused(base: str) -> None:
    """Login CSRF from a client that sends no fetch metadata (an old browser, a plugin): the
    per-form token is missing, so nobody is signed in and no session is handed out."""
    fresh = Browser(base)
    data = urllib.parse.urlencode({"user": "mallory"}).encode()
    assert refused(lambda: fresh.opener.open(base + "/login", data=data, timeout=5)) == (403, [])
    assert len(fresh.jar) == 0


def test_wstg_sess_05_attackers_own_form_token_does_not_work_for_the_victim(base: str) -> None:
    """The attacker loads the login page to get a valid token of *their* pre-session and
    plants it in a form: in the victim's session that token is wrong."""
    attacker, victim = Browser(base), Browser(base)
    attacker.get()
    victim.get()
    assert attacker.csrf != victim.csrf
    data = urllib.parse.urlencode({"user": "mallory", "csrf": attacker.csrf}).encode()
    assert refused(lambda: victim.opener.open(base + "/login", data=data, timeout=5))[0] == 403
    assert "Not signed in" in _status(victim.get())


@pytest.mark.parametrize("path", ["/logout", "/logout-others", "/regenerate", "/set", "/delete"])
def test_wstg_sess_05_every_action_needs_the_form_token(base: str, path: str) -> None:
    b = Browser(base)
    b.get()
    b.post("/login", user="erin")
    b.post("/set", key="k", value="v")
    token = b.token
    wrong = "wrong-" + (b.csrf or "")
    assert refused(lambda: b.post(path, csrf=wrong, key="k", value="changed")) == (403, [])
    page = b.get()
    assert b.token == token and "erin" in _status(page) and ">v<" in page  # nothing happened


def test_wstg_sess_05_every_form_carries_the_token(base: str) -> None:
    b = Browser(base)
    for step in (b.get, lambda: b.post("/login", user="frank"), lambda: b.post("/set", key="a", value="1")):
        page = step()
        forms = re.findall(r"<form method=.post.*?</form>", page, re.S)
        assert forms
        for form in forms:
            assert f"name='csrf' value='{b.csrf}'" in form, form


# ---- request bodies -----------------------------------------------------------------------------


@pytest.mark.parametrize("length", ["-1", "abc", "+12", "1_0", "0x10", "1e3", "12 34", "\xb2"])
def test_malformed_content_length_is_400_and_reads_nothing(base: str, length: str) -> None:
    """``Content-Length: -1`` used to read the body without limit (400 MB streamed, the
    connection held open) and ``abc`` gave a 500. Both, and every other non-digit form, are
    a 400 answered at once: the socket stays open for writing, so a server that waited for a
    body would never answer."""
    status, content = post_raw(base, "/login", length)
    assert status == 400, content
    assert b"Content-Length" in content


@pytest.mark.parametrize("length", [str(demo_app.MAX_BODY + 1), "9" * 5000, "0" * 50 + "70000"])
def test_oversized_body_is_413_without_reading_it(base: str, length: str) -> None:
    status, content = post_raw(base, "/set", length)
    assert status == 413, content


def test_chunked_body_is_411(base: str) -> None:
    status, _ = post_raw(base, "/set", "0", extra="\nTransfer-Encoding: chunked")
    assert status == 411


def test_a_body_at_the_limit_is_read(base: str) -> None:
    """The cap is not off by one, and the form in a full-size body still counts (it is just
    refused for its missing token, which shows the body was parsed)."""
    body = b"user=a&pad=" + b"x" * (demo_app.MAX_BODY - len(b"user=a&pad="))
    status, _ = post_raw(base, "/login", str(len(body)), body)
    assert status == 403


@given(st.one_of(st.none(), st.text(max_size=30), st.integers(-10, 10**15).map(str)))
def test_content_length_parser_accepts_only_plain_digits(value: str | None) -> None:
    environ = {} if value is None else {"CONTENT_LENGTH": value}
    plain = value is None or value == "" or (value.isascii() and value.isdigit())
    if plain and int(value or 0) <= demo_app.MAX_BODY:
        assert demo_app.content_length(environ) == int(value or 0)
    else:
        with pytest.raises(demo_app.BadRequest) as refused_:
            demo_app.content_length(environ)
        assert refused_.value.status.startswith("413" if plain else "400")


# ---- security headers on every response -----------------------------------------------------------


def _check_headers(headers: dict[str, str], page: bytes = b"") -> None:
    csp = headers["content-security-policy"]
    directives = dict(d.strip().partition(" ")[::2] for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'none'"
    # scripts only from the site itself (the library's expiry client), never inline (issue 10;
    # this said "no scripts at all" before the demo had its expiry warning)
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    style = directives["style-src"]
    assert "unsafe-inline" not in style
    m = re.search(rb"<style>(.*?)</style>", page, re.S)
    if m:  # the page's one inline style is allowed by its hash, nothing else
        digest = base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode()
        assert style == f"'sha256-{digest}'"
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


def test_wstg_clnt_09_every_response_carries_the_security_headers(base: str) -> None:
    """Page, redirect, 404, 405, 400, 413, the form-token 403 and the library's own CSRF 403:
    all carry CSP, X-Frame-Options, nosniff and Referrer-Policy."""
    status, headers, page = raw_request(base, "GET / HTTP/1.1\nHost: 127.0.0.1")
    assert status == 200
    _check_headers(headers, page)
    assert headers["cache-control"] == "no-store"
    token = re.search(rb"name='csrf' value='([^']+)'", page)
    cookie = headers["set-cookie"].split(";", 1)[0]
    assert token
    form = f"user=zoe&csrf={token.group(1).decode()}".encode()
    cases = [
        (f"POST /login HTTP/1.1\nHost: 127.0.0.1\nCookie: {cookie}\nContent-Length: {len(form)}", form, 303),
        ("GET /nowhere HTTP/1.1\nHost: 127.0.0.1", b"", 404),
        ("PUT / HTTP/1.1\nHost: 127.0.0.1\nContent-Length: 0", b"", 405),
        ("POST /set HTTP/1.1\nHost: 127.0.0.1\nContent-Length: abc", b"", 400),
        (f"POST /set HTTP/1.1\nHost: 127.0.0.1\nContent-Length: {10**6}", b"", 413),
        ("POST /set HTTP/1.1\nHost: 127.0.0.1\nContent-Length: 3", b"k=v", 403),
        ("POST /set HTTP/1.1\nHost: 127.0.0.1\nSec-Fetch-Site: cross-site\nContent-Length: 3", b"k=v", 403),
    ]
    for head, body, expected in cases:
        status, headers, content = raw_request(base, head, body)
        assert status == expected, (head, content)
        _check_headers(headers, content)


# ---- the store URL's password ----------------------------------------------------------------------


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://app:s3cret@db.internal:5432/app", "postgresql://app:***@db.internal:5432/app"),
    ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("rediss://user:p%40ss@cache/1?ssl_cert_reqs=none", "rediss://user:***@cache/1?ssl_cert_reqs=none"),
    ("postgresql://app@db/app?password=s3cret&sslpassword=x&connect_timeout=3",
     "postgresql://app@db/app?password=***&sslpassword=***&connect_timeout=3"),
    ("sqlite:///home/me/.local/state/sessionkeeper/demo.db", "sqlite:///home/me/.local/state/sessionkeeper/demo.db"),
    ("memory://", "memory://"),
])
def test_mask_url(url: str, shown: str) -> None:
    assert demo_app.mask_url(url) == shown


def test_v13_store_password_is_not_shown_on_the_page_or_console() -> None:
    """The demo printed and displayed the store URL with its password. A real PostgreSQL URL
    with a password (the local server trusts loopback, so any password works) must show
    ``***`` instead, in the page and on the console."""
    from ..stores.backends.postgres import require_postgres

    require_postgres()
    import psycopg

    table = f"sk_h4_demo_{uuid.uuid4().hex[:12]}"
    secret = "hunter2-" + uuid.uuid4().hex[:8]
    url = f"postgresql://postgres:{secret}@127.0.0.1:5432/test?table={table}&connect_timeout=5"
    try:
        port = None
        with running_demo(url) as base:
            page = urllib.request.urlopen(base + "/", timeout=5).read().decode()
            port = base.rsplit(":", 1)[1]
        assert secret not in page
        shown = re.search(r"<code id=\"store\">([^<]*)</code>", page)
        assert shown and shown.group(1) == f"postgresql://postgres:***@127.0.0.1:5432/test?table={table}&amp;connect_timeout=5"
        # the console line, from a second run that is stopped at once
        proc = subprocess.Popen([sys.executable, "-m", "sessionkeeper", "demo", "--port", port,
                                 "--store", url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            line = proc.stdout.readline().decode() if proc.stdout else ""
        finally:
            proc.terminate()
            proc.wait(10)
            if proc.stdout:
                proc.stdout.close()
        assert "demo on http://" in line and "postgres:***@" in line
        assert secret not in line
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')  # type: ignore[arg-type]


# ---- issue 8.7: the default database is per user ----------------------------------------------------


def test_v7_default_database_is_per_user_not_in_shared_tmp(tmp_path: Path) -> None:
    """``sessionkeeper demo`` without ``--store`` used ``/tmp/sessionkeeper-demo.db``: a name
    any local user could pre-create (and then forge sessions in). It now uses
    ``$XDG_STATE_HOME/sessionkeeper/demo.db`` in a 0700 directory."""
    state = tmp_path / "state"
    with running_demo(None, env={"XDG_STATE_HOME": str(state)}) as base:
        page = urllib.request.urlopen(base + "/", timeout=5).read().decode()
    folder = state / "sessionkeeper"
    assert (folder / "demo.db").is_file()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert f"sqlite:///{folder}/demo.db" in page


def test_v7_default_database_location_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    assert demo_app.default_store_url() == f"sqlite:///{home}/.local/state/sessionkeeper/demo.db"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")  # ignored, as the XDG spec says
    assert demo_app.default_store_url() == f"sqlite:///{home}/.local/state/sessionkeeper/demo.db"
    # a directory of ours that others can enter is tightened
    loose = tmp_path / "loose"
    (loose / "sessionkeeper").mkdir(parents=True)
    os.chmod(loose / "sessionkeeper", 0o777)
    monkeypatch.setenv("XDG_STATE_HOME", str(loose))
    assert demo_app.default_store_url().startswith(f"sqlite:///{loose}/sessionkeeper/")
    assert stat.S_IMODE((loose / "sessionkeeper").stat().st_mode) == 0o700


def test_v7_default_database_refuses_a_planted_directory(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """If the state directory cannot be made, the fallback is ``<tmp>/sessionkeeper-<uid>``;
    one that another user planted there, or a symlink, is refused with a clear error."""
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocked))  # makedirs under a file fails
    monkeypatch.setattr(demo_app.tempfile, "gettempdir", lambda: str(tmp_path))
    uid = os.getuid()
    assert demo_app.default_store_url() == f"sqlite:///{tmp_path}/sessionkeeper-{uid}/demo.db"
    assert stat.S_IMODE((tmp_path / f"sessionkeeper-{uid}").stat().st_mode) == 0o700

    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.setattr(demo_app.os, "getuid", lambda: uid + 1)  # "another user" made it
    (tmp_path / f"sessionkeeper-{uid + 1}").symlink_to(other)
    with pytest.raises(demo_app.ConfigError, match="symlink"):
        demo_app.default_store_url()
    (tmp_path / f"sessionkeeper-{uid + 1}").unlink()
    (tmp_path / f"sessionkeeper-{uid + 1}").mkdir()  # owned by uid, not by "uid + 1"
    with pytest.raises(demo_app.ConfigError, match="another user"):
        demo_app.default_store_url()
