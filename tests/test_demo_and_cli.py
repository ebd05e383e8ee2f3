"""The demo site as a user meets it (a real server process) and the CLI commands."""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionkeeper import open_store
from sessionkeeper.cli import main

from .conftest import free_port


@contextmanager
def running_demo(store: str | None = "memory://", env: dict[str, str] | None = None,
                 port: int | None = None) -> Iterator[str]:
    """``sessionkeeper demo`` in a real process; yields its base URL. ``store=None`` runs it
    with its default store (pass ``env`` with ``XDG_STATE_HOME`` to keep it in a temp dir)."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "sessionkeeper", "demo", "--port", str(port)]
    if store is not None:
        cmd += ["--store", store]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=None if env is None else {**os.environ, **env})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(base + "/", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    pytest.fail(f"demo did not start: {out}")
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture
def demo() -> Iterator[tuple[str, str]]:
    with running_demo("memory://") as base:
        yield base, "memory://"


def _status(page: str) -> str:
    m = re.search(r'<div class="box" id="status">(.*?)</div>', page, re.S)
    assert m, page
    return m.group(1)


def _fingerprint(page: str) -> str:
    m = re.search(r"id='fingerprint'>([^<]*)<", page)
    assert m, page
    return m.group(1)


class Browser:
    """A cookie-keeping client that, like a browser, posts the forms of the page it shows:
    each post carries the CSRF token of the last page it loaded."""

    def __init__(self, base: str, user_agent: str | None = None) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        if user_agent is not None:
            self.opener.addheaders = [("User-Agent", user_agent)]
        self.csrf: str | None = None

    def _remember(self, page: str) -> str:
        tokens = set(re.findall(r"name='csrf' value='([^']*)'", page))
        assert len(tokens) <= 1, tokens  # one token per page, in every form
        self.csrf = next(iter(tokens), None)
        return page

    def get(self, path: str = "/") -> str:
        return self._remember(self.opener.open(self.base + path, timeout=5).read().decode())

    def post(self, path: str, **form: str) -> str:
        if self.csrf is not None and "csrf" not in form:
            form["csrf"] = self.csrf
        if path == "/login":
            form.setdefault("password", "demo")  # every demo account's password
        data = urllib.parse.urlencode(form).encode()
        return self._remember(self.opener.open(self.base + path, data=data, timeout=5).read().decode())

    @property
    def token(self) -> str:
        (cookie,) = list(self.jar)
        return str(cookie.value)


def test_demo_login_change_logout(demo: tuple[str, str]) -> None:
    base, _ = demo
    b = Browser(base)
    first = b.get()
    assert "Not signed in" in _status(first)
    # The login form needs a CSRF token, so the first visit stores an anonymous pre-session
    # (this used to be "a read-only visit sets no cookie"; login CSRF protection needs it).
    assert len(b.jar) == 1
    pre_login = b.token
    page = b.post("/login", user="alice")
    assert "alice" in _status(page)
    token_after_login = b.token
    assert token_after_login != pre_login  # login rotates the ID
    page = b.post("/set", key="colour", value="<b>blue</b>")
    assert "&lt;b&gt;blue&lt;/b&gt;" in page  # escaped, stored, shown
    page = b.post("/regenerate")
    assert b.token != token_after_login
    assert "alice" in _status(page)
    page = b.post("/logout")
    assert "Not signed in" in _status(page)
    assert "blue" not in page


def test_demo_remember_me(demo: tuple[str, str]) -> None:
    """The login form's "remember me" makes the session persistent: the cookie has an expiry
    (it survives a browser restart); without it, a browser-session cookie."""
    base, _ = demo
    plain, kept = Browser(base), Browser(base)
    for b, extra in ((plain, {}), (kept, {"remember": "on"})):
        b.get()
        page = b.post("/login", user="gina", **extra)
        (cookie,) = list(b.jar)
        if extra:
            assert "id='remembered'" in page
            assert cookie.expires is not None and cookie.expires > time.time() + 20 * 86400
        else:
            assert "id='remembered'" not in page
            assert cookie.expires is None


def test_demo_new_session_id_shows_a_visible_change(demo: tuple[str, str]) -> None:
    """Issue 9.6: "New session ID" changes the fingerprint shown, a short keyed hash that
    reveals nothing of the token."""
    base, _ = demo
    b = Browser(base)
    b.get()
    b.post("/login", user="carol")
    before = _fingerprint(b.get("/session"))
    assert re.fullmatch(r"[0-9a-f]{8}", before), before
    page = b.post("/regenerate")  # back on "This session"
    after = _fingerprint(page)
    assert re.fullmatch(r"[0-9a-f]{8}", after), after
    assert after != before
    assert after not in b.token and b.token not in page  # never the token itself
    assert _fingerprint(b.get("/session")) == after  # stable until the ID changes again


def test_demo_shows_human_readable_times(demo: tuple[str, str]) -> None:
    """Issue 9.6: relative times ("just now", "in 29 minutes"), no raw timestamps with
    microseconds; the exact time (to the second) is the tooltip."""
    base, _ = demo
    b = Browser(base, "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")
    b.get()
    b.post("/login", user="dave")
    for path in ("/", "/session", "/devices"):
        page = b.get(path)
        visible = re.sub(r"<[^>]*>", "", page)  # the text a person reads
        assert not re.search(r"\d\d:\d\d:\d\d\.\d", page), visible  # no fractions of seconds
        assert "+00:00" not in visible
        status = re.sub(r"<[^>]*>", "", _status(page))
        assert "authenticated just now" in status
    page = b.get("/session")
    facts = re.sub(r"<[^>]*>", " ", page[page.index("id='facts'"):])
    assert re.search(r"expires\s+in (29|30) minutes\s+unless used", facts), facts
    assert re.search(r"title='\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC'", page)
    page = b.get("/devices")
    devices = page[page.index("id='devices'"):]
    assert "just now" in devices


@pytest.mark.parametrize(("when", "text"), [
    (0, "just now"),
    (-4, "just now"),
    (-42, "42 seconds ago"),
    (-60, "1 minute ago"),
    (-3 * 60 - 59, "3 minutes ago"),
    (-7200, "2 hours ago"),
    (-7200 - 5 * 60 - 7, "2 hours 5 minutes ago"),
    (-86400 * 3, "3 days ago"),
    (-86400 - 3600, "1 day 1 hour ago"),
    (1799, "in 29 minutes"),
    (1799.9, "in 29 minutes"),
    (43200, "in 12 hours"),
    (14 * 86400 - 0.5, "in 13 days 23 hours"),
])
def test_relative_time(when: float, text: str) -> None:
    from datetime import datetime, timedelta, timezone

    from sessionkeeper.demo.app import relative_time

    now = datetime(2026, 11, 30, 5, 0, 0, 123456, tzinfo=timezone.utc)
    assert relative_time(now + timedelta(seconds=when), now) == text
    assert relative_time(None, now) == "-"


def test_demo_port_taken_is_one_line_with_a_fix(tmp_path: Path) -> None:
    """Issue 9.6: a busy port is reported in one line that suggests --port; no traceback."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "sessionkeeper", "demo", "--port", str(port), "--store", "memory://"],
            capture_output=True, text=True, timeout=60,
        )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "already in use" in lines[0]
    assert f"--port {port + 1}" in lines[0]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import sessionkeeper

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"sessionkeeper {sessionkeeper.__version__}"
    proc = subprocess.run([sys.executable, "-m", "sessionkeeper", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"sessionkeeper {sessionkeeper.__version__}"


def test_cli_purge_count_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sessionkeeper.core.records import Create, Meta, Record

    url = f"file://{tmp_path}/sessions"
    now = time.time()
    with open_store(url) as store:
        for i, (user, ttl) in enumerate([("u1", 600), ("u1", 600), ("u2", 600), (None, -5)]):
            meta = Meta(created_at=now - 10, last_seen=now - 10, expires_at=now + ttl,
                        absolute_at=now + 3600, user_id=user, info={"ua": "Firefox"})
            store.execute(Create(f"{i:064x}", Record({"a": "1"}, meta)))
    assert main(["count", "--store", url]) == 0
    assert capsys.readouterr().out.strip() == "3"
    assert main(["list", "--store", url, "--user", "u1"]) == 0
    out = capsys.readouterr().out
    assert out.count("Firefox") == 2 and "ua=" not in out  # issue 13: human columns, no raw fields
    assert main(["purge", "--store", url]) == 0
    assert "removed 1" in capsys.readouterr().out
    assert main(["revoke", "--store", url, "--user", "u1", "--yes"]) == 0  # issue 13: asks unless --yes
    assert "revoked 2" in capsys.readouterr().out
    assert main(["count", "--store", url]) == 0
    assert capsys.readouterr().out.strip() == "1"


def test_cli_errors_are_messages_not_tracebacks(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SESSIONKEEPER_STORE", raising=False)
    assert main(["count"]) == 2
    assert "--store" in capsys.readouterr().err
    assert main(["count", "--store", "nosuch://x"]) == 2
    assert "supported" in capsys.readouterr().err


def test_doctor_flags_plain_http_with_secure_cookies(capsys: pytest.CaptureFixture[str]) -> None:
    # --offline: judge the URL without fetching it (tests stay on loopback)
    assert main(["doctor", "--url", "http://app.example/", "--offline", "--store", "memory://"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL]" in out
    assert "plain HTTP" in out
    assert main(["doctor", "--url", "https://app.example/", "--offline", "--store", "memory://"]) == 0


FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
CHROME_WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/131.0.0.0 Safari/537.36")
HEADLESS_CHROME = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "HeadlessChrome/131.0.6778.33 Safari/537.36")


def test_demo_devices_and_log_out_other_devices(demo: tuple[str, str]) -> None:
    base, _ = demo
    firefox, chrome, headless = (Browser(base, ua) for ua in (FIREFOX_LINUX, CHROME_WINDOWS, HEADLESS_CHROME))
    for b in (firefox, chrome, headless):
        b.get()
        b.post("/login", user="bob")
    page = firefox.get("/devices")
    assert "Firefox on Linux" in page
    assert "Chrome on Windows" in page
    assert "Chrome (headless) on Linux" in page  # issue 9.6: it used to say "Safari on Linux"
    assert "Safari" not in page
    assert page.count("this device") == 1
    # issue 10: each other device can be signed out on its own
    revoke = re.findall(r"<tr><td>Chrome \(headless\) on Linux.*?name='id' value='([^']+)'", page)
    assert len(revoke) == 1
    page = firefox.post("/revoke", id=revoke[0])
    assert "Chrome (headless)" not in page and "Chrome on Windows" in page
    assert "Not signed in" in _status(headless.get())
    firefox.post("/logout-others")
    assert "Not signed in" in _status(chrome.get())
    page = firefox.get("/devices")
    assert "bob" in _status(page)
    assert "Chrome on Windows" not in page


# Real User-Agent strings as browsers send them (2024-2025 versions) -> what "your devices"
# shows. Issue 9.6: headless Chrome was shown as "Safari on Linux".
REAL_USER_AGENTS = [
    (HEADLESS_CHROME, "Chrome (headless) on Linux"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "HeadlessChrome/120.0.0.0 Safari/537.36", "Chrome (headless) on Windows"),
    (CHROME_WINDOWS, "Chrome on Windows"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", "Chrome on macOS"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
     "Safari/537.36", "Chrome on Linux"),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Mobile Safari/537.36", "Chrome on Android"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", "Chrome on iOS"),
    ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", "Chrome on ChromeOS"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.1 Safari/605.1.15", "Safari on macOS"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "Safari on iOS"),
    ("Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.4.1 Mobile/15E148 Safari/604.1", "Safari on iOS"),
    (FIREFOX_LINUX, "Firefox on Linux"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
     "Firefox on Windows"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0",
     "Firefox on macOS"),
    ("Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0", "Firefox on Android"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15", "Firefox on iOS"),
    (CHROME_WINDOWS + " Edg/131.0.0.0", "Edge on Windows"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge on macOS"),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Mobile Safari/537.36 EdgA/131.0.0.0", "Edge on Android"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/17.0 EdgiOS/131.2903.68 Mobile/15E148 Safari/605.1.15", "Edge on iOS"),
    (CHROME_WINDOWS + " OPR/115.0.0.0", "Opera on Windows"),
    ("Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/27.0 Chrome/125.0.0.0 Mobile Safari/537.36", "Samsung Internet on Android"),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "bot"),
    ("curl/8.5.0", "curl"),
    ("python-requests/2.32.3", "python"),
    ("", "unknown"),
]


@pytest.mark.parametrize(("ua", "shown"), REAL_USER_AGENTS)
def test_user_agent_table(ua: str, shown: str) -> None:
    from sessionkeeper.core.fingerprint import ua_family

    assert ua_family(ua) == shown


@given(st.text(max_size=600))
def test_user_agent_parser_takes_any_header(ua: str) -> None:
    from sessionkeeper.core.fingerprint import ua_family

    shown = ua_family(ua)
    assert shown and len(shown) < 40


# ---- issue 10: the demo as a small shop ------------------------------------------------------


def test_demo_sign_in_needs_the_published_password(demo: tuple[str, str]) -> None:
    base, _ = demo
    b = Browser(base)
    page = b.get("/signin")
    assert "password <code>demo</code>" in page
    page = b.post("/login", user="alice", password="wrong", next="/cart")
    assert "Not signed in" in _status(page) and "id='failed'" in page
    page = b.post("/login", user="alice", next="/cart")
    assert "alice" in _status(page) and "<h1>Your cart</h1>" in page  # back where it was asked
    b2 = Browser(base)
    b2.get()
    page = b2.post("/login", user="eve", next="https://evil.example/")
    assert "<h1>Shop</h1>" in page  # next is a fixed list of the demo's pages: no open redirect


def test_demo_cart_lines_are_separate_session_keys(demo: tuple[str, str]) -> None:
    base, _ = demo
    b = Browser(base)
    b.get()
    b.post("/cart/add", sku="tea")
    b.post("/cart/add", sku="tea")
    page = b.post("/cart/add", sku="mug")
    assert "<code>cart:tea</code></td><td>2<" in page and "<code>cart:mug</code></td><td>1<" in page
    assert "2 items" not in page  # not signed in: no status line with the cart
    b.post("/login", user="ivy")  # the cart survives sign-in (the ID rotates, the data stays)
    page = b.get("/cart")
    assert "id='line-tea'" in page and "id='line-mug'" in page and "€27.00" in page
    page = b.post("/cart/remove", sku="tea")
    assert "id='line-tea'" not in page
    page = b.post("/checkout", address="1 Main St")
    assert "id='ordered'" in page and "id='line-mug'" not in page


def test_demo_step_up_for_the_sensitive_action(demo: tuple[str, str]) -> None:
    base, _ = demo
    b = Browser(base)
    b.get()
    b.post("/login", user="jo")
    page = b.get("/account")
    assert "id='change-email'" in page  # signed in just now: recent enough
    page = b.post("/account/email", email="jo@example.org")
    assert "id='changed'" in page and "jo@example.org" in page


def test_demo_serves_the_expiry_client_under_its_csp(demo: tuple[str, str]) -> None:
    base, _ = demo
    page = urllib.request.urlopen(base + "/", timeout=5)
    html_text = page.read().decode()
    assert '<script src="/_session/client.js"' in html_text and "<script>" not in html_text
    with urllib.request.urlopen(base + "/_session/client.js", timeout=5) as js:
        assert js.headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert "alertdialog" in js.read().decode()


@pytest.mark.parametrize("warn", ["10", "60"])
def test_demo_warn_before_is_checked(warn: str, capsys: pytest.CaptureFixture[str]) -> None:
    """At least 20 s (WCAG 2.2.1), and shorter than the idle timeout."""
    assert main(["demo", "--store", "memory://", "--port", str(free_port()), "--idle-timeout", "60",
                 "--warn-before", warn]) != 0
    assert "--warn-before must be at least 20 seconds" in capsys.readouterr().err
