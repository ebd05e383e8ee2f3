"""Review R1: FastAPI with ``SessionMiddleware(deferred=True)`` and ``SessionDep`` attacked:
requests that never load the session, and cross-site websocket hijacking (CSWSH).

Real ASGI calls (the raw helpers of this suite's conftest for HTTP, raw websocket messages for
the handshake, so the Origin and Sec-Fetch-Site headers are exactly what a browser on a hostile
page sends). Each test names its ASVS 5.0 V3 / V7 or WSTG-SESS requirement.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request, WebSocket

from sessionkeeper import Store, open_store, storage_key
from sessionkeeper.asgi import SessionMiddleware
from sessionkeeper.fastapi import SessionDep

from .conftest import COOKIE, asgi_request


@pytest.fixture
def store() -> Iterator[Store]:
    s = open_store("memory://")
    yield s
    s.close()


def make_app(store: Store, **options: Any) -> Any:
    app = FastAPI()

    @app.post("/login")
    async def login(session: SessionDep) -> str:
        session.login("alice")
        session["secret"] = "alice's card"
        return "ok"

    @app.post("/no-dependency")
    async def no_dependency() -> str:
        return "no session"

    @app.post("/sneaky")
    async def sneaky(request: Request) -> str:
        try:
            request.session["x"] = "written without loading"
        except Exception as exc:  # the SessionError of deferred mode
            return type(exc).__name__
        return "wrote"

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, session: SessionDep) -> None:
        await websocket.accept()
        await websocket.send_text(f"{session.user_id}:{session.get('secret')}")
        await websocket.close()

    return SessionMiddleware(app, store=store, deferred=True, **options)


def signed_in(app: Any) -> str:
    r = asyncio.run(asgi_request(app, "/login", method="POST",
                                 headers=[(b"sec-fetch-site", b"same-origin")]))
    assert r.status == 200
    token = r.token
    assert token
    return token


def websocket_call(app: Any, token: str, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "path": "/ws", "raw_path": b"/ws",
             "root_path": "", "scheme": "wss", "query_string": b"", "subprotocols": [],
             "server": ("testserver", 443), "client": ("203.0.113.9", 5555),
             "headers": [(b"host", b"testserver"), (b"cookie", f"{COOKIE}={token}".encode()), *headers]}
    incoming = [{"type": "websocket.connect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(0)
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


# A page on a sibling subdomain (same *site*: SameSite=Lax cookies do go with the handshake).
SIBLING = [(b"origin", b"https://evil.testserver"), (b"sec-fetch-site", b"same-site"),
           (b"sec-fetch-mode", b"websocket")]


def test_v7_4_1_request_that_never_loads_writes_nothing(store: Store) -> None:
    """WSTG-SESS-06/ASVS 5.0 V7.3.1: in deferred mode a route that never awaits the session
    neither touches nor saves it, and hands out no cookie, with a cookie or without."""
    app = make_app(store)
    token = signed_in(app)
    before = store.load(storage_key(token), 0)
    r = asyncio.run(asgi_request(app, "/no-dependency", method="POST",
                                 cookie=f"{COOKIE}={token}".encode(),
                                 headers=[(b"sec-fetch-site", b"same-origin")]))
    assert r.status == 200 and r.all("set-cookie") == []
    assert store.load(storage_key(token), 0) == before


def test_v7_2_1_using_request_session_without_loading_saves_nothing(store: Store) -> None:
    """ASVS 5.0 V7.2.1: ``request.session`` used before the load raises, and nothing the route
    tried to write reaches the store (no session created from an unloaded one)."""
    app = make_app(store)
    r = asyncio.run(asgi_request(app, "/sneaky", method="POST",
                                 headers=[(b"sec-fetch-site", b"same-origin")]))
    assert r.body == b'"SessionError"'
    assert r.all("set-cookie") == []


def test_v3_5_3_cross_site_websocket_is_refused_with_csrf_on(store: Store) -> None:
    """ASVS 5.0 V3.5.3 / WSTG-SESS-05 (CSWSH): with ``csrf=True`` a handshake from a sibling
    subdomain is closed (1008) before the route's dependency loads the session; a same-origin
    one is served (control)."""
    app = make_app(store, csrf=True)
    token = signed_in(app)
    refused = websocket_call(app, token, SIBLING)
    assert refused == [{"type": "websocket.close", "code": 1008}]
    same = websocket_call(app, token, [(b"origin", b"https://testserver"),
                                       (b"sec-fetch-site", b"same-origin")])
    assert {"type": "websocket.send", "text": "alice:alice's card"} in same


def test_v3_5_3_cross_site_websocket_is_refused_by_default(store: Store) -> None:
    """ASVS 5.0 V3.5.3 / WSTG-SESS-05 (CSWSH): a websocket handshake is a credentialed
    request that no CORS rule guards and ``SameSite=Lax`` does not stop from a sibling
    subdomain; the browser's ``Origin``/``Sec-Fetch-Site`` are the only defence. Under the
    default options a page on ``evil.testserver`` opens ``/ws`` with the user's cookie and
    reads what the session holds."""
    app = make_app(store)
    token = signed_in(app)
    sent = websocket_call(app, token, SIBLING)
    assert not any(m.get("text", "").startswith("alice") for m in sent), sent


def test_wstg_sess_09_rotate_policy_drifted_request_reads_nothing_in_deferred_mode(store: Store) -> None:
    """WSTG-SESS-09 / ASVS 5.0 V7.5.3: under ``anomaly_policy="rotate"`` a replay of the
    signed-in cookie from another browser, loaded through the deferred dependency, sees an
    empty anonymous session (not the victim's data) and is told to drop the stolen cookie;
    the owner's session is untouched."""
    app = make_app(store, anomaly_policy="rotate")
    r = asyncio.run(asgi_request(app, "/login", method="POST", headers=[
        (b"sec-fetch-site", b"same-origin"), (b"user-agent", b"Mozilla/5.0 Firefox/130.0")]))
    token = r.token
    assert token
    before = store.load(storage_key(token), 0)
    sent = websocket_call(app, token, [(b"user-agent", b"curl/8.5.0"),
                                       (b"origin", b"https://testserver")])
    assert {"type": "websocket.send", "text": "None:None"} in sent
    assert store.load(storage_key(token), 0) == before
