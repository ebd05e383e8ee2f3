"""Issue 4, points 8 and 9: transports (cookie, header, URL: only the configured one is
accepted) and CSRF protection (Sec-Fetch-Site / Origin on unsafe methods, per-session form
tokens)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sessionkeeper import asgi
from sessionkeeper.core import ids

from .conftest import COOKIE, Browser, CountingStore, LClient

# ---- point 8: transports ------------------------------------------------------------------------


def test_header_transport(kind: str, store: CountingStore, make_client: Callable[..., LClient]) -> None:
    c = make_client(kind, store, transport="header")
    r = c.request("/set", k="a", v="1")
    token = r.one("x-session-token")
    assert token and ids.is_valid_token(token)
    assert r.all("set-cookie") == []
    assert r.one("cache-control") == "no-store"
    assert "X-Session-Token" in [v.strip() for vary in r.all("vary") for v in vary.split(",")]
    assert c.request("/all", token).json == {"a": "1"}
    # only the header is accepted: the same token as a cookie, or in the URL, is ignored
    assert c.request("/all", token, via="cookie").json == {}
    assert c.request("/all", token, via="url").json == {}
    # login rotates: the new token comes back in the header
    r = c.request("/login", token, u="alice")
    new = r.one("x-session-token")
    assert new and new != token and r.all("set-cookie") == []
    assert c.request("/whoami", new).json["user_id"] == "alice"
    assert c.request("/whoami", token).json["user_id"] is None
    # logout answers an empty header: the client drops its token
    r = c.request("/logout", new)
    assert r.one("x-session-token") == "" and r.all("set-cookie") == []
    assert c.request("/whoami", new).json["new"] is True
    # two token headers are ambiguous: neither is used
    assert c.request("/all", new, headers={"X-Session-Token": token + "," + new}).json == {}


def test_header_transport_custom_name_and_no_csrf(kind: str, store: CountingStore,
                                                  make_client: Callable[..., LClient]) -> None:
    c = make_client(kind, store, transport="header", header_name="X-Auth-Session", csrf=True)
    r = c.request("/set", k="a", v="1")
    token = r.one("x-auth-session")
    assert token and r.one("x-session-token") is None
    # a header token is never sent by a browser on its own: no CSRF check applies
    r = c.request("/post", token, method="POST", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status == 200
    assert c.request("/all", token).json == {"a": "1", "posted": "yes"}


def test_url_transport(kind: str, store: CountingStore, make_client: Callable[..., LClient]) -> None:
    c = make_client(kind, store, transport="url")
    r = c.request("/urltoken", k="a", v="1")
    token = r.json
    assert ids.is_valid_token(token)  # the token to put in links, saved with the session
    assert r.all("set-cookie") == [] and r.one("x-session-token") is None
    assert r.one("referrer-policy") == "no-referrer"
    assert c.request("/all", token).json == {"a": "1"}
    # every response carries the referrer policy, even one that never touched the session
    assert c.request("/untouched", token).one("referrer-policy") == "no-referrer"
    assert c.request("/untouched").one("referrer-policy") == "no-referrer"
    # an existing session's links keep its token
    assert c.request("/urltoken", token).json == token
    # only the URL is accepted
    assert c.request("/all", token, via="cookie").json == {}
    assert c.request("/all", token, via="header").json == {}
    # a login rotates: url_token() gives the new token; the old one is dead
    r = c.request("/urltoken", token, u="alice")
    new = r.json
    assert ids.is_valid_token(new) and new != token
    assert c.request("/whoami", new).json["user_id"] == "alice"
    assert c.request("/whoami", token).json["new"] is True
    # two sid parameters are ambiguous
    assert c.request(f"/all?sid={new}", new).json == {}


def test_url_token_is_none_for_other_transports(client: LClient) -> None:
    assert client.request("/urltoken", k="a", v="1").json is None


def test_cookie_transport_ignores_header_and_query_tokens(client: LClient) -> None:
    c = client
    r = c.request("/set", k="a", v="1")
    token = r.token
    assert token
    assert c.request("/all", token).json == {"a": "1"}
    assert c.request("/all", token, via="header").json == {}
    assert c.request("/all", token, via="url").json == {}
    assert c.request("/all", token).one("referrer-policy") is None


# ---- point 9: CSRF -------------------------------------------------------------------------------

CROSS = [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is not this origin
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://testserver"},  # another scheme is another origin
    {"Sec-Fetch-Site": "cross-site", "Origin": "https://testserver"},  # fetch metadata wins
]
SAME = [
    {"Sec-Fetch-Site": "same-origin"},
    {"Sec-Fetch-Site": "none"},  # typed in the address bar, a bookmark
    {"Origin": "https://testserver"},
    {"Origin": "https://testserver:443"},  # default port spelled out
    {"Origin": "https://TestServer/"},
    {},  # not a browser: no ambient cookies to abuse
]


@pytest.fixture
def guarded(kind: str, store: CountingStore, make_client: Callable[..., LClient]) -> LClient:
    return make_client(kind, store, csrf=True, trusted_origins=["https://app.example.com/"])


@pytest.mark.parametrize("headers", CROSS)
def test_cross_site_post_is_refused_before_the_app(guarded: LClient, headers: dict[str, str]) -> None:
    c = guarded
    b = Browser(c)
    b.go("/set", k="a", v="1")
    c.hits.clear()
    r = c.request("/post", b.token, method="POST", headers=headers)
    assert r.status == 403
    assert b"CSRF" in r.body
    assert c.hits == []  # the app never ran
    assert r.all("set-cookie") == []
    assert b.go("/all").json == {"a": "1"}  # nothing written
    # a cross-site GET (a link) is safe and passes
    assert c.request("/all", b.token, headers=headers).status == 200


@pytest.mark.parametrize("headers", SAME)
def test_same_origin_post_passes(guarded: LClient, headers: dict[str, str]) -> None:
    c = guarded
    b = Browser(c)
    b.go("/set", k="a", v="1")
    r = c.request("/post", b.token, method="POST", headers=headers)
    assert r.status == 200
    assert b.go("/all").json == {"a": "1", "posted": "yes"}


def test_trusted_origin_passes(guarded: LClient) -> None:
    c = guarded
    b = Browser(c)
    b.go("/set", k="a", v="1")
    r = c.request("/post", b.token, method="POST",
                  headers={"Origin": "https://app.example.com", "Sec-Fetch-Site": "same-site"})
    assert r.status == 200
    r = c.request("/post", b.token, method="POST",
                  headers={"Origin": "https://other.example.com", "Sec-Fetch-Site": "same-site"})
    assert r.status == 403


def test_csrf_off_by_default(client: LClient) -> None:
    r = client.request("/post", method="POST", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status == 200


def test_csrf_token_round_trip(client: LClient) -> None:
    c = client
    b = Browser(c)
    token = b.go("/csrf").json
    assert ids.is_valid_token(token) and b.token  # saved with the session
    assert b.go("/csrf").json == token  # stable within the session
    assert b.go("/checkcsrf", t=token).json is True
    assert b.go("/checkcsrf", t=token[:-1] + ("A" if token[-1] != "A" else "E")).json is False
    assert b.go("/checkcsrf").json is False
    other = Browser(c)
    assert other.go("/checkcsrf", t=token).json is False  # another session: not its token
    assert ids.is_valid_token(other.go("/csrf").json) and other.go("/csrf").json != token
    assert token not in [b.token, other.token]


def test_csrf_refusal_keeps_events_flowing(guarded: LClient) -> None:
    """Probing events raised before the refusal still reach subscribers."""
    c = guarded
    for i in range(20):  # default threshold: 20 unknown IDs per network per minute
        c.request("/post", f"junk{i}", method="POST", headers={"Sec-Fetch-Site": "cross-site"})
    assert [e.detail["reason"] for e in c.events.of("anomaly")] == ["unknown_ids"]


# ---- websockets: a cross-site handshake is refused too (ASGI) ---------------------------------


def ws_call(c: LClient, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    scope = {"type": "websocket", "path": "/ws", "scheme": "wss", "server": ("testserver", 443),
             "headers": headers, "query_string": b"", "asgi": {"version": "3.0"},
             "client": ("203.0.113.5", 50123)}
    incoming = [{"type": "websocket.connect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    async def ws_app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": str(scope["session"].get("a"))})
        await send({"type": "websocket.close", "code": 1000})

    mw = asgi.SessionMiddleware(ws_app, store=c.store, config=c.config)
    c.run(mw(scope, receive, send))
    return sent


def test_cross_site_websocket_handshake_is_refused(store: CountingStore,
                                                   make_client: Callable[..., LClient]) -> None:
    c = make_client("asgi", store, csrf=True)
    b = Browser(c)
    b.go("/set", k="a", v="1")
    cookie = (b"cookie", f"{COOKIE}={b.token}".encode())
    host = (b"host", b"testserver")
    ok = ws_call(c, [cookie, host, (b"origin", b"https://testserver")])
    assert [m["type"] for m in ok] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert ok[1]["text"] == "1"
    refused = ws_call(c, [cookie, host, (b"origin", b"https://evil.example")])
    assert refused == [{"type": "websocket.close", "code": 1008}]


def test_flask_refuses_before_the_apps_own_hooks(store: CountingStore) -> None:
    from flask import Flask

    from sessionkeeper import flask as sk_flask

    ran: list[str] = []
    app = Flask(__name__)

    @app.before_request
    def load_user() -> None:
        ran.append("hook")

    @app.route("/post", methods=["POST"])
    def post() -> str:
        ran.append("view")
        return "ok"

    sk_flask.init_app(app, store=store, csrf=True)
    client = app.test_client()
    r = client.post("/post", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403 and ran == []
    r = client.post("/post", headers={"Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 200 and ran == ["hook", "view"]
