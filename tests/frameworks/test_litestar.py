"""Litestar: ``request.session`` through ``sessionkeeper.litestar.session_middleware``, driven
by Litestar's own TestClient over https (``base_url="https://testserver.local"``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar, Request, WebSocket, get, post, websocket
from litestar.middleware import DefineMiddleware
from litestar.params import JSONBody
from litestar.testing import TestClient

from sessionkeeper import Session, Store, open_store, storage_key
from sessionkeeper.asgi import SessionMiddleware as ASGISessionMiddleware
from sessionkeeper.litestar import session_middleware
from tests.adapters.conftest import CountingStore

BASE = "https://testserver.local"


@dataclass
class Cart:
    items: list[str]


@post("/add")
async def add(request: Request[Any, Any, Any], data: JSONBody[dict[str, str]]) -> str:
    request.session["cart"] = [*request.session.get("cart", []), data["item"]]
    return "added"


@get("/")
async def read(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return {"cart": request.session.get("cart", []), "user": getattr(request.session, "user_id", None)}


@get("/nothing")
async def nothing() -> str:
    return "no session used"


@post("/replace")
async def replace(request: Request[Any, Any, Any]) -> str:
    request.set_session({"cart": ["replaced"]})
    return "replaced"


@post("/replace-dataclass")
async def replace_dataclass(request: Request[Any, Any, Any]) -> str:
    request.set_session(Cart(items=["boxed"]))  # type: ignore[arg-type]
    return "replaced"


@post("/clear")
async def clear(request: Request[Any, Any, Any]) -> str:
    request.clear_session()
    return "cleared"


@post("/login")
async def login(request: Request[Any, Any, Any], data: JSONBody[dict[str, str]]) -> str:
    session = request.session
    assert isinstance(session, Session)
    session.login(data["user"])
    return "welcome"


@websocket("/ws")
async def ws(socket: WebSocket[Any, Any, Any]) -> None:
    await socket.accept()
    await socket.send_json({"cart": socket.session.get("cart", [])})
    await socket.close()


HANDLERS = [add, read, nothing, replace, replace_dataclass, clear, login, ws]


def make_app(store: Store | str, **options: Any) -> Litestar:
    return Litestar(HANDLERS, middleware=[session_middleware(store, **options)])


@pytest.fixture
def store() -> CountingStore:
    return CountingStore(open_store("memory://"))


@pytest.fixture
def client(store: CountingStore) -> Iterator[TestClient[Litestar]]:
    with TestClient(make_app(store), base_url=BASE) as c:
        yield c


def token(c: TestClient[Litestar]) -> str | None:
    return c.cookies.get("__Host-session")


def test_request_session_is_server_side(client: TestClient[Litestar], store: CountingStore) -> None:
    r = client.post("/add", json={"item": "apple"})
    assert r.status_code == 201
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("__Host-session=") and "Secure" in cookie and "HttpOnly" in cookie
    value = token(client)
    assert value is not None and len(value) == 43
    assert store.inner.load(storage_key(value), 0) is not None
    client.post("/add", json={"item": "pear"})
    assert client.get("/").json() == {"cart": ["apple", "pear"], "user": None}


def test_a_request_without_a_cookie_costs_no_store_call(client: TestClient[Litestar],
                                                        store: CountingStore) -> None:
    assert client.get("/nothing").status_code == 200
    assert client.get("/").status_code == 200
    assert store.ops == []


def test_set_session_replaces_the_data(client: TestClient[Litestar], store: CountingStore) -> None:
    client.post("/add", json={"item": "apple"})
    before = token(client)
    client.post("/replace")
    assert client.get("/").json()["cart"] == ["replaced"]
    # set_session is Litestar's sign-in idiom: replacing a stored session's data gives it a
    # new ID and the old one is dead (ASVS V7.2.4; this test pinned "same token" before)
    after = token(client)
    assert before and after and after != before
    assert store.inner.load(storage_key(before), 0) is None
    client.post("/replace-dataclass")
    assert client.get("/").json()["cart"] == []  # the dataclass's field is "items", not "cart"


def test_v7_4_1_clear_session_deletes_it_on_the_server(client: TestClient[Litestar],
                                                       store: CountingStore) -> None:
    client.post("/add", json={"item": "apple"})
    value = token(client)
    assert value is not None
    r = client.post("/clear")
    assert "Max-Age=0" in r.headers["set-cookie"] or "expires=" in r.headers["set-cookie"].lower()
    assert store.inner.load(storage_key(value), 0) is None
    assert client.get("/").json()["cart"] == []


def test_v7_2_4_login_rotates_the_id(client: TestClient[Litestar], store: CountingStore) -> None:
    client.post("/add", json={"item": "apple"})
    before = token(client)
    client.post("/login", json={"user": "7"})
    after = token(client)
    assert before and after and before != after
    assert store.inner.load(storage_key(before), 0) is None
    assert client.get("/").json() == {"cart": ["apple"], "user": "7"}


def test_websocket_reads_the_session(client: TestClient[Litestar]) -> None:
    client.post("/add", json={"item": "apple"})
    # Litestar's TestClient opens websockets on ws:// even with an https base URL, so the
    # client's cookie jar keeps the Secure cookie back: send it by hand, as a browser on wss://
    # would.
    with client.websocket_connect("/ws", headers={"cookie": f"__Host-session={token(client)}"}) as socket:
        assert socket.receive_json() == {"cart": ["apple"]}


def test_a_store_url_is_opened_once_for_every_route() -> None:
    # Litestar builds the middleware per route: a memory:// store opened per route would
    # give each route its own sessions.
    with TestClient(make_app("memory://"), base_url=BASE) as c:
        c.post("/add", json={"item": "apple"})
        assert c.get("/").json()["cart"] == ["apple"]


def test_plain_asgi_middleware_serves_request_session() -> None:
    """The documented minimum: sessionkeeper.asgi's middleware alone handles reads and writes
    (only set_session/clear_session need the Litestar middleware)."""
    store = open_store("memory://")
    app = Litestar(HANDLERS, middleware=[DefineMiddleware(ASGISessionMiddleware, store=store)])
    with TestClient(app, base_url=BASE) as c:
        c.post("/add", json={"item": "apple"})
        assert c.get("/").json()["cart"] == ["apple"]
