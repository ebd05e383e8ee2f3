"""Issue 10, server side: the status / extend / end endpoints and the ``Session-Expires``
header, through real ASGI (Starlette), WSGI and Flask calls, with a store that counts its
operations and a clock the test moves (no timed assertions).

ASVS 5.0 V7.3.1 (idle timeout enforced by the server) and V7.3.2 (absolute timeout): polling
must never keep a session alive, and an extend never passes the absolute limit.
WSTG-SESS-05 (CSRF): extend and end refuse cross-site requests and requests without the
client's header.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from werkzeug.test import Client as WerkzeugClient

from sessionkeeper import ConfigError, SessionConfig
from sessionkeeper.core import expiry
from sessionkeeper.core.records import Apply, Create, Delete, Load, Rename

from .conftest import COOKIE, CountingStore, Resp, flask_app, starlette_app, wsgi_app

PREFIX = "/_session"
WRITES = (Apply, Create, Rename, Delete)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Client:
    def __init__(self, kind: str, store: CountingStore, clock: Clock, **options: Any) -> None:
        options = {"expiry_endpoints": PREFIX, "clock": clock, "idle_timeout": 60,
                   "absolute_timeout": 300, **options}
        self.kind = kind
        self.app: Any = {"asgi": starlette_app, "wsgi": wsgi_app, "flask": flask_app}[kind](store, **options)

    def request(self, method: str, path: str, cookie: str | None = None, **headers: str) -> Resp:
        h = {k.replace("_", "-"): v for k, v in headers.items()}
        if cookie is not None:
            h["Cookie"] = f"{COOKIE}={cookie}"
        if self.kind == "asgi":
            return asyncio.run(self._asgi(method, path, h))
        r = WerkzeugClient(self.app, use_cookies=False).open(path, method=method, headers=h,
                                                           base_url="https://localhost")
        return Resp(r.status_code, [(k.lower(), v) for k, v in r.headers.items()], r.get_data())

    async def _asgi(self, method: str, path: str, headers: dict[str, str]) -> Resp:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="https://localhost") as c:
            r = await c.request(method, path, headers=headers)
        return Resp(r.status_code, [(k.decode().lower(), v.decode()) for k, v in r.headers.raw], r.content)

    def login(self, user: str = "ann") -> str:
        token = self.request("GET", f"/login?u={user}").token
        assert token
        return token

    def extend(self, cookie: str, **headers: str) -> Resp:
        return self.request("POST", PREFIX + "/extend", cookie, X_Requested_With="sessionkeeper",
                            Sec_Fetch_Site="same-origin", **headers)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sk(kind: str, store: CountingStore, clock: Clock) -> Client:
    return Client(kind, store, clock)


def meta_of(store: CountingStore, token: str, clock: Clock) -> Any:
    from sessionkeeper.core import ids

    record = store.inner.execute(Load(ids.storage_key(token), clock.now))
    return None if record is None else record.meta


def test_status_answers_idle_and_absolute_expiry(sk: Client, store: CountingStore, clock: Clock) -> None:
    t0 = clock.now
    token = sk.login()
    clock.now += 10
    r = sk.request("GET", PREFIX + "/status", token)
    assert r.status == 200
    assert r.one("content-type") == "application/json"
    assert r.one("cache-control") == "no-store"
    assert r.json == {"active": True, "authenticated": True, "now": int(t0 + 10),
                      "idle_expires_at": int(t0 + 60), "absolute_expires_at": int(t0 + 300),
                      "idle_remaining": 50, "absolute_remaining": 290}


def test_v7_3_1_status_poll_never_counts_as_activity(sk: Client, store: CountingStore, clock: Clock) -> None:
    """Polling makes no store write, no touch and sends no cookie, even when a touch would be
    due on an ordinary request; the session still dies at its idle expiry."""
    token = sk.login()
    before = meta_of(store, token, clock)
    for _ in range(5):
        clock.now += 11  # past the touch throttle (a tenth of idle) every time
        store.reset()
        r = sk.request("GET", PREFIX + "/status", token)
        assert r.json["active"] is True
        assert [type(op) for op in store.ops] == [Load]
        assert r.all("set-cookie") == [] and r.one(expiry.HEADER.lower()) is None
    assert meta_of(store, token, clock) == before
    clock.now += 6  # 61 s after the last real request
    assert sk.request("GET", PREFIX + "/status", token).json["active"] is False
    assert sk.request("GET", "/user", token).json == {"user_id": None}


def test_status_without_a_session_makes_no_store_call(sk: Client, store: CountingStore) -> None:
    store.reset()
    r = sk.request("GET", PREFIX + "/status")
    assert r.json["active"] is False and r.all("set-cookie") == []
    assert store.ops == []


def test_v7_3_1_extend_slides_the_idle_expiry(sk: Client, store: CountingStore, clock: Clock) -> None:
    t0 = clock.now
    token = sk.login()
    clock.now += 40
    r = sk.extend(token)
    assert r.status == 200, r.body
    assert r.json["idle_expires_at"] == int(t0 + 100) and r.json["idle_remaining"] == 60
    assert r.one(expiry.HEADER.lower()) == f"idle={int(t0 + 100)}, absolute={int(t0 + 300)}"
    meta = meta_of(store, token, clock)
    assert meta.last_seen == t0 + 40 and meta.expires_at == t0 + 100
    clock.now += 50  # 90 s after login: alive only thanks to the extend
    assert sk.request("GET", "/user", token).json == {"user_id": "ann"}


def test_v7_3_2_extend_never_passes_the_absolute_limit(
    sk: Client, store: CountingStore, clock: Clock
) -> None:
    t0 = clock.now
    token = sk.login()
    for _ in range(5):
        clock.now += 55
        r = sk.extend(token)
    assert clock.now == t0 + 275
    assert r.json["idle_expires_at"] == int(t0 + 300) == r.json["absolute_expires_at"]
    assert meta_of(store, token, clock).expires_at == t0 + 300
    clock.now = t0 + 300
    assert sk.extend(token).json["active"] is False
    assert sk.request("GET", "/user", token).json == {"user_id": None}


@pytest.mark.parametrize("headers", [
    {},  # no X-Requested-With: a plain cross-site form could send this
    {"X_Requested_With": "XMLHttpRequest"},
    {"X_Requested_With": "sessionkeeper", "Sec_Fetch_Site": "cross-site"},
    {"X_Requested_With": "sessionkeeper", "Origin": "https://evil.example"},
])
def test_wstg_sess_05_extend_and_end_refuse_cross_site_or_headerless(
    sk: Client, store: CountingStore, clock: Clock, headers: dict[str, str]
) -> None:
    token = sk.login()
    before = meta_of(store, token, clock)
    clock.now += 30
    for path in ("/extend", "/end"):
        store.reset()
        r = sk.request("POST", PREFIX + path, token, **headers)
        assert r.status == 403, (path, r.body)
        assert store.ops == [] and r.all("set-cookie") == []
    assert meta_of(store, token, clock) == before


def test_end_signs_out(sk: Client, store: CountingStore, clock: Clock) -> None:
    token = sk.login()
    r = sk.request("POST", PREFIX + "/end", token, X_Requested_With="sessionkeeper", Origin="https://localhost")
    assert r.status == 200 and r.json["active"] is False
    assert r.token == ""  # the cookie is cleared
    assert meta_of(store, token, clock) is None


def test_methods_are_checked(sk: Client) -> None:
    assert sk.request("POST", PREFIX + "/status").status == 405
    r = sk.request("GET", PREFIX + "/extend")
    assert r.status == 405 and r.one("allow") == "POST"


def test_client_script_and_stylesheet_are_served(sk: Client, store: CountingStore) -> None:
    store.reset()
    js = sk.request("GET", PREFIX + "/client.js")
    assert js.status == 200 and js.one("content-type") == "text/javascript; charset=utf-8"
    assert js.one("cache-control") == "public, max-age=3600"
    assert js.one("x-content-type-options") == "nosniff"
    assert b'"sessionkeeper:" + type' in js.body and b'"role", "alertdialog"' in js.body
    css = sk.request("GET", PREFIX + "/client.css")
    assert css.one("content-type") == "text/css; charset=utf-8" and b"--sk-accent" in css.body
    assert store.ops == [] and js.all("set-cookie") == []
    assert sk.request("GET", PREFIX + "/other").status == 404  # the app's own 404


def test_ordinary_responses_carry_session_expires(sk: Client, store: CountingStore, clock: Clock) -> None:
    t0 = clock.now
    r = sk.request("GET", "/login?u=bo")
    assert r.one("session-expires") == f"idle={int(t0 + 60)}, absolute={int(t0 + 300)}"
    token = r.token
    assert token
    clock.now += 3  # no touch due: the expiry as loaded
    assert sk.request("GET", "/all", token).one("session-expires") == \
        f"idle={int(t0 + 60)}, absolute={int(t0 + 300)}"
    clock.now += 20  # a touch is due: the expiry as written
    assert sk.request("GET", "/all", token).one("session-expires") == \
        f"idle={int(t0 + 83)}, absolute={int(t0 + 300)}"
    # not read: no header (it would vary by cookie without Vary: Cookie); signed out: none
    assert sk.request("GET", "/untouched", token).one("session-expires") is None
    assert sk.request("GET", "/logout", token).one("session-expires") is None


def test_off_by_default(kind: str, store: CountingStore, clock: Clock) -> None:
    sk = Client(kind, store, clock, expiry_endpoints=None)
    token = sk.login()
    assert sk.request("GET", "/all", token).one("session-expires") is None
    assert sk.request("GET", PREFIX + "/status", token).status == 404


@pytest.mark.parametrize("bad", ["_session", "/_session/", "/a b", "", "/x?y", 5])
def test_option_is_checked(bad: object) -> None:
    with pytest.raises(ConfigError, match="expiry_endpoints"):
        SessionConfig(expiry_endpoints=bad)  # type: ignore[arg-type]
