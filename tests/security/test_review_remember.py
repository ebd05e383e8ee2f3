"""Review R1: "remember me" (``Session.remember`` / ``forget`` / ``permanent``) against the
absolute session lifetime, through real ASGI calls with an injected clock.

ASVS 5.0 V7.3.2 asks for an absolute maximum session lifetime after which the user must
authenticate again, whatever the activity; WSTG-SESS-07 tests it. A client that holds a
session (its owner, or a thief with a copied cookie) must not be able to push that limit out by
calling the app's ordinary "remember me" endpoints.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sessionkeeper import asgi, open_store

from .conftest import COOKIE, Resp, asgi_request

DAY = 24 * 3600.0
T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def app_routes() -> Any:
    """/login (remember me ticked), /keep (``session.permanent = True``, as Flask apps do on every
    request), /remember and /forget (a "keep me signed in" switch on a settings page), /me."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        s = scope["session"]
        path = scope["path"]
        if path == "/login":
            s.login("alice")
            s.remember()
        elif path == "/keep":
            s.permanent = True
        elif path == "/remember":
            s.remember()
        elif path == "/forget":
            s.forget()
        body = (s.user_id or "-").encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


class Browser:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.token: str | None = None

    def go(self, path: str) -> Resp:
        cookie = None if self.token is None else f"{COOKIE}={self.token}".encode()
        r = asyncio.run(asgi_request(self.app, path, method="POST", cookie=cookie,
                                     headers=[(b"sec-fetch-site", b"same-origin")]))
        for value in r.cookies():
            self.token = value or None
        return r


def make(clock: Clock) -> tuple[Any, Browser]:
    store = open_store("memory://")
    app = asgi.SessionMiddleware(app_routes(), store=store, clock=clock)
    return store, Browser(app)


def test_v7_3_2_permanent_true_on_every_request_does_not_extend_the_absolute_limit() -> None:
    """ASVS 5.0 V7.3.2 / WSTG-SESS-07: ``session.permanent = True`` on every request (the Flask
    idiom) is harmless: a daily visitor is still signed out 30 days after signing in."""
    clock = Clock()
    store, b = make(clock)
    try:
        assert b.go("/login").body == b"alice"
        for _ in range(29):
            clock.now += DAY
            assert b.go("/keep").body == b"alice"
        clock.now = T0 + 30 * DAY + 60
        assert b.go("/me").body == b"-"
    finally:
        store.close()


def test_v7_3_2_toggling_remember_me_cannot_outlive_the_absolute_limit() -> None:
    """ASVS 5.0 V7.3.2 / WSTG-SESS-07: the absolute limit is a bound on how long one sign-in
    lasts. Each ``remember()`` / ``forget()`` restarts the absolute window "from this call"
    (core/lifecycle.py ``LIMITS_SINCE``), so a client (the owner, or a thief replaying a copied
    cookie) that flips an app's "keep me signed in" switch off and on once a fortnight stays
    signed in for ever without ever authenticating again."""
    clock = Clock()
    store, b = make(clock)
    try:
        assert b.go("/login").body == b"alice"
        for _ in range(8):  # 8 x 13 days = 104 days, more than three absolute limits
            clock.now += 13 * DAY
            assert b.go("/forget").body in (b"alice", b"-")
            b.go("/remember")
        # 104 days after the only authentication, far past the 30-day remember-me limit
        assert b.go("/me").body == b"-", "still signed in 104 days after the only login"
    finally:
        store.close()


def test_v7_3_2_remember_long_after_login_is_bounded_by_the_login() -> None:
    """ASVS 5.0 V7.3.2: a browser session (12 h absolute) that calls ``remember()`` 11 hours
    after login (a thief with a copied cookie hitting the app's "stay signed in" endpoint)
    gets a full 30 days counted from that call, not from the authentication: 11 h + 30 d of
    one sign-in, past ``remember_absolute_timeout``."""
    clock = Clock()
    store, b = make(clock)

    try:
        assert b.go("/login").body == b"alice"
        b.go("/forget")  # a browser session: 30 min idle, 12 h absolute
        for _ in range(23):  # active for 11 hours, never idle for 30 minutes
            clock.now += 1700
            assert b.go("/me").body == b"alice"
        b.go("/remember")
        remembered_at = clock.now
        for days in (10, 20):  # a visit every ten days: never idle for 14 days
            clock.now = remembered_at + days * DAY
            assert b.go("/me").body == b"alice"
        clock.now = T0 + 30 * DAY + 3600  # 30 days and an hour after the login
        assert b.go("/me").body == b"-", "one sign-in lasted longer than remember_absolute_timeout"
    finally:
        store.close()
