"""Flask glue: ``init_app(app, store=..., **options)`` makes ``flask.session`` server-side.

No ``SECRET_KEY`` is needed: the cookie carries only a random token. The session is fetched
lazily, so a view that never touches ``flask.session`` makes no store call.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface as _FlaskSessionInterface
from flask.sessions import SessionMixin

from .core.config import SessionConfig
from .core.flow import SessionFlow
from .core.records import Record
from .core.session import Session
from .drivers import run_sync
from .errors import StoreUnavailable
from .stores.base import Store

__all__ = ["FlaskSession", "SessionInterface", "init_app"]

_UNAVAILABLE_BODY = "Session store unavailable; try again shortly.\n"
_UNAVAILABLE_HEADERS = {
    "Retry-After": "1",
    "Cache-Control": "no-store",
    "Content-Type": "text/plain; charset=utf-8",
}


class FlaskSession(Session, SessionMixin):
    """:class:`~sessionkeeper.Session` that Flask accepts as ``flask.session``."""

    token: str | None = None
    _permanent = False

    # Flask's mixin keeps ``permanent`` as a "_permanent" key in the data, which would turn
    # every ``session.permanent = True`` into a stored session. Here it is a plain attribute:
    # expiry is enforced on the server, and the cookie's own lifetime is the
    # ``cookie_max_age`` option.
    @property
    def permanent(self) -> bool:
        """Accepted for Flask compatibility; it changes neither the data nor the cookie."""
        return self._permanent

    @permanent.setter
    def permanent(self, value: bool) -> None:
        self._permanent = bool(value)

    @property
    def new(self) -> bool:  # type: ignore[override]  # the mixin's plain False attribute
        """True if this session is not (yet) in the store (Flask's mixin always says False)."""
        return self.is_new


class SessionInterface(_FlaskSessionInterface):
    """Flask session interface backed by a sessionkeeper store."""

    def __init__(self, store: Store, config: SessionConfig) -> None:
        self.store = store
        self.config = config
        self.flow = SessionFlow(config)

    def open_session(self, app: Flask, request: Request) -> FlaskSession:
        flow = self.flow
        token = flow.token(request.headers.get("Cookie"))
        if token is None:
            session = flow.session(cls=FlaskSession)
        else:
            store = self.store

            def load() -> Record | None:
                return flow.check(store.execute(flow.load_op(token)))

            session = flow.session(loader=load, cls=FlaskSession)
        session.token = token
        return session

    def is_null_session(self, obj: object) -> bool:
        return False

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, FlaskSession):
            return
        try:
            headers = run_sync(self.flow.commit(session.token, session, response.status_code), self.store)
        except StoreUnavailable:
            # Raised here, Flask would answer a plain 500; turn this response into the 503
            # the error handler gives for failures inside the view.
            _make_unavailable(response, self.config.unavailable_status)
            return
        for name, value in headers:
            if name == "Vary":
                response.vary.add(value)
            else:
                response.headers.add(name, value)


def _make_unavailable(response: Response, status: int) -> None:
    old = response.response
    close = getattr(old, "close", None)
    if close is not None:
        close()
    response.status_code = status
    response.set_data(_UNAVAILABLE_BODY)
    for name, value in _UNAVAILABLE_HEADERS.items():
        response.headers[name] = value


def init_app(
    app: Flask, store: Store, config: SessionConfig | None = None, **options: Any
) -> SessionInterface:
    """Make ``flask.session`` a server-side session kept in ``store``.

    ``options`` are the fields of :class:`~sessionkeeper.SessionConfig`. Returns the installed
    session interface.
    """
    cfg = SessionConfig.from_options(config, **options)
    interface = SessionInterface(store, cfg)
    app.session_interface = interface

    def unavailable(exc: StoreUnavailable) -> tuple[str, int, dict[str, str]]:
        return (_UNAVAILABLE_BODY, cfg.unavailable_status, dict(_UNAVAILABLE_HEADERS))

    app.register_error_handler(StoreUnavailable, unavailable)
    app.extensions["sessionkeeper"] = interface
    return interface
