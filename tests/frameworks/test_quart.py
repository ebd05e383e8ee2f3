"""``sessionkeeper.quart``: ``quart.session`` server-side through the store's async face, driven
by Quart's own test client over https (``scheme="https"``), as the secure cookie needs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Quart, request, websocket
from quart import session as quart_session

from sessionkeeper import Store, open_store, storage_key
from sessionkeeper.core.records import Op
from sessionkeeper.quart import init_app, session
from tests.adapters.conftest import CountingStore, UnavailableStore

HTTPS = {"scheme": "https"}


class AsyncOnly(Store):
    """The sync face must not be used: every operation goes through ``aexecute``."""

    name = "async-only"

    def __init__(self) -> None:
        self.inner = open_store("memory://")
        self.threads: set[int] = set()

    def execute(self, op: Op) -> Any:
        raise AssertionError(f"sync face used for {type(op).__name__}")

    async def aexecute(self, op: Op) -> Any:
        self.threads.add(threading.get_ident())
        return self.inner.execute(op)


def make_app(store: Store, **options: Any) -> Quart:
    app = Quart(__name__)
    init_app(app, store=store, **options)

    @app.get("/")
    async def read() -> dict[str, Any]:
        return {"cart": quart_session.get("cart", []), "user": session.user_id}

    @app.get("/nothing")
    async def nothing() -> str:
        return "no session used"

    @app.post("/add")
    async def add() -> str:
        form = await request.form
        quart_session["cart"] = [*quart_session.get("cart", []), form["item"]]
        return "added"

    @app.post("/set/<key>")
    async def set_key(key: str) -> str:
        await asyncio.sleep(0.01)  # let a concurrent request load the same session
        quart_session[key] = (await request.form)["value"]
        return "set"

    @app.post("/login")
    async def login() -> str:
        session.login((await request.form)["user"])
        return "welcome"

    @app.post("/remember")
    async def remember() -> str:
        quart_session.permanent = True
        return "remembered"

    @app.post("/logout")
    async def logout() -> str:
        session.logout()
        return "bye"

    @app.websocket("/ws")
    async def ws() -> None:
        await websocket.send(str(quart_session.get("cart")))

    return app


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())


def token(response: Any) -> str | None:
    for header in response.headers.getlist("Set-Cookie"):
        name, _, rest = header.partition("=")
        if name.endswith("session"):
            return rest.split(";", 1)[0] or None
    return None


def test_session_is_server_side_and_loaded_through_the_async_face() -> None:
    store = AsyncOnly()
    app = make_app(store)

    async def main() -> None:
        client = app.test_client()
        r = await client.post("/add", form={"item": "apple"}, **HTTPS)
        assert r.status_code == 200
        value = token(r)
        assert value is not None and len(value) == 43  # the cookie carries a token, no data
        cookie = r.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and cookie.startswith("__Host-")
        assert store.inner.load(storage_key(value), 0) is not None
        await client.post("/add", form={"item": "pear"}, **HTTPS)
        assert (await (await client.get("/", **HTTPS)).get_json())["cart"] == ["apple", "pear"]

    run(main)
    assert len(store.threads) == 1  # every store call ran in the event loop's thread


def test_a_request_without_a_cookie_costs_no_store_call() -> None:
    store = CountingStore(open_store("memory://"))
    app = make_app(store)

    async def main() -> None:
        client = app.test_client()
        assert (await client.get("/nothing", **HTTPS)).status_code == 200
        assert (await client.get("/", **HTTPS)).status_code == 200

    run(main)
    assert store.ops == []


def test_v7_2_4_login_rotates_the_id_and_logout_deletes_it() -> None:
    store = CountingStore(open_store("memory://"))
    app = make_app(store)

    async def main() -> None:
        client = app.test_client()
        before = token(await client.post("/add", form={"item": "apple"}, **HTTPS))
        after = token(await client.post("/login", form={"user": "7"}, **HTTPS))
        assert before and after and before != after
        assert store.inner.load(storage_key(before), 0) is None
        assert (await (await client.get("/", **HTTPS)).get_json()) == {"cart": ["apple"], "user": "7"}
        r = await client.post("/logout", **HTTPS)
        assert "Max-Age=0" in r.headers["Set-Cookie"] or "expires=Thu, 01 Jan 1970" in r.headers["Set-Cookie"]
        assert store.inner.load(storage_key(after), 0) is None

    run(main)


def test_concurrent_requests_changing_different_keys_both_survive() -> None:
    store = open_store("memory://")
    app = make_app(store)
    tokens: list[str | None] = []

    async def main() -> None:
        client = app.test_client()
        tokens.append(token(await client.post("/add", form={"item": "apple"}, **HTTPS)))
        await asyncio.gather(
            client.post("/set/a", form={"value": "1"}, **HTTPS),
            client.post("/set/b", form={"value": "2"}, **HTTPS),
        )

    run(main)
    assert tokens[0] is not None
    record = store.load(storage_key(tokens[0]), 0)
    assert record is not None and set(record.fields) == {"a", "b", "cart"}


def test_permanent_is_remember_me() -> None:
    app = make_app(open_store("memory://"))

    async def main() -> None:
        client = app.test_client()
        await client.post("/add", form={"item": "apple"}, **HTTPS)
        r = await client.post("/remember", **HTTPS)
        assert "Max-Age=" in r.headers["Set-Cookie"]

    run(main)


def test_store_outage_answers_503_before_the_view() -> None:
    inner = open_store("memory://")
    app = make_app(inner)

    async def main() -> None:
        client = app.test_client()
        await client.post("/add", form={"item": "apple"}, **HTTPS)
        app.extensions["sessionkeeper"].store = UnavailableStore(inner)
        r = await client.get("/", **HTTPS)
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"

    run(main)


def test_csrf_option_refuses_cross_site_posts() -> None:
    app = make_app(open_store("memory://"), csrf=True)

    async def main() -> None:
        client = app.test_client()
        r = await client.post("/add", form={"item": "x"}, headers={"Sec-Fetch-Site": "cross-site"}, **HTTPS)
        assert r.status_code == 403
        r = await client.post("/add", form={"item": "x"}, headers={"Sec-Fetch-Site": "same-origin"}, **HTTPS)
        assert r.status_code == 200

    run(main)


def test_websocket_reads_the_session() -> None:
    app = make_app(open_store("memory://"))

    async def main() -> None:
        client = app.test_client()
        await client.post("/add", form={"item": "apple"}, **HTTPS)
        async with client.websocket("/ws", scheme="wss") as ws:
            assert await ws.receive() == "['apple']"

    run(main)


def test_v3_5_3_cross_site_websocket_gets_no_session_with_csrf_on() -> None:
    """WSTG-SESS-05 (CSRF): a websocket opened by another site carries the user's cookie; with
    ``csrf=True`` it is not given the session."""
    app = make_app(open_store("memory://"), csrf=True)

    async def main() -> None:
        client = app.test_client()
        await client.post("/add", form={"item": "apple"}, headers={"Sec-Fetch-Site": "same-origin"}, **HTTPS)
        async with client.websocket("/ws", scheme="wss", headers={"Origin": "https://evil.example"}) as ws:
            assert await ws.receive() == "None"
        async with client.websocket("/ws", scheme="wss", headers={"Origin": "https://localhost"}) as ws:
            assert await ws.receive() == "['apple']"

    run(main)


def test_v3_5_3_cross_site_websocket_gets_no_session_by_default() -> None:
    """ASVS 5.0 V3.5.3 / WSTG-SESS-05 (cross-site websocket hijacking): under the default
    options (``csrf`` off) a websocket opened by another site still gets no session; a
    ``trusted_origins`` entry lets that origin in."""

    async def main(app: Any, trusted: bool) -> None:
        client = app.test_client()
        await client.post("/add", form={"item": "apple"}, headers={"Sec-Fetch-Site": "same-origin"}, **HTTPS)
        async with client.websocket("/ws", scheme="wss", headers={"Origin": "https://evil.example"}) as ws:
            assert await ws.receive() == ("['apple']" if trusted else "None")
        async with client.websocket("/ws", scheme="wss", headers={"Origin": "https://localhost"}) as ws:
            assert await ws.receive() == "['apple']"

    plain = make_app(open_store("memory://"))
    run(lambda: main(plain, False))
    trusting = make_app(open_store("memory://"), trusted_origins=["https://evil.example"])
    run(lambda: main(trusting, True))
