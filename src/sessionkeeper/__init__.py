"""sessionkeeper: server-side web sessions for Python, secure by default.

Quick start (any ASGI app)::

    from sessionkeeper import open_store
    from sessionkeeper.asgi import SessionMiddleware

    app = SessionMiddleware(app, store=open_store("sqlite:///sessions.db"))
"""

from ._version import __version__  # the one source is pyproject.toml
from .core.clock import Timeouts
from .core.config import SessionConfig
from .core.cookies import CookiePolicy
from .core.events import EventKind, SessionEvent, Subscriber
from .core.flow import SessionFlow
from .core.ids import new_token, storage_key
from .core.lifecycle import Device
from .core.records import (
    Delta,
    Meta,
    PatchAppend,
    PatchDelete,
    PatchOp,
    PatchSet,
    PurgeReport,
    Record,
    ScanPage,
)
from .core.session import Session
from .errors import (
    ConfigError,
    SessionEncodeError,
    SessionError,
    SessionTooLarge,
    StoreError,
    StoreUnavailable,
)
from .manager import SessionManager
from .stores.base import Store, open_store

__all__ = [
    "ConfigError",
    "CookiePolicy",
    "Delta",
    "Device",
    "EventKind",
    "Meta",
    "PatchAppend",
    "PatchDelete",
    "PatchOp",
    "PatchSet",
    "PurgeReport",
    "Record",
    "ScanPage",
    "Session",
    "SessionConfig",
    "SessionEncodeError",
    "SessionError",
    "SessionEvent",
    "SessionFlow",
    "SessionManager",
    "SessionTooLarge",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Subscriber",
    "Timeouts",
    "__version__",
    "new_token",
    "open_store",
    "storage_key",
]
