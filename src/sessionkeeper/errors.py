"""One small exception hierarchy: every error this library raises is a :class:`SessionError`."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "SessionEncodeError",
    "SessionError",
    "SessionTooLarge",
    "StoreError",
    "StoreUnavailable",
]


class SessionError(Exception):
    """Base class of every error raised by sessionkeeper."""


class ConfigError(SessionError, ValueError):
    """An option, store URL or cookie setting is invalid; the message says which and why."""


class SessionEncodeError(SessionError, TypeError):
    """A session value cannot be stored (unsupported type, NaN key, non-string dict key)."""

    def __init__(self, key: str, detail: str) -> None:
        self.key = key
        super().__init__(
            f"session[{key!r}] cannot be stored: {detail}. Store only JSON-like values "
            "(str, int, float, bool, None, list, dict with str keys) or datetime, date, "
            "UUID, Decimal, bytes, tuple; convert other objects first."
        )


class SessionTooLarge(SessionError, ValueError):
    """The encoded session grew past ``max_size`` bytes."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"the session would take {size} bytes encoded, over the limit of {limit} bytes "
            "(option max_size). Keep large data in your database and put only its id "
            "in the session, or raise max_size."
        )


class StoreError(SessionError):
    """The session store failed or returned something it should not have."""


class StoreUnavailable(StoreError):
    """The store cannot be reached, or every connection to it stayed busy for the pool's
    timeout (the message says which); adapters answer such requests with HTTP 503."""
