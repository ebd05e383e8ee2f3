"""A real browser (headless Chromium driven by Playwright) against the demo site and against
an app with the default secure cookie: what a person sees, and what the browser keeps."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from sessionkeeper import open_store
from sessionkeeper.demo.app import _Server, make_app
from sessionkeeper.wsgi import ENVIRON_KEY, SessionMiddleware, StartResponse

from ..conftest import free_port, require_service

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(app: Any) -> Iterator[str]:
    port = free_port()
    httpd = make_server("127.0.0.1", port, app, server_class=_Server, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_service("playwright", "pip install playwright (in the dev extra)")
    if not shutil.which("chromium") and not shutil.which(CHROMIUM):
        require_service("chromium", "apt-get install chromium (.ci/run does this)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def demo_url() -> Iterator[str]:
    yield from _serve(make_app("memory://"))


def test_demo_in_a_browser(browser: Any, demo_url: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(demo_url + "/")
    assert "Not signed in" in page.inner_text("#status")
    # The login form carries a CSRF token, so the first visit stores an anonymous pre-session
    # (it used to set nothing; login CSRF protection needs somewhere to keep the token).
    (pre,) = context.cookies()
    page.fill("input[name=user]", "alice")
    page.click("#login")
    assert "alice" in page.inner_text("#user")
    (cookie,) = context.cookies()
    assert cookie["value"] != pre["value"]  # login rotates the ID
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/"
    assert len(cookie["value"]) == 43
    assert cookie["expires"] == -1  # a browser-session cookie: expiry is the server's job
    assert page.evaluate("document.cookie") == ""  # scripts cannot read it
    page.fill("input[name=key]", "colour")
    page.fill("input[name=value]", "blue")
    page.click("#set")
    assert "blue" in page.inner_text("#data")
    fingerprint = page.inner_text("#fingerprint")
    page.click("#regenerate")
    (renewed,) = context.cookies()
    assert renewed["value"] != cookie["value"]
    assert "blue" in page.inner_text("#data")
    assert page.inner_text("#fingerprint") != fingerprint  # the change is visible
    page.click("#logout")
    assert "Not signed in" in page.inner_text("#status")
    assert "blue" not in page.inner_text("#data")
    (after,) = context.cookies()  # a new anonymous pre-session for the login form
    assert after["value"] not in (cookie["value"], renewed["value"])
    context.close()


def test_demo_csp_blocks_nothing_it_needs(browser: Any, demo_url: str) -> None:
    """The demo's strict CSP (no scripts, the one inline style by hash) leaves the page
    styled and raises no violation in a real browser."""
    context = browser.new_context()
    page = context.new_page()
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    page.goto(demo_url + "/")
    margin = page.evaluate("getComputedStyle(document.body).maxWidth")
    assert margin != "none"  # the inline style applied (its hash is in the CSP)
    page.fill("input[name=user]", "alice")
    page.click("#login")  # form-action 'self' allows the demo's own forms
    assert "alice" in page.inner_text("#user")
    assert not [m for m in messages if "Content Security Policy" in m], messages
    context.close()


def test_chromium_keeps_the_default_host_prefixed_secure_cookie_on_localhost(browser: Any) -> None:
    """The defaults (Secure, __Host-) work in development over http://localhost in Chromium,
    which treats localhost as a secure context."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        session = environ[ENVIRON_KEY]
        if environ["PATH_INFO"] == "/":  # not /favicon.ico, which the browser asks for too
            session["n"] = session.get("n", 0) + 1
        body = str(session.get("n")).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    for url in _serve(SessionMiddleware(app, store=open_store("memory://"))):
        context = browser.new_context()
        page = context.new_page()
        assert page.goto(url + "/").text() == "1"
        (cookie,) = context.cookies()
        assert cookie["name"] == "__Host-session"
        assert cookie["secure"] is True
        assert page.goto(url + "/").text() == "2"
        context.close()
