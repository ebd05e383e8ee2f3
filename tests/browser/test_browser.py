"""A real browser (headless Chromium driven by Playwright) against the demo site and against
an app with the default secure cookie: what a person sees, and what the browser keeps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sessionkeeper import open_store
from sessionkeeper.demo.app import make_app
from sessionkeeper.wsgi import ENVIRON_KEY, SessionMiddleware, StartResponse

from .conftest import _serve


@pytest.fixture
def demo_url() -> Iterator[str]:
    yield from _serve(make_app("memory://"))


def test_demo_in_a_browser(browser: Any, demo_url: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(demo_url + "/signin")
    assert "Not signed in" in page.inner_text("#status")
    # The login form carries a CSRF token, so the first visit stores an anonymous pre-session
    # (it used to set nothing; login CSRF protection needs somewhere to keep the token).
    (pre,) = context.cookies()
    page.fill("input[name=user]", "alice")
    page.fill("input[name=password]", "demo")
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
    page.goto(demo_url + "/session")
    fingerprint = page.inner_text("#fingerprint")
    page.click("#regenerate")
    (renewed,) = context.cookies()
    assert renewed["value"] != cookie["value"]
    assert page.inner_text("#fingerprint") != fingerprint  # the change is visible
    page.goto(demo_url + "/")
    assert "blue" in page.inner_text("#data")
    page.click("#logout")
    assert "Not signed in" in page.inner_text("#status")
    assert "blue" not in page.inner_text("#data")
    (after,) = context.cookies()  # a new anonymous pre-session for the login form
    assert after["value"] not in (cookie["value"], renewed["value"])
    context.close()


def test_demo_csp_blocks_nothing_it_needs(browser: Any, demo_url: str) -> None:
    """The demo's strict CSP (scripts only from the site, i.e. the expiry client; the one
    inline style by hash; fetch only to the site) leaves the page styled and the client
    running, and raises no violation in a real browser."""
    context = browser.new_context()
    page = context.new_page()
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    page.goto(demo_url + "/signin")
    width = page.evaluate("getComputedStyle(document.querySelector('main')).maxWidth")
    assert width != "none"  # the inline style applied (its hash is in the CSP)
    page.fill("input[name=user]", "alice")
    page.fill("input[name=password]", "demo")
    page.click("#login")  # form-action 'self' allows the demo's own forms
    assert "alice" in page.inner_text("#user")
    # the client script loaded and its status fetch was allowed (connect-src 'self')
    page.wait_for_function("() => document.documentElement.dataset.sessionkeeper === 'ready'")
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
