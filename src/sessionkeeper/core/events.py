"""Audit events: what happened to a session, as frozen values handed to subscribers.

Events never carry a raw token or a storage key: ``session_id`` is
:func:`sessionkeeper.core.ids.public_id` of the storage key, a short hash that names a session
in logs and device lists and cannot be turned back into anything that grants access.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

EventKind = Literal[
    "created",      # first saved
    "rotated",      # new ID, same session (regenerate, periodic renewal, re-authentication)
    "logged_in",    # login(): rotated and bound to a user
    "logged_out",   # logout() / destroy() from the request
    "destroyed",    # deleted by the request (destroy without a user)
    "revoked",      # deleted from outside the request (device list, admin, CLI, policy)
    "expired",      # found dead on access (while the store still holds it), then removed
    "anomaly",      # suspicious use: fingerprint drift, a burst of unknown IDs
    "refused",      # a login refused by the per-user session cap
]


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """One audit event."""

    kind: EventKind
    at: float
    session_id: str | None = None  # public id (short keyed hash), never a token
    user_id: str | None = None
    detail: Mapping[str, str] = field(default_factory=dict)


#: a subscriber: a plain callable, sync or async
Subscriber = Callable[[SessionEvent], "Awaitable[None] | None"]
