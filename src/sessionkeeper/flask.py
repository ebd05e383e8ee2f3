"""Flask glue: ``init_app(app, store=..., **options)`` makes ``flask.session`` server-side.

No ``SECRET_KEY`` is needed: the cookie carries only a random token. The session is fetched
lazily, so a view that never touches ``flask.session`` makes no store call.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, Response
from flask import session as flask_session
from flask.sessions import SessionInterface as _FlaskSessionInterface
from flask.sessions import SessionMixin

from .core.config import SessionConfig
from .core.flow import RequestState, SessionFlow
from .core.session import Session
from .dispatch import emit_sync
from .drivers import run_sync
from .errors import StoreUnavailable
from .responses import CSRF_REFUSED
from .stores.base import Store
from .wsgi import request_info

__all__ = ["FlaskSession", "SessionInterface", "init_app"]

_UNAVAILABLE_BODY = "Session store unavailable; try again shortly.\n"
_UNAVAILABLE_HEADERS = {
    "Retry-After": "1",
    "Cache-Control": "no-store",
    "Content-Type": "text/plain; charset=utf-8",
}


class FlaskSession(Session, SessionMixin):
    """:class:`~sessionkeeper.Session` that Flask accepts as ``flask.session``."""

    state: RequestState | None = None
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
        state = self.flow.begin(request_info(request.environ, self.config.header_name))
        store = self.store
        session = self.flow.open(state, run=lambda flow: run_sync(flow, store), cls=FlaskSession)
        session.state = state
        return session

    def is_null_session(self, obj: object) -> bool:
        return False

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, FlaskSession) or session.state is None:
            return
        state = session.state
        try:
            headers = run_sync(self.flow.commit(state, session, response.status_code), self.store)
        except StoreUnavailable:
            # Raised here, Flask would answer a plain 500; turn this response into the 503
            # the error handler gives for failures inside the view.
            _make_unavailable(response, self.config.unavailable_status)
            return
        finally:
            if state.events:
                emit_sync(self.config.on_event, state.take_events())
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

    def refuse_cross_site() -> tuple[bytes, int, dict[str, str]] | None:
        session = flask_session._get_current_object()  # type: ignore[attr-defined]
        if isinstance(session, FlaskSession) and session.state is not None and session.state.csrf_failed:
            headers = {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}
            return (CSRF_REFUSED, 403, headers)
        return None

    if cfg.csrf:
        # First in line: no before_request hook of the app runs for a refused request either.
        app.before_request_funcs.setdefault(None, []).insert(0, refuse_cross_site)
    app.extensions["sessionkeeper"] = interface
    return interface
