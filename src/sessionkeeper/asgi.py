"""Pure ASGI middleware. The session is ``scope["session"]``, so Starlette's and FastAPI's
``request.session`` work unchanged.

ASGI apps read ``request.session`` synchronously, so a session cannot be fetched lazily from
an async store on first access without blocking the event loop. This middleware therefore
loads the session when the request *carries a well-formed session cookie*; a request with no
cookie (or a malformed one) costs no store call, and a loaded session the app never uses is
neither written nor touched.

The save happens when the app starts its response, so the ``Set-Cookie`` header can still be
added. An app that raises (or answers 5xx) before that saves nothing. An app that raises
*after* starting its response has already saved: the headers, cookie included, are on the
wire by then, and a session the client holds a cookie for must exist.

Websockets see the session read-only: a websocket has no response headers to carry a cookie.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .core.config import SessionConfig
from .core.flow import SessionFlow
from .core.records import Record
from .core.session import Session
from .drivers import run_async
from .errors import StoreUnavailable
from .stores.base import Store

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_UNAVAILABLE_BODY = b"Session store unavailable; try again shortly.\n"


def _cookie_header(scope: Scope) -> str | None:
    # Servers lowercase header names, but a hand-built scope may not: compare lowercased.
    found = [v for k, v in scope.get("headers", ()) if k.lower() == b"cookie"]
    if not found:
        return None
    # HTTP/2 may split cookies over several headers; join them as one.
    return "; ".join(v.decode("latin-1") for v in found)


class SessionMiddleware:
    """Server-side sessions for any ASGI app: ``SessionMiddleware(app, store=..., **options)``.

    ``options`` are the fields of :class:`~sessionkeeper.SessionConfig` (``idle_timeout``,
    ``absolute_timeout``, ``secure``, ``cookie_name``, ``same_site`` …).
    """

    def __init__(
        self, app: ASGIApp, store: Store, config: SessionConfig | None = None, **options: Any
    ) -> None:
        self.app = app
        self.store = store
        self.config = SessionConfig.from_options(config, **options)
        self.flow = SessionFlow(self.config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        flow = self.flow
        token = flow.token(_cookie_header(scope))
        record: Record | None = None
        try:
            if token is not None:
                record = flow.check(await self.store.aexecute(flow.load_op(token)))
        except StoreUnavailable:
            await self._unavailable(scope, send)
            return
        session: Session = flow.session(record)
        scope["session"] = session
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                headers = await run_async(flow.commit(token, session, message["status"]), self.store)
                if headers:
                    raw = list(message.get("headers", ()))
                    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
                    message["headers"] = raw
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except StoreUnavailable:
            if started:
                raise
            await self._unavailable(scope, send)

    async def _unavailable(self, scope: Scope, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})  # "try again later"
            return
        await send({
            "type": "http.response.start",
            "status": self.config.unavailable_status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(_UNAVAILABLE_BODY)).encode()),
                (b"retry-after", b"1"),
                (b"cache-control", b"no-store"),
            ],
        })
        await send({"type": "http.response.body", "body": _UNAVAILABLE_BODY})
