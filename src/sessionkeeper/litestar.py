"""Litestar glue: ``middleware=[session_middleware(store=..., **options)]``.

Litestar's ``request.session`` is ``scope["session"]``, so sessionkeeper's ASGI middleware
(:mod:`sessionkeeper.asgi`) already serves reads and writes through it. What it does not see
is Litestar's two ways of *replacing* the session: ``request.set_session(value)`` puts a new
object in the scope, and ``request.clear_session()`` puts ``Empty`` there; the ASGI middleware
saves the session object it created, so both would be lost without a word. This module's
middleware carries them over when the response starts: ``set_session(mapping)`` replaces the
data (as ``clear()`` then ``update()``: only keys this request saw are removed) and
``clear_session()`` destroys the session (deleted on the server, cookie cleared). As
``set_session`` is how Litestar apps sign users in, replacing the data of a stored session also
gives it a new ID (the old one dies at once, as with :meth:`Session.login`) and a new CSRF
token: a pre-login token cannot become the signed-in session (session fixation).

Use :func:`session_middleware` (not the class directly): Litestar builds one middleware per
route, and this opens the store and checks the options once for all of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from litestar.middleware import DefineMiddleware
from litestar.types import Empty

from ._adapter import resolve_config, resolve_store
from .asgi import ASGIApp, Message, Receive, Scope, Send
from .asgi import SessionMiddleware as _ASGISessionMiddleware
from .core.config import SessionConfig
from .core.session import Session
from .errors import SessionError
from .stores.base import Store

__all__ = ["SessionMiddleware", "session_middleware"]


def _as_mapping(value: object) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)  # pydantic models, as Litestar's own middleware
    if callable(dump):
        dumped = dump(mode="json")
        if isinstance(dumped, Mapping):
            return dumped
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise SessionError(
        f"request.set_session() got a {type(value).__name__}; pass a dict (or a pydantic "
        "model or dataclass instance)"
    )


def reconcile(scope: Scope, session: Session) -> None:
    """Carry ``set_session()`` / ``clear_session()`` over into ``session``."""
    current = scope.get("session", Empty)
    if current is session:
        return
    if current is Empty or current is None:
        session.destroy()
    else:
        data = _as_mapping(current)
        # Litestar's documented sign-in is ``set_session({"user_id": ...})``: replacing a stored
        # session's data is treated as a privilege change, so the session gets a new ID (and CSRF
        # token), as with login(). Keeping the ID would let a pre-login token, planted or copied
        # by an attacker, read the signed-in session (session fixation, ASVS V7.2.4).
        # ``clear()`` of a signed-in session already destroyed it: the data goes into a new one.
        rotate = session.record is not None and not session.destroyed
        session.clear()
        session.update(data)
        if rotate and not session.destroyed:
            session.regenerate()
    scope["session"] = session


class _Reconciler:
    """Sits between the ASGI session middleware and the Litestar route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session = scope.get("session")
        if not isinstance(session, Session) or scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_reconciled(message: Message) -> None:
            if message["type"] == "http.response.start":
                reconcile(scope, session)
            await send(message)

        await self.app(scope, receive, send_reconciled)


class SessionMiddleware(_ASGISessionMiddleware):
    """sessionkeeper's ASGI middleware that also honours Litestar's ``set_session`` and
    ``clear_session``. Prefer :func:`session_middleware` in ``Litestar(middleware=[...])``."""

    def __init__(
        self, app: ASGIApp, store: Store | str, config: SessionConfig | None = None, **options: Any
    ) -> None:
        super().__init__(_Reconciler(app), store=store, config=config, **options)


def session_middleware(
    store: Store | str, config: SessionConfig | None = None, **options: Any
) -> DefineMiddleware:
    """``Litestar(middleware=[session_middleware(store="sqlite:///sessions.db")])``.

    ``store`` is a :class:`~sessionkeeper.Store` or a store URL (opened here, once);
    ``options`` are the fields of :class:`~sessionkeeper.SessionConfig`.
    """
    cfg = SessionConfig.from_options(resolve_config(config, "session_middleware"), **options)
    # Litestar types its ASGI callables with its own scope/event types; this is a plain ASGI app.
    return DefineMiddleware(
        SessionMiddleware,  # type: ignore[arg-type]
        store=resolve_store(store, "session_middleware"),
        config=cfg,
    )
