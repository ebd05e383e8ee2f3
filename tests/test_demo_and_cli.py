"""The demo site as a user meets it (a real server process) and the CLI commands."""

from __future__ import annotations

import http.cookiejar
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionkeeper import open_store
from sessionkeeper.cli import main

from .conftest import free_port


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, str]]:
    port = free_port()
    store = "memory://"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sessionkeeper", "demo", "--port", str(port), "--store", store],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
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
        yield base, store
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


def _status(page: str) -> str:
    m = re.search(r'<div class="box" id="status">(.*?)</div>', page, re.S)
    assert m, page
    return m.group(1)


def test_demo_login_change_logout(demo: tuple[str, str]) -> None:
    base, _ = demo
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def post(path: str, **form: str) -> str:
        data = urllib.parse.urlencode(form).encode()
        return str(opener.open(base + path, data=data, timeout=5).read().decode())

    first = opener.open(base + "/", timeout=5).read().decode()
    assert "Not signed in" in _status(first)
    assert len(jar) == 0  # a read-only visit sets no cookie
    page = post("/login", user="alice")
    assert "alice" in _status(page)
    token_after_login = next(iter(jar)).value
    page = post("/set", key="colour", value="<b>blue</b>")
    assert "&lt;b&gt;blue&lt;/b&gt;" in page  # escaped, stored, shown
    page = post("/regenerate")
    assert next(iter(jar)).value != token_after_login
    assert "alice" in _status(page)
    page = post("/logout")
    assert "Not signed in" in _status(page)
    assert "blue" not in page


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
    assert out.count("ua=Firefox") == 2
    assert main(["purge", "--store", url]) == 0
    assert "removed 1" in capsys.readouterr().out
    assert main(["revoke", "--store", url, "--user", "u1"]) == 0
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
    assert main(["doctor", "--url", "http://app.example/", "--store", "memory://"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL]" in out
    assert "plain HTTP" in out
    assert main(["doctor", "--url", "https://app.example/", "--store", "memory://"]) == 0


def test_demo_devices_and_log_out_other_devices(demo: tuple[str, str]) -> None:
    base, _ = demo

    def browser(ua: str) -> urllib.request.OpenerDirector:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        opener.addheaders = [("User-Agent", ua)]
        return opener

    firefox = browser("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")
    chrome = browser("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                     "Chrome/131.0.0.0 Safari/537.36")
    for b in (firefox, chrome):
        b.open(base + "/login", data=b"user=bob", timeout=5).read()
    page = firefox.open(base + "/", timeout=5).read().decode()
    assert "Firefox on Linux" in page
    assert "Chrome on Windows" in page
    assert page.count("this device") == 1
    firefox.open(base + "/logout-others", data=b"", timeout=5).read()
    assert "Not signed in" in _status(chrome.open(base + "/", timeout=5).read().decode())
    page = firefox.open(base + "/", timeout=5).read().decode()
    assert "bob" in _status(page)
    assert "Chrome on Windows" not in page
