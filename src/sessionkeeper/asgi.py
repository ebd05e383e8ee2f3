"""Pure ASGI middleware. The session is ``scope["session"]``, so Starlette's and FastAPI's
``request.session`` work unchanged.

ASGI apps read ``request.session`` synchronously, so a session cannot be fetched lazily from
an async store on first access without blocking the event loop. By default this middleware
therefore loads the session when the request *carries a well-formed session cookie*; a request with no
cookie (or a malformed one) costs no store call, and a loaded session the app never uses is
neither written nor touched.

With ``lazy_load=True`` it instead loads on first access through the store's *sync* face, in
the event loop's thread: a request that never touches the session costs no store call, and one
that does blocks the loop for that one round trip (negligible for the memory, SQLite and file
stores; one network round trip for Redis or PostgreSQL). The save is async either way.

The save happens when the app starts its response, so the ``Set-Cookie`` header can still be
added. An app that raises (or answers 5xx) before that saves nothing. An app that raises
*after* starting its response has already saved: the headers, cookie included, are on the
wire by then, and a session the client holds a cookie for must exist.

Websockets see the session read-only: a websocket has no response headers to carry a cookie.

With ``deferred=True`` the session is put in the scope unloaded and the app awaits its load
(``await load_session(request)``, or FastAPI's ``SessionDep`` from :mod:`sessionkeeper.fastapi`):
no store call unless asked for, and the one load goes through the async face. Using the session
before that raises ``SessionError`` (see :mod:`sessionkeeper._deferred`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from ._adapter import commit, expiry_answer, own_answer_headers, resolve_config, resolve_store
from ._deferred import load_session as load_session  # re-exported: sessionkeeper.asgi.load_session
from ._deferred import open_deferred
from .core import expiry
from .core.config import SessionConfig
from .core.flow import RequestInfo, RequestState, SessionFlow
from .core.records import Record
from .core.session import Session
from .dispatch import emit_async
from .drivers import run_async, run_sync
from .errors import ConfigError, SessionError, StoreUnavailable
from .responses import CSRF_REFUSED, UNAVAILABLE
from .stores.base import Store

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]



_WANTED = frozenset({b"cookie", b"host", b"user-agent", b"origin", b"sec-fetch-site"})


def request_info(scope: Scope, header_name: str, wanted: frozenset[bytes] | None = None) -> RequestInfo:
    """What the flow needs from an ASGI scope (only the few headers it reads are decoded)."""
    if wanted is None:
        wanted = _WANTED | {header_name.lower().encode("latin-1")}
    found: dict[bytes, str] = {}
    for k, v in scope.get("headers", ()):
        # Servers lowercase header names, but a hand-built scope may not: compare lowercased.
        name = k.lower()
        if name not in wanted:
            continue
        value = v.decode("latin-1")
        if name in found:
            # HTTP/2 may split cookies over several headers; other repeats join with ","
            found[name] += ("; " if name == b"cookie" else ",") + value
        else:
            found[name] = value
    client = scope.get("client")
    # A websocket handshake is a GET, but one a cross-site page may open with the user's
    # cookies: the CSRF check treats it as unsafe.
    websocket = scope.get("type") == "websocket"
    get = found.get
    return RequestInfo(
        method="WEBSOCKET" if websocket else str(scope.get("method") or "GET").upper(),
        cookie=get(b"cookie"),
        header_token=get(header_name.lower().encode("latin-1")),
        query=bytes(scope.get("query_string") or b"").decode("latin-1"),
        ip=str(client[0]) if client else None,
        user_agent=get(b"user-agent"),
        origin=get(b"origin"),
        sec_fetch_site=get(b"sec-fetch-site"),
        host=get(b"host"),
        scheme=str(scope.get("scheme") or "http").replace("ws", "http"),
    )


class SessionMiddleware:
    """Server-side sessions for any ASGI app: ``SessionMiddleware(app, store=..., **options)``.

    ``store`` is a :class:`~sessionkeeper.Store` or a store URL (``"sqlite:///sessions.db"``,
    opened with :func:`~sessionkeeper.open_store`). ``options`` are the fields of
    :class:`~sessionkeeper.SessionConfig` (``idle_timeout``, ``absolute_timeout``, ``secure``,
    ``cookie_name``, ``same_site`` …). Wrong types are refused here, not on the first request.

    ``deferred=True``: the session is loaded only when the app awaits it
    (:func:`load_session`, FastAPI's ``SessionDep``), through the store's async face; touching
    ``request.session`` before that raises ``SessionError``. Not combinable with ``lazy_load``.
    """

    def __init__(
        self, app: ASGIApp, store: Store | str, config: SessionConfig | None = None,
        deferred: bool = False, **options: Any
    ) -> None:
        self.app = app
        # options first: a bad option should not leave a store connection open behind it
        self.config = SessionConfig.from_options(resolve_config(config, "SessionMiddleware"), **options)
        if not isinstance(deferred, bool) or (deferred and self.config.lazy_load):
            raise ConfigError("SessionMiddleware: deferred= must be True or False, and deferred=True "
                              "replaces lazy_load=True (pass one of them)")
        self.deferred = deferred
        self.store = resolve_store(store, "SessionMiddleware")
        self.flow = SessionFlow(self.config)
        self._wanted = _WANTED | {self.config.header_name.lower().encode("latin-1")}
        self._own = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                     for k, v in own_answer_headers(self.config)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        flow = self.flow
        state = flow.begin(request_info(scope, self.config.header_name, self._wanted))
        try:
            if state.csrf_failed:
                await self._refuse(scope, send)
                return
            if self.config.expiry_endpoints is not None and scope["type"] == "http":
                endpoint = expiry.route(self.config.expiry_endpoints, str(scope.get("path") or ""))
                if endpoint is not None:
                    await self._expiry(scope, send, state, endpoint)
                    return
            session: Session
            if self.deferred:
                session = open_deferred(flow, state, self.store)
            elif self.config.lazy_load and scope["type"] == "http":
                store = self.store
                session = flow.open(state, run=lambda gen: run_sync(gen, store))
            else:
                record: Record | None = None
                try:
                    if state.token is not None:
                        record = await run_async(flow.load(state), self.store)
                except StoreUnavailable:
                    await self._unavailable(scope, send)
                    return
                session = flow.open(state, record)
            scope["session"] = session
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
                return
            await self._http(scope, receive, send, state, session)
        finally:
            if state.events:
                await emit_async(self.config.on_event, state.take_events())

    async def _http(
        self, scope: Scope, receive: Receive, send: Send, state: RequestState, session: Session
    ) -> None:
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                headers = await run_async(commit(self.flow, state, session, message["status"]), self.store)
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

    async def _expiry(self, scope: Scope, send: Send, state: RequestState, endpoint: expiry.Endpoint) -> None:
        """Answer an expiry endpoint (``expiry_endpoints``) without running the app."""
        asked = _header(scope, expiry.REQUESTED_WITH_HEADER.lower().encode("latin-1"))
        try:
            status, headers, body = await run_async(
                expiry_answer(self.flow, state, endpoint, asked), self.store)
        except StoreUnavailable:
            await self._unavailable(scope, send)
            return
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                        for k, v in [*headers, *own_answer_headers(self.config)]],
        })
        await send({"type": "http.response.body", "body": b"" if state.info.method == "HEAD" else body})

    async def _refuse(self, scope: Scope, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation
            return
        await _plain(send, 403, CSRF_REFUSED, self._own)

    async def _unavailable(self, scope: Scope, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})  # "try again later"
            return
        await _plain(send, self.config.unavailable_status, UNAVAILABLE,
                     [(b"retry-after", b"1"), *self._own])


async def _plain(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            *extra,
        ],
    })
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", ()):
        if k.lower() == name:
            return str(v.decode("latin-1"))
    return None


class _HasScope(Protocol):
    @property
    def scope(self) -> Scope: ...


def get_session(request: _HasScope | Scope) -> Session:
    """The request's session, typed: ``get_session(request)`` for a Starlette or FastAPI
    ``Request`` (or ``WebSocket``), or ``get_session(scope)`` for a raw ASGI scope.

    ``request.session`` works too, but Starlette types it as ``dict[str, Any]``, so type
    checkers reject ``request.session.login(...)``; this returns a
    :class:`~sessionkeeper.Session`. Raises ``SessionError`` if :class:`SessionMiddleware`
    did not run for this request (not installed, or installed inside the route).
    """
    scope = request if isinstance(request, MutableMapping) else request.scope
    session = scope.get("session")
    if not isinstance(session, Session):
        found = "nothing" if session is None else f"a {type(session).__name__}"
        raise SessionError(
            f"no sessionkeeper session on this request (scope['session'] is {found}); add "
            "sessionkeeper.asgi.SessionMiddleware to the app's middleware (and remove "
            "Starlette's own SessionMiddleware, which would replace it)"
        )
    return session
