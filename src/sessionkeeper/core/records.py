"""What a store keeps and the operations a store performs, as plain frozen values.

A store never sees a token or a decoded value: it deals in storage keys (hashes), encoded
field values (JSON text) and times (float seconds since the epoch). The request flow yields
these operations; a store's ``execute`` (sync) or ``aexecute`` (async) performs one.

Store rules every backend keeps (the conformance suite checks them):
- ``Load`` returns ``None`` for a key that is missing or whose ``expires_at <= now``.
- ``Create`` inserts only if the key is free (returns False otherwise).
- ``Apply`` changes fields and metadata atomically, in one round trip, and only if the
  session exists and has not expired at ``now``: a delta never resurrects a session.
- ``Rename`` atomically moves a live session to a new key, applying a delta on the way;
  the old key is dead when it returns. It fails (False) if the old session is gone.
- ``Delete`` removes a session; it returns whether one was there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias


@dataclass(frozen=True, slots=True)
class Meta:
    """Server-side facts about a session, never written by the application directly."""

    created_at: float
    last_seen: float
    expires_at: float  # when the session dies: min(idle expiry, absolute expiry)
    absolute_at: float  # the absolute limit, fixed at creation
    user_id: str | None = None
    auth_at: float | None = None  # when the user last proved who they are
    info: Mapping[str, str] = field(default_factory=dict)  # ip, user agent, fingerprint …

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (stores that keep metadata as one document use this)."""
        return {
            "created_at": self.created_at,
            "last_seen": self.last_seen,
            "expires_at": self.expires_at,
            "absolute_at": self.absolute_at,
            "user_id": self.user_id,
            "auth_at": self.auth_at,
            "info": dict(self.info),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Meta:
        """Inverse of :meth:`to_dict`; raises ``KeyError``/``TypeError`` on a corrupt dict."""
        user_id = d.get("user_id")
        auth_at = d.get("auth_at")
        info = d.get("info") or {}
        if not isinstance(info, dict):
            raise TypeError("info must be an object")
        return cls(
            created_at=float(d["created_at"]),
            last_seen=float(d["last_seen"]),
            expires_at=float(d["expires_at"]),
            absolute_at=float(d["absolute_at"]),
            user_id=None if user_id is None else str(user_id),
            auth_at=None if auth_at is None else float(auth_at),
            info={str(k): str(v) for k, v in info.items()},
        )


@dataclass(frozen=True, slots=True)
class Record:
    """A stored session: encoded fields (key -> JSON text) and metadata."""

    fields: Mapping[str, str]
    meta: Meta


# ---- nested patches --------------------------------------------------------------------
# A patch changes parts of one key's stored value (its JSON tree, as core/codec.py writes it)
# instead of replacing it, so concurrent requests that change different entries of one dict,
# or append to one list, all keep their changes. Paths are dict keys from the key's value down;
# only plain JSON objects and arrays are descended into (tagged codec values are replaced
# whole, through ``PatchSet`` on their parent). The merge rules are stated in core/patch.py.


@dataclass(frozen=True, slots=True)
class PatchSet:
    """Set the dict entry at ``path`` (at least one key) to ``value`` (JSON text)."""

    path: tuple[str, ...]
    value: str


@dataclass(frozen=True, slots=True)
class PatchDelete:
    """Remove the dict entry at ``path`` (at least one key), if it is there."""

    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PatchAppend:
    """Append the items of ``items`` (JSON text of an array) to the array at ``path``
    (``()``: the key's value itself)."""

    path: tuple[str, ...]
    items: str


PatchOp: TypeAlias = PatchSet | PatchDelete | PatchAppend


@dataclass(frozen=True, slots=True)
class Delta:
    """The changes one request made: applied atomically by :class:`Apply` or :class:`Rename`.

    Order: delete the fields in ``delete``, write the fields in ``set``, apply the nested
    ``patch`` of each field it names (the three never name the same field), then, if ``meta``
    is given, replace the metadata with it. Fields that this request did not change are left
    alone, so concurrent requests that change different keys all keep their changes.
    """

    set: Mapping[str, str] = field(default_factory=dict)
    delete: frozenset[str] = frozenset()
    meta: Meta | None = None
    patch: Mapping[str, tuple[PatchOp, ...]] = field(default_factory=dict)

    @property
    def touches_fields(self) -> bool:
        return bool(self.set or self.delete or self.patch)


# ---- operations ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    """-> ``Record | None``"""

    key: str
    now: float


@dataclass(frozen=True, slots=True)
class Create:
    """-> ``bool`` (False if the key is taken)"""

    key: str
    record: Record


@dataclass(frozen=True, slots=True)
class Apply:
    """-> ``bool`` (False if the session is missing or expired: nothing was written)"""

    key: str
    delta: Delta
    now: float


@dataclass(frozen=True, slots=True)
class Rename:
    """-> ``bool`` (False if ``old`` is missing or expired: nothing was written)"""

    old: str
    new: str
    delta: Delta
    now: float


@dataclass(frozen=True, slots=True)
class Delete:
    """-> ``bool`` (whether a session was there)"""

    key: str


@dataclass(frozen=True, slots=True)
class ListUser:
    """-> ``list[tuple[str, Meta]]``: the live sessions of one user (capability ``by_user``)."""

    user_id: str
    now: float


@dataclass(frozen=True, slots=True)
class Purge:
    """-> ``int``: how many expired sessions were removed (at most ``limit`` per batch)."""

    now: float
    batch: int = 500


@dataclass(frozen=True, slots=True)
class Count:
    """-> ``int``: live sessions at ``now``."""

    now: float


Op: TypeAlias = Load | Create | Apply | Rename | Delete | ListUser | Purge | Count
