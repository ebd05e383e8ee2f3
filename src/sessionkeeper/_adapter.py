"""What every adapter (ASGI, WSGI, Flask, :class:`~sessionkeeper.SessionManager`) does the same
way at construction and on its own answers, kept in one place so they cannot drift apart."""

from __future__ import annotations

from .core.config import SessionConfig
from .errors import ConfigError
from .stores.base import Store, open_store


def resolve_store(store: object, owner: str) -> Store:
    """``store=`` as given to ``owner``: a :class:`Store`, or a store URL opened with
    :func:`open_store`. Anything else is refused now, naming the option, rather than failing
    on the first request with an ``AttributeError``.

    A store opened here from a URL lives as long as the process (as a module-level
    ``open_store(...)`` would); pass a ``Store`` to control when it is closed.
    """
    if isinstance(store, Store):
        return store
    if isinstance(store, str):
        return open_store(store)
    raise ConfigError(
        f"{owner}: store= must be a Store (from open_store(...)) or a store URL string such as "
        f"'sqlite:///sessions.db', not {type(store).__name__}"
    )


def resolve_config(config: object, owner: str) -> SessionConfig | None:
    """``config=`` as given to ``owner``: a :class:`SessionConfig` or ``None``."""
    if config is None or isinstance(config, SessionConfig):
        return config
    raise ConfigError(
        f"{owner}: config= must be a SessionConfig or None, not {type(config).__name__}; "
        "pass options such as secure=False as keyword arguments instead"
    )


def own_answer_headers(config: SessionConfig) -> list[tuple[str, str]]:
    """Headers the middleware's *own* answers (the CSRF 403, the store-unavailable 503) carry
    besides their content headers.

    With the URL transport the token is in the page's address, so every response, these
    included, says ``Referrer-Policy: no-referrer``: otherwise a link or subresource on an
    error page would leak the address, token and all, in the ``Referer`` header (WSTG-SESS-04,
    ASVS 5.0 V7 token exposure). The flow adds the same header to the app's responses.
    """
    if config.transport == "url":
        return [("Referrer-Policy", "no-referrer")]
    return []
