"""Quart glue: ``init_app(app, store=..., **options)`` makes ``quart.session`` server-side, as
:mod:`sessionkeeper.flask` does for Flask, through the store's async face.

Quart opens and saves the session in its own async hooks, so the store is awaited there (native
async I/O on Redis and PostgreSQL, no thread per call). A Quart view reads ``session`` without
``await``, so the session cannot be fetched on first access: it is loaded when the request
*carries a well-formed session cookie* (a request without one costs no store call), and a
loaded session the view never uses is neither written nor touched. This is the ASGI
middleware's default (:mod:`sessionkeeper.asgi`).

Websockets see the session read-only: a websocket has no response to carry a cookie.
"""

from __future__ import annotations

from typing import Any, cast

from quart import Quart, Response
from quart import session as quart_session
from quart.sessions import SessionInterface as _QuartSessionInterface
from quart.sessions import SessionMixin
from quart.wrappers import BaseRequestWebsocket
from werkzeug.local import LocalProxy
from werkzeug.wrappers import Response as WerkzeugResponse

from ._adapter import own_answer_headers, resolve_config, resolve_store
from .asgi import request_info
from .core.config import SessionConfig
from .core.flow import RequestState, SessionFlow
from .core.records import Record
from .core.session import Session
from .dispatch import emit_async
from .drivers import run_async
from .errors import SessionError, StoreUnavailable
from .responses import CSRF_REFUSED, UNAVAILABLE
from .stores.base import Store

__all__ = ["QuartSession", "SessionInterface", "init_app", "session"]


class QuartSession(Session, SessionMixin):
    """:class:`~sessionkeeper.Session` that Quart accepts as ``quart.session``.

    ``session.permanent = True`` is "remember me" (:meth:`~sessionkeeper.Session.remember`).
    """

    state: RequestState | None = None
    unavailable = False  # the store could not be reached when the request began

    @property
    def new(self) -> bool:  # type: ignore[override]  # the mixin's plain False attribute
        """True if this session is not (yet) in the store (the mixin always says False)."""
        return self.is_new


class SessionInterface(_QuartSessionInterface):
    """Quart session interface backed by a sessionkeeper store (its async face)."""

    def __init__(self, store: Store | str, config: SessionConfig) -> None:
        self.store = resolve_store(store, "SessionInterface")
        self.config = config
        self.flow = SessionFlow(config)

    async def open_session(self, app: Quart, request: BaseRequestWebsocket) -> QuartSession:
        flow = self.flow
        state = flow.begin(request_info(cast("dict[str, Any]", request.scope), self.config.header_name))
        record: Record | None = None
        unavailable = False
        if state.token is not None and not state.csrf_failed:
            try:
                record = await run_async(flow.load(state), self.store)
            except StoreUnavailable:
                unavailable = True  # answered with the 503 before any view runs
        session = flow.open(state, record, cls=QuartSession)
        session.state = state
        session.unavailable = unavailable
        return session

    def is_null_session(self, obj: object) -> bool:
        return False

    async def save_session(
        self, app: Quart, session: SessionMixin, response: Response | WerkzeugResponse | None
    ) -> None:
        if response is None or not isinstance(session, QuartSession) or session.state is None:
            return  # a websocket: no response to carry a cookie
        state = session.state
        if session.unavailable:
            return
        try:
            headers = await run_async(self.flow.commit(state, session, response.status_code), self.store)
        except StoreUnavailable:
            _make_unavailable(response, self.config)
            return
        finally:
            if state.events:
                await emit_async(self.config.on_event, state.take_events())
        for name, value in headers:
            if name == "Vary":
                response.vary.add(value)
            elif name == "Referrer-Policy":
                response.headers[name] = value
            else:
                response.headers.add(name, value)


def _unavailable_headers(config: SessionConfig) -> dict[str, str]:
    return {"Retry-After": "1", "Cache-Control": "no-store", "Content-Type": "text/plain; charset=utf-8",
            **dict(own_answer_headers(config))}


def _make_unavailable(response: Response | WerkzeugResponse, config: SessionConfig) -> None:
    response.status_code = config.unavailable_status
    response.set_data(UNAVAILABLE)
    for name, value in _unavailable_headers(config).items():
        response.headers[name] = value


def init_app(
    app: Quart, store: Store | str, config: SessionConfig | None = None, **options: Any
) -> SessionInterface:
    """Make ``quart.session`` a server-side session kept in ``store``.

    ``store`` is a :class:`~sessionkeeper.Store` or a store URL; ``options`` are the fields of
    :class:`~sessionkeeper.SessionConfig` (Quart's ``SESSION_COOKIE_*`` keys are not read:
    pass ``secure=False`` and the like here). Returns the installed session interface.
    """
    cfg = SessionConfig.from_options(resolve_config(config, "init_app"), **options)
    interface = SessionInterface(resolve_store(store, "init_app"), cfg)
    app.session_interface = interface  # type: ignore[assignment]  # Quart types the default's class
    unavailable_headers = _unavailable_headers(cfg)
    own = dict(own_answer_headers(cfg))

    async def unavailable(exc: StoreUnavailable) -> tuple[bytes, int, dict[str, str]]:
        return (UNAVAILABLE, cfg.unavailable_status, unavailable_headers)

    app.register_error_handler(StoreUnavailable, unavailable)

    async def refuse() -> tuple[bytes, int, dict[str, str]] | None:
        current = quart_session._get_current_object()  # type: ignore[attr-defined]
        if not isinstance(current, QuartSession):
            return None
        if current.unavailable:
            return (UNAVAILABLE, cfg.unavailable_status, unavailable_headers)
        if current.state is not None and current.state.csrf_failed:
            headers = {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store", **own}
            return (CSRF_REFUSED, 403, headers)
        return None

    # First in line: no before_request hook of the app runs for a refused request either.
    app.before_request_funcs.setdefault(None, []).insert(0, refuse)
    app.extensions["sessionkeeper"] = interface
    return interface


def _current_session() -> QuartSession:
    current = quart_session._get_current_object()  # type: ignore[attr-defined]
    if not isinstance(current, QuartSession):
        raise SessionError(
            "quart.session is not a sessionkeeper session in this app: call "
            "sessionkeeper.quart.init_app(app, store=...) when creating the app"
        )
    return current


#: ``quart.session`` typed as :class:`QuartSession` (``session.login(...)`` type-checks). The
#: same object: use it only inside a request of an app set up with :func:`init_app`.
session: QuartSession = cast(QuartSession, LocalProxy(_current_session))
