"""Starlette's ``SessionMiddleware`` signature on sessionkeeper: a one-line migration.

Replace ``from starlette.middleware.sessions import SessionMiddleware`` with
``from sessionkeeper.starlette import SessionMiddleware``; the arguments stay as they are::

    app.add_middleware(SessionMiddleware, secret_key=SECRET, https_only=True)
    app.add_middleware(SessionMiddleware, secret_key=SECRET, store="redis://localhost/0")

``request.session`` is then a server-side session (still a ``dict``: ``JSONResponse(
request.session)`` works); the cookie carries only a random token.

How Starlette's arguments map (any sessionkeeper option passed as well wins over them):

==================  ==========================================================================
``secret_key``      accepted and not used: there is nothing to sign (the cookie holds a random
                    256-bit token, the data stays on the server). Drop it when convenient.
``session_cookie``  ``cookie_name`` (sent as ``__Host-<name>`` when the cookie qualifies:
                    Secure, path ``/``, no domain).
``max_age``         seconds (default 14 days): the cookie's ``Max-Age`` (``cookie_max_age``)
                    and the server-side idle limit (``idle_timeout``): a session unused that
                    long is gone, as a Starlette cookie not re-signed that long is refused. The
                    absolute limit is ``max(max_age, 12 hours)`` unless given.
                    ``None``: a browser-session cookie and sessionkeeper's own limits (30 min
                    idle, 12 h absolute). ``0`` or less is refused (a session that expires at
                    once keeps nothing; pass ``None`` for a browser-session cookie).
``path``            ``cookie_path``
``same_site``       ``same_site``
``https_only``      ``secure`` (Starlette's default ``False`` gives ``secure=False``, as the
                    app had; pass ``https_only=True`` in production. sessionkeeper logs a
                    warning when a Secure cookie is set over plain HTTP).
``domain``          ``cookie_domain``
``partitioned``     ``False`` only: ``True`` is refused (no ``Partitioned`` cookie attribute
                    yet; a session for a third-party iframe can use the header transport).
``store``           (new) a :class:`~sessionkeeper.Store` or a store URL. Default: the SQLite
                    file ``sessionkeeper.sqlite3`` in the working directory (kept across
                    restarts and shared by the worker processes of one host, as the signed
                    cookie was; the file is named in an INFO log line). Use Redis or
                    PostgreSQL for several hosts.
==================  ==========================================================================
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from .asgi import ASGIApp
from .asgi import SessionMiddleware as _ASGISessionMiddleware
from .core.config import SessionConfig
from .errors import ConfigError
from .stores.base import Store

__all__ = ["DEFAULT_STORE", "SessionMiddleware", "starlette_options"]

log = logging.getLogger("sessionkeeper")

#: The store used when ``store=`` is not given.
DEFAULT_STORE = "sqlite:///sessionkeeper.sqlite3"
_TWELVE_HOURS = 12 * 3600


def starlette_options(
    *,
    session_cookie: str = "session",
    max_age: int | None = 14 * 24 * 60 * 60,
    path: str = "/",
    same_site: Literal["lax", "strict", "none"] = "lax",
    https_only: bool = False,
    domain: str | None = None,
    partitioned: bool = False,
) -> dict[str, Any]:
    """The sessionkeeper options that Starlette's ``SessionMiddleware`` arguments map to."""
    if partitioned is not False:
        raise ConfigError(
            "SessionMiddleware(partitioned=True) is not supported: sessionkeeper's cookie has no "
            "Partitioned attribute; drop it, or send the session in a header "
            "(transport='header') from a third-party iframe"
        )
    options: dict[str, Any] = {
        "cookie_name": session_cookie,
        "cookie_path": path,
        "same_site": same_site,
        "secure": https_only,
        "cookie_domain": domain,
    }
    if max_age is not None:
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age <= 0:
            raise ConfigError(
                f"SessionMiddleware(max_age={max_age!r}): pass a positive number of seconds, or "
                "None for a browser-session cookie (a session that expires at once keeps nothing)"
            )
        options.update(cookie_max_age=max_age, idle_timeout=max_age,
                       absolute_timeout=max(max_age, _TWELVE_HOURS))
    return options


class SessionMiddleware(_ASGISessionMiddleware):
    """``starlette.middleware.sessions.SessionMiddleware``'s signature, sessions kept in
    ``store`` (see the module docstring for how each argument maps). Further keyword
    arguments are sessionkeeper's own options (:class:`~sessionkeeper.SessionConfig`)."""

    def __init__(
        self,
        app: ASGIApp,
        secret_key: object = None,
        session_cookie: str = "session",
        max_age: int | None = 14 * 24 * 60 * 60,
        path: str = "/",
        same_site: Literal["lax", "strict", "none"] = "lax",
        https_only: bool = False,
        domain: str | None = None,
        partitioned: bool = False,
        *,
        store: Store | str | None = None,
        config: SessionConfig | None = None,
        **options: Any,
    ) -> None:
        mapped = starlette_options(
            session_cookie=session_cookie, max_age=max_age, path=path, same_site=same_site,
            https_only=https_only, domain=domain, partitioned=partitioned,
        )
        if config is not None:
            mapped = {}  # a config object is taken as it is, as everywhere else
        if store is None:
            store = DEFAULT_STORE
            log.info("sessionkeeper.starlette: sessions are kept in %s (pass store= to choose)", store)
        # secret_key is deliberately unused: nothing is signed (see the module docstring).
        super().__init__(app, store=store, config=config, **{**mapped, **options})
