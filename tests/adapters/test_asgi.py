"""The ASGI middleware through raw ASGI calls and Starlette: scope["session"], websockets,
header handling, and what happens when the app fails at each point."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from sessionkeeper import SessionConfig, asgi
from sessionkeeper.core import ids

from .conftest import COOKIE, AppClient, Boom, CountingStore, UnavailableStore

Message = dict[str, Any]


async def call(app: Any, headers: list[tuple[bytes, bytes]] | None = None, kind: str = "http",
               incoming: list[Message] | None = None, path: str = "/") -> list[Message]:
    """One raw ASGI call; returns the messages the app sent."""
    scope: dict[str, Any] = {"type": kind, "path": path, "root_path": "", "scheme": "https",
                             "server": ("testserver", 443), "headers": headers or [], "method": "GET",
                             "query_string": b"", "asgi": {"version": "3.0"}}
    queue = list(incoming or [{"type": "http.request", "body": b"", "more_body": False}])
    sent: list[Message] = []

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        await asyncio.sleep(0)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    return sent


def header_values(start: Message, name: bytes) -> list[bytes]:
    return [v for k, v in start.get("headers", []) if k == name]


def raw_app(action: Any) -> Any:
    """A bare ASGI app that runs ``action(session)`` and answers 200 "ok"."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        result = action(scope["session"])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"vary", b"Accept")]})
        await send({"type": "http.response.body", "body": repr(result).encode()})

    return app


def token_of(start: Message) -> str:
    (cookie,) = header_values(start, b"set-cookie")
    return cookie.decode().split(";", 1)[0].split("=", 1)[1]


def test_raw_app_sees_scope_session(store: CountingStore) -> None:
    app = asgi.SessionMiddleware(raw_app(lambda s: s.__setitem__("k", "v")), store=store)
    start, body = asyncio.run(call(app))
    token = token_of(start)
    assert start["status"] == 200 and body["body"] == b"None"
    assert header_values(start, b"vary") == [b"Accept", b"Cookie"]  # the app's own header kept
    assert header_values(start, b"cache-control") == [b"no-store"]
    reader = asgi.SessionMiddleware(raw_app(lambda s: dict(s)), store=store)
    _, body = asyncio.run(call(reader, [(b"cookie", f"{COOKIE}={token}".encode())]))
    assert body["body"] == b"{'k': 'v'}"


def new_token_for(store: CountingStore) -> str:
    app = asgi.SessionMiddleware(raw_app(lambda s: s.update(a=1)), store=store)
    return token_of(asyncio.run(call(app))[0])


def test_header_names_are_matched_case_insensitively(store: CountingStore) -> None:
    token = new_token_for(store)
    reader = asgi.SessionMiddleware(raw_app(lambda s: dict(s)), store=store)
    _, body = asyncio.run(call(reader, [(b"Cookie", f"{COOKIE}={token}".encode())]))
    assert body["body"] == b"{'a': 1}"


def test_split_cookie_headers_are_joined(store: CountingStore) -> None:
    token = new_token_for(store)
    reader = asgi.SessionMiddleware(raw_app(lambda s: dict(s)), store=store)
    headers = [(b"cookie", b"theme=dark"), (b"cookie", f"{COOKIE}={token}".encode())]
    assert asyncio.run(call(reader, headers))[1]["body"] == b"{'a': 1}"
    # ... and our name in two of them is two session cookies: no session.
    headers = [(b"cookie", f"{COOKIE}={token}".encode()), (b"cookie", f"{COOKIE}={token}".encode())]
    store.reset()
    assert asyncio.run(call(reader, headers))[1]["body"] == b"{}"
    assert store.ops == []


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00" * 43, "é".encode() * 22, b"\xff" * 43, b"A" * 5000, b"../" * 14 + b"A",
     b"'; DROP TABLE sessions; --" + b"A" * 17],
)
def test_raw_bad_bytes_never_reach_the_store(store: CountingStore, raw: bytes) -> None:
    app = asgi.SessionMiddleware(raw_app(lambda s: dict(s)), store=store)
    start, body = asyncio.run(call(app, [(b"cookie", COOKIE.encode() + b"=" + raw)]))
    assert (start["status"], body["body"]) == (200, b"{}")
    assert store.ops == []


def test_lifespan_passes_through(store: CountingStore) -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        assert "session" not in scope
        await send({"type": "lifespan.startup.complete"})

    sent = asyncio.run(call(asgi.SessionMiddleware(app, store=store), kind="lifespan",
                            incoming=[{"type": "lifespan.startup"}]))
    assert seen == ["lifespan"] and sent == [{"type": "lifespan.startup.complete"}]


def test_raise_before_response_writes_nothing(store: CountingStore) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["session"]["k"] = "v"
        raise Boom

    with pytest.raises(Boom):
        asyncio.run(call(asgi.SessionMiddleware(app, store=store)))
    assert store.ops == []


def test_raise_after_response_start_keeps_the_save(store: CountingStore) -> None:
    """Documented: once the headers (with the cookie) are out, the session they name exists."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["session"]["k"] = "v"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise Boom

    sent: list[Message] = []

    async def run() -> None:
        with contextlib.suppress(Boom):
            sent.extend(await call(asgi.SessionMiddleware(app, store=store)))

    asyncio.run(run())
    assert store.kinds() == ["Create"]


def test_5xx_from_a_raw_app_writes_nothing(store: CountingStore) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["session"]["k"] = "v"
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    start, _ = asyncio.run(call(asgi.SessionMiddleware(app, store=store)))
    assert header_values(start, b"set-cookie") == [] and store.ops == []


def test_config_object_and_options(store: CountingStore) -> None:
    app = asgi.SessionMiddleware(raw_app(lambda s: s.update(a=1)), store=store,
                                 config=SessionConfig(cookie_name="sid"), secure=False)
    (cookie,) = header_values(asyncio.run(call(app))[0], b"set-cookie")
    assert cookie.startswith(b"sid=") and b"Secure" not in cookie


# ---- websockets -------------------------------------------------------------------------------


def ws_app(store: Any) -> Starlette:
    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_json({"user": ws.session.get("user"), "n": len(ws.session)})
        await ws.close()

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)],
                     middleware=[Middleware(asgi.SessionMiddleware, store=store)])


def test_websocket_reads_the_session(store: CountingStore) -> None:
    token = AppClient("asgi", store).get("/set?k=user&v=carol").token
    assert token
    app = ws_app(store)
    for headers, expected in (
        ([(b"cookie", f"{COOKIE}={token}".encode())], '{"user":"carol","n":1}'),
        ([], '{"user":null,"n":0}'),
    ):
        sent = asyncio.run(call(app, headers, kind="websocket", path="/ws",
                                incoming=[{"type": "websocket.connect"}]))
        assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
        assert sent[1]["text"] == expected


def test_websocket_changes_are_not_saved(store: CountingStore) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["session"]["k"] = "v"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    sent = asyncio.run(call(asgi.SessionMiddleware(app, store=store), kind="websocket",
                            incoming=[{"type": "websocket.connect"}]))
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"]
    assert store.ops == []


def test_websocket_with_store_down_is_closed_try_again_later(store: CountingStore) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise AssertionError("not reached")

    headers = [(b"cookie", f"{COOKIE}={ids.new_token()}".encode())]
    sent = asyncio.run(call(asgi.SessionMiddleware(app, store=UnavailableStore(store)), headers,
                            kind="websocket", incoming=[{"type": "websocket.connect"}]))
    assert sent == [{"type": "websocket.close", "code": 1013}]
