"""Flask-Login on sessionkeeper: ``init_app(app, login_manager)``, after
``sessionkeeper.flask.init_app(app, store=...)`` and ``LoginManager(app)``.

Flask-Login keeps its ``_user_id`` in ``flask.session``, which sessionkeeper already stores
server-side; what it does not know is the session's ID, its user binding or its lifetime. This
module connects to Flask-Login's signals (for this app only) so that its calls mean what
sessionkeeper's do:

- ``login_user(user)`` -> :meth:`Session.login` with ``user.get_id()`` (Flask-Login's
  ``id_attribute``): a new session ID (the pre-login one is dead), the user bound server-side,
  so :meth:`SessionManager.devices` lists the session and ``revoke_all`` ends it. Flask-Login's
  own keys are kept across the rotation (also when another user was signed in, whose session
  data is dropped).
- ``login_user(user, remember=True[, duration=...])`` -> :meth:`Session.remember`: the session
  cookie gets ``Max-Age`` and the ``remember_*`` limits (``duration``, or
  ``REMEMBER_COOKIE_DURATION`` if the app sets it, becomes the absolute limit, and the idle limit
  at most that). ``remember=False`` turns a remembered session back into a browser-session one.
- ``logout_user()`` -> :meth:`Session.logout`: the session is deleted on the server.
- ``confirm_login()`` (re-authentication) -> :meth:`Session.reauthenticate`.
- ``SESSION_PROTECTION = "strong"`` dropping the sign-in (another client identifier) ->
  :meth:`Session.logout` (the server session would otherwise stay bound to the user). Also
  for a remembered session, which Flask-Login itself would only mark not fresh ("strong"
  acts as "basic" on permanent sessions there): a stolen "remember me" cookie replayed from
  another client is signed out too.

Flask-Login's ``remember_token`` cookie is **never set and never honoured**. It holds the user
id signed with ``SECRET_KEY``, the same value for every login of that user, and no server state
backs it: a copy keeps working after logout, after ``revoke_all``, for a year, and revoking
sessions cannot reach it. "Remember me" is the persistent server session instead, which dies
with revocation. Concretely, each time Flask-Login is about to load the user (its
``user_accessed`` signal, before it reads the cookie) a ``remember_token`` the browser still
sends (from before this integration, or set by other code) is marked ``"clear"`` in the
session, which makes Flask-Login skip it and delete it from the browser.
``REMEMBER_COOKIE_REFRESH_EACH_REQUEST`` would keep re-issuing the cookie, so it is refused.

Freshness (``fresh_login_required``): Flask-Login calls a login "fresh" until the user comes
back through the remember cookie. A remembered session is restored without that cookie, so
here it stays fresh for ``fresh_for`` seconds after the last authentication (default: the
``absolute_timeout``, as long as a session without "remember me" could have lived) and then
is marked not fresh; ``confirm_login()`` makes it fresh again (and re-authenticates it).

A ``_user_id`` the session holds without a server-side binding (written by Flask-Login's
``FlaskLoginClient`` in tests, or by sessions from before this integration) is bound when
Flask-Login first loads the user from it, so devices and revocation see every signed-in
session.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask, request

# Flask-Login ships no type information (no py.typed): its names are Any to mypy.
from flask_login import LoginManager  # type: ignore[import-untyped]
from flask_login.config import COOKIE_NAME, SESSION_KEYS  # type: ignore[import-untyped]
from flask_login.signals import (  # type: ignore[import-untyped]
    session_protected,
    user_accessed,
    user_logged_in,
    user_logged_out,
    user_login_confirmed,
)

from .core.clock import seconds
from .core.config import SessionConfig
from .errors import ConfigError
from .flask import FlaskSession, SessionInterface, _current_session

__all__ = ["init_app"]

#: Flask-Login's keys that carry the sign-in itself (kept across an ID rotation)
_LOGIN_KEYS = ("_user_id", "_fresh", "_id")
_EXTENSION = "sessionkeeper.flask_login"


def init_app(app: Flask, login_manager: LoginManager, *, fresh_for: float | timedelta | None = None) -> None:
    """Make Flask-Login's ``login_user`` / ``logout_user`` / "remember me" sessionkeeper's
    login, logout and persistent session for ``app`` (see the module docstring).

    Call it after ``sessionkeeper.flask.init_app(app, ...)`` and after ``login_manager`` was
    set up for ``app`` (``LoginManager(app)`` or ``login_manager.init_app(app)``).
    ``fresh_for``: how long (seconds or ``timedelta``) a *remembered* session counts as a
    fresh login after its last authentication; default the ``absolute_timeout`` option.
    """
    interface = app.extensions.get("sessionkeeper")
    if not isinstance(interface, SessionInterface):
        raise ConfigError(
            "sessionkeeper.flask_login.init_app needs sessionkeeper's Flask session: call "
            "sessionkeeper.flask.init_app(app, store=...) first"
        )
    if getattr(app, "login_manager", None) is not login_manager:
        raise ConfigError(
            "sessionkeeper.flask_login.init_app: this LoginManager is not set up for this app; "
            "create it with LoginManager(app) or call login_manager.init_app(app) first"
        )
    if app.config.get("REMEMBER_COOKIE_REFRESH_EACH_REQUEST"):
        raise ConfigError(
            "REMEMBER_COOKIE_REFRESH_EACH_REQUEST re-issues Flask-Login's remember_token cookie, "
            "which sessionkeeper.flask_login replaces by the persistent server session (a cookie "
            "that revocation can end): remove the setting"
        )
    if app.extensions.get(_EXTENSION):
        return  # once per app: the signals are already connected
    config = interface.config
    fresh = config.timeouts.absolute if fresh_for is None else seconds(fresh_for, "fresh_for")

    def logged_in(sender: Flask, user: Any = None, **extra: Any) -> None:
        session = _current()
        remember = session.pop("_remember", None) == "set"
        duration = session.pop("_remember_seconds", None)
        uid = session.get("_user_id")
        if uid is None:  # login_user always writes it; nothing to bind otherwise
            return
        _bind(session, uid)
        if remember:
            session.remember(*_remember_limits(app, config, duration))
        elif session.persistent:
            session.forget()  # "remember me" unticked this time: a browser-session cookie
        _drop_remember_cookie(app, session)

    def logged_out(sender: Flask, user: Any = None, **extra: Any) -> None:
        session = _current()
        session.logout()
        _drop_remember_cookie(app, session)

    def confirmed(sender: Flask, **extra: Any) -> None:
        session = _current()
        if session.user_id is not None:
            session.reauthenticate()

    def protected(sender: Flask, **extra: Any) -> None:
        # SESSION_PROTECTION = "strong" saw another client identifier and removed Flask-Login's
        # keys: the sign-in is over for this (shared, server-side) session, so end it on the
        # server too, rather than leave a session bound to a user nobody is signed in as.
        session = _current()
        mode = app.config.get("SESSION_PROTECTION", getattr(login_manager, "session_protection", None))
        if mode == "strong" and session.persistent:
            # Flask-Login downgrades "strong" to "basic" for a permanent session (it only marks
            # it not fresh and keeps the user), and "remember me" is a permanent session here:
            # the long-lived sessions, the ones most worth stealing, would lose the protection
            # the app asked for. Do what "strong" does: drop the sign-in keys (Flask-Login then
            # finds no ``_user_id`` and loads nobody) and end the session below.
            for key in SESSION_KEYS:
                session.pop(key, None)
        if "_user_id" not in session and session.user_id is not None:
            session.logout()
            _drop_remember_cookie(app, session)

    def accessed(sender: Flask, **extra: Any) -> None:
        # Flask-Login is about to read the session (and, failing that, its remember cookie).
        session = _current()
        _drop_remember_cookie(app, session)
        uid = session.get("_user_id")
        if uid is not None and session.user_id != str(uid):
            _bind(session, uid)
        if (session.get("_fresh") is True and session.persistent
                and not session.recently_authenticated(fresh)):
            session["_fresh"] = False

    # weak=False: the receivers are closures that nothing else holds; sender=app: other apps
    # in the process keep their own behaviour.
    user_logged_in.connect(logged_in, app, weak=False)
    user_logged_out.connect(logged_out, app, weak=False)
    user_login_confirmed.connect(confirmed, app, weak=False)
    user_accessed.connect(accessed, app, weak=False)
    session_protected.connect(protected, app, weak=False)
    app.extensions[_EXTENSION] = (logged_in, logged_out, confirmed, accessed, protected)


def _current() -> FlaskSession:
    return _current_session()


def _bind(session: FlaskSession, uid: object) -> None:
    """``session.login(uid)``, keeping Flask-Login's own keys (a login as another user than
    the one signed in starts from an empty session)."""
    kept = {k: session[k] for k in _LOGIN_KEYS if k in session}
    session.login(str(uid))
    for key, value in kept.items():
        session[key] = value


def _remember_limits(
    app: Flask, config: SessionConfig, duration: object
) -> tuple[float | None, float | None]:
    """(idle, absolute) for ``remember()``: ``login_user(duration=...)``, else the app's
    ``REMEMBER_COOKIE_DURATION``, else the ``remember_*`` options (``None``, ``None``)."""
    if duration is None:
        duration = app.config.get("REMEMBER_COOKIE_DURATION")
    if duration is None:
        return None, None
    if isinstance(duration, bool) or not isinstance(duration, int | float | timedelta):
        raise ConfigError(
            f"REMEMBER_COOKIE_DURATION must be a timedelta or a number of seconds, not {duration!r}"
        )
    absolute = seconds(duration, "remember duration")
    return min(config.remember_timeouts.idle, absolute), absolute


def _drop_remember_cookie(app: Flask, session: FlaskSession) -> None:
    """If the browser sent Flask-Login's remember cookie, have Flask-Login ignore it and
    delete it (its ``"clear"`` instruction, read before the cookie and in its after-request)."""
    name = app.config.get("REMEMBER_COOKIE_NAME", COOKIE_NAME)
    if name in request.cookies and session.get("_remember") != "clear":
        session["_remember"] = "clear"
