"""FastAPI glue: the session as a dependency, loaded on first use without blocking the loop.

With ``app.add_middleware(SessionMiddleware, store=..., deferred=True)`` the middleware puts the
session in the scope unloaded, and a route that declares it gets it loaded through the store's
async face::

    from sessionkeeper.fastapi import SessionDep

    @app.get("/cart")
    async def cart(session: SessionDep):
        return {"cart": session.get("cart", [])}

Store round trips per request: none for a route that does not declare the session (cookie or
not), one for a route that reads it, two for one that also writes (the save after the
response starts, async as always). Websocket routes declare it the same way (read-only, as for
every ASGI websocket). Without ``deferred=True`` the dependency works as well and returns the
session the middleware loaded eagerly.

Using ``request.session`` in deferred mode before any dependency loaded it raises
``SessionError`` saying to declare the dependency: a silent fallback would block the event
loop on the store's sync face, the one thing this mode exists to avoid.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.exceptions import WebSocketException
from starlette.requests import HTTPConnection

from ._deferred import load_session
from .core.session import Session
from .errors import StoreUnavailable

__all__ = ["SessionDep", "get_session_async"]

#: "Try again later": the close code the middleware uses for a websocket it cannot serve
#: because the store is down (an HTTP request gets the configured 503 instead).
_TRY_AGAIN_LATER = 1013


async def get_session_async(connection: HTTPConnection) -> Session:
    """FastAPI dependency: the request's (or websocket's) session, loaded without blocking.

    ``session: Session = Depends(get_session_async)``, or the shorter ``session: SessionDep``.
    FastAPI calls it once per request however many dependencies ask for it. In an HTTP route
    a store outage during the load becomes the middleware's 503 (``unavailable_status``); in
    a websocket route it closes the handshake with code 1013 ("try again later").
    """
    try:
        return await load_session(connection)
    except StoreUnavailable:
        if connection.scope.get("type") == "websocket":
            raise WebSocketException(_TRY_AGAIN_LATER, "session store unavailable") from None
        raise


#: ``Annotated[Session, Depends(get_session_async)]``: declare ``session: SessionDep`` in a
#: route, a dependency or a websocket endpoint.
SessionDep = Annotated[Session, Depends(get_session_async)]
