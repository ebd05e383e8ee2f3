"""Flask glue: ``init_app(app, store=..., **options)`` makes ``flask.session`` server-side.

No ``SECRET_KEY`` is needed: the cookie carries only a random token. The session is fetched
lazily, so a view that never touches ``flask.session`` makes no store call.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, cast

from flask import Flask, Request, Response
from flask import session as flask_session
from flask.sessions import SessionInterface as _FlaskSessionInterface
from flask.sessions import SessionMixin
from werkzeug.local import LocalProxy

from ._adapter import commit, expiry_answer, own_answer_headers, resolve_config, resolve_store
from .core.config import SessionConfig
from .core.flow import RequestState, SessionFlow
from .core.session import Session
from .dispatch import emit_sync
from .drivers import run_sync
from .errors import ConfigError, SessionError, StoreUnavailable
from .responses import CSRF_REFUSED
from .stores.base import Store
from .wsgi import request_info

__all__ = ["FlaskSession", "SessionInterface", "flask_session_options", "init_app", "session"]

_UNAVAILABLE_BODY = "Session store unavailable; try again shortly.\n"
_UNAVAILABLE_HEADERS = {
    "Retry-After": "1",
    "Cache-Control": "no-store",
    "Content-Type": "text/plain; charset=utf-8",
}


class FlaskSession(Session, SessionMixin):
    """:class:`~sessionkeeper.Session` that Flask accepts as ``flask.session``."""

    state: RequestState | None = None

    # ``permanent`` is Session's (listed first, so it wins over the mixin's, which would keep a
    # "_permanent" key in the data): ``session.permanent = True`` is ``remember()`` ("remember
    # me": a cookie with Max-Age and the remember_* limits, PERMANENT_SESSION_LIFETIME if the
    # app set it), ``False`` is ``forget()``.
    permanent = Session.permanent

    @property
    def new(self) -> bool:  # type: ignore[override]  # the mixin's plain False attribute
        """True if this session is not (yet) in the store (Flask's mixin always says False)."""
        return self.is_new


class SessionInterface(_FlaskSessionInterface):
    """Flask session interface backed by a sessionkeeper store."""

    def __init__(self, store: Store | str, config: SessionConfig) -> None:
        self.store = resolve_store(store, "SessionInterface")
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
            headers = run_sync(commit(self.flow, state, session, response.status_code), self.store)
        except StoreUnavailable:
            # Raised here, Flask would answer a plain 500; turn this response into the 503
            # the error handler gives for failures inside the view.
            _make_unavailable(response, self.config.unavailable_status, own_answer_headers(self.config))
            return
        finally:
            if state.events:
                emit_sync(self.config.on_event, state.take_events())
        for name, value in headers:
            if name == "Vary":
                response.vary.add(value)
            elif name == "Referrer-Policy":
                # set, not added: the middleware's own 403/503 answers already carry it
                response.headers[name] = value
            else:
                response.headers.add(name, value)


def _make_unavailable(response: Response, status: int, own: list[tuple[str, str]]) -> None:
    old = response.response
    close = getattr(old, "close", None)
    if close is not None:
        close()
    response.status_code = status
    response.set_data(_UNAVAILABLE_BODY)
    for name, value in [*_UNAVAILABLE_HEADERS.items(), *own]:
        response.headers[name] = value


# Flask's session keys -> sessionkeeper options. Only keys the app changed from Flask's own
# defaults are used: Flask puts every key in ``app.config`` (SESSION_COOKIE_SECURE=False among
# them), and taking those would quietly undo sessionkeeper's secure defaults.
_FLASK_KEYS = {
    "SESSION_COOKIE_NAME": "cookie_name",
    "SESSION_COOKIE_SECURE": "secure",
    "SESSION_COOKIE_SAMESITE": "same_site",
    "SESSION_COOKIE_HTTPONLY": "http_only",
    "SESSION_COOKIE_PATH": "cookie_path",
    "SESSION_COOKIE_DOMAIN": "cookie_domain",
}


def _lifetime(value: object) -> float | None:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _options_from_flask_config(app: Flask, explicit: dict[str, Any]) -> dict[str, Any]:
    """The sessionkeeper options that ``app.config`` asks for, under the ``explicit`` ones.

    Each ``SESSION_COOKIE_*`` key and ``PERMANENT_SESSION_LIFETIME`` counts only if the app
    changed it from :attr:`flask.Flask.default_config`; explicit options always win.
    """
    defaults = Flask.default_config
    found: dict[str, Any] = {}
    for key, option in _FLASK_KEYS.items():
        value = app.config.get(key, defaults.get(key))
        if option in explicit or value == defaults.get(key):
            continue
        if option == "same_site" and isinstance(value, str):
            value = value.lower()  # Flask writes "Lax"; any case is accepted
        found[option] = value
    root = app.config.get("APPLICATION_ROOT", defaults["APPLICATION_ROOT"])
    if ("cookie_path" not in explicit and "cookie_path" not in found and isinstance(root, str)
            and root != defaults["APPLICATION_ROOT"]):
        found["cookie_path"] = root  # Flask's cookie path: SESSION_COOKIE_PATH or APPLICATION_ROOT
    if app.config.get("SESSION_COOKIE_PARTITIONED"):
        raise ConfigError(
            "SESSION_COOKIE_PARTITIONED = True is not supported: sessionkeeper's cookie has no "
            "Partitioned attribute; remove the key (or send the session in a header, "
            "transport='header', from a third-party iframe)"
        )
    raw = app.config.get("PERMANENT_SESSION_LIFETIME", defaults["PERMANENT_SESSION_LIFETIME"])
    lifetime = _lifetime(raw)
    if lifetime is None:
        raise ConfigError(
            f"PERMANENT_SESSION_LIFETIME must be a timedelta or a number of seconds, not {raw!r}"
        )
    if lifetime != _lifetime(defaults["PERMANENT_SESSION_LIFETIME"]):
        # A permanent Flask session lives this long: the remembered session's absolute limit
        # (and so the cookie's Max-Age); its idle limit is the usual one, but never longer.
        absolute = _lifetime(explicit.get("remember_absolute_timeout", lifetime)) or lifetime
        if "remember_absolute_timeout" not in explicit:
            found["remember_absolute_timeout"] = lifetime
        if "remember_idle_timeout" not in explicit:
            usual = _lifetime(SessionConfig.remember_idle_timeout) or absolute
            found["remember_idle_timeout"] = min(usual, absolute)
    return found


# Flask-Session's keys (a one-line migration from ``flask_session.Session(app)``). Keys whose
# purpose sessionkeeper already serves are accepted and not used; the rest is refused with
# what to use instead.
_FS_UNUSED = {
    "SESSION_USE_SIGNER": "nothing is signed: the cookie holds a random 256-bit token",
    "SESSION_ID_LENGTH": "session IDs are 256-bit random tokens",
    "SESSION_SERIALIZATION_FORMAT": "values are stored as JSON (with tagged extra types)",
    "SESSION_CLEANUP_N_REQUESTS": "sessions expire in the store; `sessionkeeper purge` sweeps files, SQL",
    "SESSION_FILE_THRESHOLD": "the file store keeps one file per session and purges expired ones",
    "SESSION_FILE_MODE": "the file store writes its files 0600",
}
_FS_TYPES_REFUSED = {
    "sqlalchemy": "pass store='postgresql://user@host/db' or 'sqlite:///path.db' (the database your "
                  "engine uses; sessionkeeper keeps its own table)",
    "cachelib": "set SESSION_TYPE = 'filesystem' with SESSION_FILE_DIR, or pass store='file:///dir'",
    "memcached": "sessionkeeper has no memcached store (memcached may evict a live session); "
                 "pass store='redis://host:6379/0' or another store URL",
    "mongodb": "sessionkeeper has no MongoDB store; pass store='postgresql://…', 'redis://…' or "
               "'sqlite:///path.db'",
    "dynamodb": "sessionkeeper has no DynamoDB store; pass store='redis://…' or 'postgresql://…'",
}


def flask_session_options(app: Flask, *, store: bool = True) -> tuple[Store | str | None, dict[str, Any]]:
    """The store and options Flask-Session's keys in ``app.config`` ask for (with
    ``store=False``, only the options: an explicit store makes ``SESSION_TYPE`` moot).

    ``SESSION_TYPE``: ``"redis"`` (the client in ``SESSION_REDIS``, default
    ``redis://localhost:6379/0``; ``SESSION_KEY_PREFIX`` is the key prefix) and
    ``"filesystem"`` (``SESSION_FILE_DIR``, default ``./flask_session``) map;
    ``"sqlalchemy"``, ``"cachelib"``, ``"memcached"``, ``"mongodb"``, ``"dynamodb"`` are
    refused with what to pass instead. ``SESSION_PERMANENT = True``: every session lives
    ``PERMANENT_SESSION_LIFETIME`` since its last use, with a cookie of that ``Max-Age``
    (``idle_timeout``, ``cookie_max_age``; absolute limit at least 12 hours); ``False`` or
    absent: a browser-session cookie and sessionkeeper's limits (Flask-Session's default of
    ``True`` is not assumed: set it to keep 31-day sessions). ``SESSION_USE_SIGNER``,
    ``SESSION_ID_LENGTH``, ``SESSION_SERIALIZATION_FORMAT``, ``SESSION_CLEANUP_N_REQUESTS``,
    ``SESSION_FILE_THRESHOLD`` and ``SESSION_FILE_MODE`` are accepted and not used.
    """
    cfg = app.config
    options: dict[str, Any] = {}
    if cfg.get("SESSION_PERMANENT"):
        raw = cfg.get("PERMANENT_SESSION_LIFETIME", Flask.default_config["PERMANENT_SESSION_LIFETIME"])
        lifetime = _lifetime(raw)
        if lifetime is None or lifetime < 1:
            raise ConfigError(f"PERMANENT_SESSION_LIFETIME must be at least one second, not {raw!r}")
        options.update(cookie_max_age=int(lifetime), idle_timeout=lifetime,
                       absolute_timeout=max(lifetime, 12 * 3600.0))
    kind = cfg.get("SESSION_TYPE")
    if kind is None or not store:
        return None, options
    kind = str(kind).lower()
    if kind in _FS_TYPES_REFUSED:
        raise ConfigError(
            f"SESSION_TYPE = {kind!r} does not map to a sessionkeeper store: {_FS_TYPES_REFUSED[kind]}"
        )
    if kind == "filesystem":
        directory = cfg.get("SESSION_FILE_DIR") or os.path.join(os.getcwd(), "flask_session")
        return "file://" + os.path.abspath(str(directory)), options
    if kind == "redis":
        return _redis_from_client(cfg.get("SESSION_REDIS"), cfg.get("SESSION_KEY_PREFIX")), options
    raise ConfigError(
        f"SESSION_TYPE = {kind!r} is not a Flask-Session type sessionkeeper knows; use 'redis' or "
        "'filesystem', or pass store= (a store URL such as 'sqlite:///sessions.db')"
    )


def _redis_from_client(client: object, prefix: object) -> Store:
    """A sessionkeeper Redis store on the server a redis-py client (``SESSION_REDIS``) uses."""
    from redis import Redis
    from redis.connection import SSLConnection

    from .stores.redis import RedisStore

    if client is None:
        client = Redis()
    if not isinstance(client, Redis):
        raise ConfigError(
            f"SESSION_REDIS is a {type(client).__name__}, not a redis.Redis client; pass store= "
            "with its URL instead ('redis+cluster://host:port,…' for a cluster)"
        )
    pool = client.connection_pool
    kw = pool.connection_kwargs
    if "path" in kw:
        raise ConfigError("SESSION_REDIS connects through a unix socket; pass store='redis://host:port/db'")
    if prefix is not None and (not isinstance(prefix, str) or not prefix):
        raise ConfigError(f"SESSION_KEY_PREFIX must be a non-empty string, not {prefix!r}")
    return RedisStore(
        [(str(kw.get("host") or "localhost"), int(kw.get("port") or 6379))],
        db=int(kw.get("db") or 0),
        username=kw.get("username"),
        password=kw.get("password"),
        ssl=issubclass(pool.connection_class, SSLConnection),
        prefix="sk:" if prefix is None else prefix,
    )


def init_app(
    app: Flask, store: Store | str | None = None, config: SessionConfig | None = None, **options: Any
) -> SessionInterface:
    """Make ``flask.session`` a server-side session kept in ``store``.

    ``store`` is a :class:`~sessionkeeper.Store` or a store URL (``"sqlite:///sessions.db"``,
    opened with :func:`~sessionkeeper.open_store`). ``options`` are the fields of
    :class:`~sessionkeeper.SessionConfig`. Returns the installed session interface.

    Without ``store``, Flask-Session's keys in ``app.config`` choose it (a one-line migration
    from ``flask_session.Session(app)``): ``SESSION_TYPE = "redis"`` (``SESSION_REDIS``,
    ``SESSION_KEY_PREFIX``) or ``"filesystem"`` (``SESSION_FILE_DIR``); see
    :func:`flask_session_options` for every key, and the ones refused with what to use instead.

    Flask's own keys in ``app.config`` (read once, here) are defaults under ``options``:
    ``SESSION_COOKIE_NAME`` (``cookie_name``; still sent with the ``__Host-`` prefix while
    the cookie qualifies), ``SESSION_COOKIE_SECURE`` (``secure``),
    ``SESSION_COOKIE_SAMESITE`` (``same_site``, any case), ``SESSION_COOKIE_HTTPONLY``
    (``http_only``), ``SESSION_COOKIE_PATH`` (``cookie_path``), ``SESSION_COOKIE_DOMAIN``
    (``cookie_domain``) and ``PERMANENT_SESSION_LIFETIME`` (``remember_absolute_timeout``,
    and ``remember_idle_timeout`` at most that: how long a session with
    ``session.permanent = True`` lives); ``APPLICATION_ROOT`` is the cookie path when
    ``SESSION_COOKIE_PATH`` is not set, as in Flask; ``SESSION_COOKIE_PARTITIONED = True`` is
    refused (no ``Partitioned`` attribute). A key counts only when the app set it to something
    other than Flask's default, because Flask fills in every key: ``SESSION_COOKIE_SECURE``
    is ``False`` in every Flask app, and sessionkeeper keeps ``secure=True`` unless
    ``secure=False`` is passed here. An explicit option always wins over ``app.config``;
    a ``config=`` object is taken as it is, without ``app.config``.
    """
    fs_store, fs_options = flask_session_options(app, store=store is None)
    if store is None:
        if fs_store is None:
            raise ConfigError(
                "init_app: store= must be a Store (from open_store(...)) or a store URL string such "
                "as 'sqlite:///sessions.db', not NoneType; or set Flask-Session's SESSION_TYPE "
                "('redis', 'filesystem') in app.config"
            )
        store = fs_store
    if config is None:
        options = {**_options_from_flask_config(app, options), **fs_options, **options}
    cfg = SessionConfig.from_options(resolve_config(config, "init_app"), **options)
    interface = SessionInterface(resolve_store(store, "init_app"), cfg)
    app.session_interface = interface
    own = dict(own_answer_headers(cfg))

    def unavailable(exc: StoreUnavailable) -> tuple[str, int, dict[str, str]]:
        return (_UNAVAILABLE_BODY, cfg.unavailable_status, {**_UNAVAILABLE_HEADERS, **own})

    app.register_error_handler(StoreUnavailable, unavailable)

    def refuse_cross_site() -> tuple[bytes, int, dict[str, str]] | None:
        session = flask_session._get_current_object()  # type: ignore[attr-defined]
        if isinstance(session, FlaskSession) and session.state is not None and session.state.csrf_failed:
            headers = {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store", **own}
            return (CSRF_REFUSED, 403, headers)
        return None

    if cfg.csrf:
        # First in line: no before_request hook of the app runs for a refused request either.
        app.before_request_funcs.setdefault(None, []).insert(0, refuse_cross_site)
    if cfg.expiry_endpoints is not None:
        _route_expiry_endpoints(app, interface, cfg.expiry_endpoints)
    app.extensions["sessionkeeper"] = interface
    return interface


def _route_expiry_endpoints(app: Flask, interface: SessionInterface, prefix: str) -> None:
    """Answer ``<prefix>/status``, ``/extend``, ``/end``, ``/client.js`` and ``/client.css``
    (see :mod:`sessionkeeper.core.expiry`) before the app's own hooks and views run."""
    from flask import request

    from .core import expiry

    def answer() -> Response | None:
        endpoint = expiry.route(prefix, request.path)
        if endpoint is None:
            return None
        current = flask_session._get_current_object()  # type: ignore[attr-defined]
        if not isinstance(current, FlaskSession) or current.state is None:
            return None
        # A fresh state: the request's session object stays unloaded, so Flask's own save
        # after this answer writes nothing (the status endpoint must never count as activity).
        state = interface.flow.begin(current.state.info)
        try:
            status, headers, body = run_sync(
                expiry_answer(interface.flow, state, endpoint, request.headers.get("X-Requested-With")),
                interface.store)
        finally:
            if state.events:
                emit_sync(interface.config.on_event, state.take_events())
        response = Response(b"" if request.method == "HEAD" else body, status=status)
        response.headers.clear()
        for name, value in headers:
            response.headers.add(name, value)
        return response

    # after the CSRF hook (if any), before every hook of the app
    hooks = app.before_request_funcs.setdefault(None, [])
    hooks.insert(1 if hooks and hooks[0].__name__ == "refuse_cross_site" else 0, answer)


def _current_session() -> FlaskSession:
    current = flask_session._get_current_object()  # type: ignore[attr-defined]
    if not isinstance(current, FlaskSession):
        raise SessionError(
            "flask.session is not a sessionkeeper session in this app: call "
            "sessionkeeper.flask.init_app(app, store=...) when creating the app"
        )
    return current


#: ``flask.session`` typed as :class:`FlaskSession`, so that ``session.login(...)``,
#: ``session.user_id`` and the rest type-check (Flask types its ``session`` as
#: ``SessionMixin``). It is the same object: use it only inside a request of an app set up
#: with :func:`init_app` (outside one, it raises as ``flask.session`` does).
session: FlaskSession = cast(FlaskSession, LocalProxy(_current_session))
