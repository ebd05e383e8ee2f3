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
- ``Purge`` removes every record expired at ``now`` (sessions and renewal aliases), in
  batches of at most ``batch`` records, each batch its own short write (no lock or
  transaction spans batches, so requests keep flowing); it returns how many records went.
  With ``report=True`` it returns a :class:`PurgeReport` that also names each *session* it
  removed, with the metadata it had, so that callers can emit ``expired`` events; renewal
  aliases (:func:`is_renewal_alias`) are counted but not named: they are not sessions.
- ``Scan`` reads the live sessions at ``now`` one page at a time, with no write, no lock
  and no transaction spanning pages (each page is one short read, or a few), so it is safe
  while the app serves. A page holds ``(storage key, Meta)`` pairs and a cursor to pass to
  the next ``Scan``; the cursor is ``""`` once there is nothing more. Renewal aliases are
  never returned. A session that is live and stays in place from the first page to the last
  is returned at least once; one created, renamed or deleted meanwhile may or may not be.
  Stores that page by key order (memory, file, SQLite, PostgreSQL) return each key at most
  once and at most ``limit`` pairs per page; Redis pages with ``SCAN`` (``limit`` is its
  ``COUNT`` hint) and, as ``SCAN`` does, may return a key twice. A page may be empty while
  the cursor is not ``""``: only the cursor says when the scan is done. A cursor is opaque
  and belongs to the store kind that returned it: one it cannot have returned raises
  :class:`~sessionkeeper.ConfigError` (a ``ValueError``), never a server error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from ..errors import ConfigError
from .ids import is_valid_key


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
    """-> ``int``: how many expired records (sessions and renewal aliases) were removed, in
    batches of at most ``batch``; with ``report=True``, a :class:`PurgeReport` instead."""

    now: float
    batch: int = 500
    report: bool = False


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What a ``Purge(report=True)`` removed.

    ``removed`` counts every record that went (as a plain ``Purge`` returns it); ``sessions``
    names the sessions among them, as ``(storage key, Meta)`` pairs with the metadata they had
    when they were removed. Renewal aliases, and records a store could not read (a corrupt
    file), are counted but not named.
    """

    removed: int
    sessions: tuple[tuple[str, Meta], ...] = ()


@dataclass(frozen=True, slots=True)
class Count:
    """-> ``int``: live sessions at ``now``."""

    now: float


@dataclass(frozen=True, slots=True)
class Scan:
    """-> :class:`ScanPage`: one page of the live sessions at ``now`` (capability ``scan``).

    Pass ``cursor=""`` for the first page, then each page's :attr:`ScanPage.cursor` until it
    is ``""``. ``limit`` (at least 1) bounds the records a page reads (on Redis: the hint
    ``SCAN`` gets). See the module header for the rules; :meth:`Store.scan_all` follows the
    cursors.
    """

    now: float
    cursor: str = ""
    limit: int = 500


@dataclass(frozen=True, slots=True)
class ScanPage:
    """One page of a :class:`Scan`: ``(storage key, Meta)`` pairs and the next cursor."""

    sessions: tuple[tuple[str, Meta], ...]
    cursor: str  # "" when the scan is done

    @property
    def done(self) -> bool:
        """Whether this was the last page."""
        return self.cursor == ""


Op: TypeAlias = Load | Create | Apply | Rename | Delete | ListUser | Purge | Count | Scan


def scan_start(cursor: str, limit: int) -> str:
    """For stores that page by key order: the storage key a :class:`Scan` page starts after
    (``""``: the beginning), their cursor being the last key the previous page read. Raises
    :class:`~sessionkeeper.ConfigError` for a cursor no such store returns, or a ``limit``
    below 1."""
    check_limit(limit, "scan limit")
    if cursor != "" and not (isinstance(cursor, str) and is_valid_key(cursor)):
        raise bad_cursor(cursor)
    return cursor


def check_limit(value: object, what: str) -> int:
    """``value`` if it is a whole number of at least 1 (a page or batch size), else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a whole number of at least 1, not {value!r}")
    return value


def bad_cursor(cursor: object) -> ConfigError:
    """The error for a :class:`Scan` cursor the store cannot have returned. The cursor itself
    is not quoted: a caller that mixed up its strings may have passed a token."""
    what = f"of {len(cursor)} characters" if isinstance(cursor, str) else f"of type {type(cursor).__name__}"
    return ConfigError(f"scan cursor ({what}) is not one this store returned; pass \"\" to start again")


# ---- renewal aliases ---------------------------------------------------------------------
# A periodic renewal leaves, under the old token's alias key, a short-lived record that leads
# to the new token (core/flow.py writes it): ``Record({"to": wrapped}, Meta(t, t, end, end))``.
# It is a pointer, not a session: Scan leaves it out and Purge(report=True) does not name it.
# The shape below is that record's; a store may first test the metadata alone
# (:func:`alias_shaped`) and read a record's field names only for the few that match.

#: the one field of a renewal alias
ALIAS_FIELD = "to"


def alias_shaped(meta: Meta) -> bool:
    """Whether ``meta`` has the shape of a renewal alias's metadata (no user, no client facts,
    never touched, its expiry its absolute limit). Necessary, not sufficient: see
    :func:`is_renewal_alias`."""
    return (meta.user_id is None and not meta.info and meta.expires_at == meta.absolute_at
            and meta.created_at == meta.last_seen)


def is_renewal_alias(fields: Iterable[str], meta: Meta) -> bool:
    """Whether a record with these field names (a mapping's keys will do) and metadata is a
    renewal alias rather than a session."""
    return alias_shaped(meta) and set(fields) == {ALIAS_FIELD}
