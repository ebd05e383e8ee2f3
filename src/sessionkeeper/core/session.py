"""The session object the application sees: a ``MutableMapping`` that records what changed.

Rules:
- Values are decoded only when read; a value never read is never decoded or re-encoded.
- Assignment encodes at once, so an unsupported value fails in the app's own line, naming the
  key. An assignment whose encoding equals the stored one is not a change.
- A mutable value that was read (a list, a dict, a tuple holding either) is re-encoded when the
  request ends and compared with what was loaded, so ``session["cart"].append(x)`` is saved
  without the app flagging anything.
- Lifecycle intents (``regenerate``, ``destroy``, ``login``, ``remember`` …) are only recorded
  here; the request flow turns them into store operations when the response is ready.

Ending a sign-in, three ways (what each does):

- ``logout()`` (= ``destroy()``): the session is deleted from the store (every copy of its
  token is dead, it leaves the user's device list, a ``logged_out`` event), the cookie is
  cleared. Data written afterwards in the same request starts a brand-new anonymous session.
- ``clear()`` on a signed-in session is ``logout()``: so Flask's ``session.clear()`` idiom
  signs the user out for real. On an anonymous session it deletes the keys this request saw
  (keys a concurrent request adds meanwhile stay) and keeps the session and its ID.
- ``pop(key)`` / ``del session[key]`` remove that one key of the app's own data, nothing
  else: the sign-in recorded by ``login()`` is not a key, so popping an app key such as
  ``"user_id"`` signs nobody out. Use ``logout()``.

Patched or replaced (how a changed dict or list is written, so that concurrent requests that
change different parts of one value all keep their changes; the merge rules are in
core/patch.py, the diff in core/diff.py):

- Patched: at the end of the request the key holds a plain dict or list and either (a) it is
  the very object this request read from the store for that key, changed in place and/or
  assigned back (``session["cart"].append(x)``; the naive cart
  ``cart = session.get("cart", {}); cart[i] = 1; session["cart"] = cart``), or (b) the key
  was not in the session when it was loaded and the value is not empty
  (``session.setdefault("cart", []).append(x)``, ``session["prefs"] = {"a": 1}`` on a new
  key). Only the differences from the loaded value (from empty, for a new key) are written:
  dict entries set or removed at any depth, items appended to a list.
- Replaced (the whole value is written; the last writer wins): a different object assigned
  to a key the session had (``session["cart"] = {}`` empties the cart whatever a concurrent
  request added; ``session["cart"] = dict(cart)``), a key given to :meth:`Session.replace`,
  an empty dict or list on a new key, and any change a patch cannot express, replaced at the
  nearest dict entry holding it (or whole, at the top): a list reordered, shortened or
  changed in the middle, a change of type, a scalar, a tuple, datetime, Decimal, bytes or a
  dict holding the key ``"__sk"``.
- Size limits apply to the whole value as it would be stored, patched or not.

Why a dict: Starlette types ``request.session`` as ``dict`` and Flask's session is a dict
subclass, so apps and extensions use it as one (``JSONResponse(request.session)``,
``isinstance(s, dict)``, ``{**s}``). ``Session`` subclasses ``dict`` and keeps its data in the
dict's own storage (stored text until a value is read), and overrides every method and
operator, because CPython reads a dict subclass's storage directly in places: ``dict(s)``,
``{**s}``, ``f(**s)`` and ``d.update(s)`` copy it unless ``__iter__`` is overridden (then they
call ``keys()`` and ``__getitem__``); ``json``'s C encoder writes ``{}`` for an empty storage
without asking, so an unloaded session keeps one placeholder entry until it loads, and
otherwise calls ``items()``, which decodes. Copies (``copy.copy``, ``deepcopy``, ``s.copy()``,
``s | d``, pickling) are plain dicts of the data. tests/core/test_session_dict_compat.py proves
each path. (Code reading the storage with the C API, such as orjson, sees the placeholder or
stored text: pass ``dict(session)`` there.)

Privilege changes renew the CSRF token: ``login()``, ``reauthenticate()`` and ``regenerate()``
drop the stored one, so a token obtained before (for instance by a login-CSRF attacker) no
longer validates; :meth:`Session.csrf_token` makes a new one.
"""

from __future__ import annotations

import contextlib
import copy
import hmac
import json
import logging
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal, Self, SupportsIndex, cast
from uuid import UUID

from ..errors import ConfigError, SessionEncodeError, SessionError, SessionTooLarge
from . import codec, diff, ids
from .clock import seconds
from .lifecycle import own_limits
from .records import Delta, Meta, PatchOp, Record

log = logging.getLogger("sessionkeeper")

# Values of these types cannot change in place: once read, they need no re-encoding.
_IMMUTABLE: frozenset[type] = frozenset(
    {str, int, float, bool, type(None), bytes, datetime, Decimal, UUID}
    | {type(datetime.now().date())}
)

_json = json.JSONDecoder().decode

Loader = Callable[[], Record | None]
CSRF_KEY = "_sk_csrf"
#: ``remember()``'s pending (idle, absolute) limits, ``None`` meaning the config's remember
#: defaults; ``False`` is a pending ``forget()``.
Persist = tuple[float | None, float | None] | Literal[False]


class _Raw:
    """A value still in its stored, encoded form."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _Pending:
    """The one entry of an unloaded session's ``dict`` storage (see "Why a dict" above)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<sessionkeeper: session not loaded>"


_PENDING = _Pending()
_MISSING: Any = object()

# The dict's own storage, reached past the overrides (bound once: they are on the hot path).
_dget = dict.get
_dset = dict.__setitem__
_ddel = dict.__delitem__
_dcontains = dict.__contains__
_dlen = dict.__len__
_dkeys = dict.keys
_ditems = dict.items
_dvalues = dict.values
_dclear = dict.clear
_dupdate = dict.update
_deq = dict.__eq__


class Session(dict[str, Any]):
    """Server-side session data for one request: a ``dict`` (``isinstance(s, dict)``), loaded
    lazily, that records what changed.

    Everything a ``dict`` offers works and reads through the lazy loading: ``json.dumps``,
    ``dict(s)``, ``{**s}``, ``==``, ``|``, ``copy.copy`` / ``copy.deepcopy`` and ``s.copy()``
    (these three give a plain ``dict`` snapshot of the data), ``keys/values/items``,
    ``get/setdefault/pop/popitem/update/clear``. ``repr`` shows no data (values may be secret).

    Besides the mapping methods it offers the lifecycle: :meth:`regenerate`, :meth:`destroy`,
    :meth:`login`, :meth:`logout`, :meth:`reauthenticate`, "remember me" (:meth:`remember`,
    :meth:`forget`, :attr:`persistent`, :attr:`permanent`), and read-only facts:
    :attr:`user_id`, :attr:`created_at`, :attr:`last_seen`, :attr:`expires_at` (``None`` until
    saved).

    ``clear()`` on a signed-in session signs the user out (it is :meth:`logout`); ``pop()`` /
    ``del`` of the app's own keys remove just those keys (see the module docstring).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        max_size: int,
        record: Record | None = None,
        loader: Loader | None = None,
    ) -> None:
        self._clock = clock
        self._max_size = max_size
        self._loader = loader
        self._record: Record | None = None
        self._orig: Mapping[str, str] = {}
        self._dirty: dict[str, str] = {}  # key -> encoding of the value assigned
        self._loaded: dict[str, Any] = {}  # key -> the object decoded from the stored value
        self._replaced: set[str] = set()  # keys given to replace(): written whole
        self._size: int | None = 0
        self.accessed = False  # read at all (the response then needs "Vary: Cookie")
        # lifecycle intents
        self.rotate = False
        self.destroyed = False
        self.new_user: tuple[str | None, float] | None = None  # (user id, auth time) to record
        self.logging_in = False  # new_user comes from login() (not reauthenticate())
        self.destroyed_user: str | None = None  # who was signed in when destroy() was called
        self.persist: Persist | None = None  # remember() / forget() of this request
        # Set by the request flow once known. Never shown to users: public_id names a session.
        self.storage_key: str | None = None
        self.id_secret: bytes | None = None
        self.next_token: str | None = None  # pre-issued token (URL transport), used on save
        self.token_issuer: Callable[[], str | None] | None = None
        if loader is None:
            self._adopt(record)
        else:
            # json's C encoder writes "{}" for a dict whose storage is empty without calling
            # items(): this entry makes it ask, and items() loads.
            _dset(self, cast(str, _PENDING), None)

    # ---- loading ------------------------------------------------------------------------

    def _adopt(self, record: Record | None) -> None:
        self._loader = None
        self._record = record
        _dclear(self)
        if record is not None:
            self._orig = record.fields
            _dupdate(self, {k: _Raw(v) for k, v in record.fields.items()})
            self._size = None  # measured on the first change: a read-only request never needs it

    def _load(self) -> None:
        self.accessed = True
        if self._loader is not None:
            self._adopt(self._loader())

    @property
    def loaded(self) -> bool:
        """True once the stored data was fetched (or there was nothing to fetch)."""
        return self._loader is None

    @property
    def record(self) -> Record | None:
        """The record this session was loaded from, or ``None`` for a new session."""
        self._load()
        return self._record

    # ---- mapping ------------------------------------------------------------------------

    def _decode(self, key: str, raw: _Raw) -> Any:
        try:
            value = codec.decode(raw.text)
        except ValueError:
            # The key is then saved as deleted (if the request saves at all).
            log.warning("dropping corrupt session value %r", key)
            self._size = self._sized() - self._len_of(key)
            _ddel(self, key)
            raise KeyError(key) from None
        _dset(self, key, value)
        if type(value) not in _IMMUTABLE:
            self._loaded[key] = value  # patched, not replaced, while the key holds this object
        return value

    def _decode_all(self) -> None:
        # Before a fast path of dict's own (a view, ==) reads the storage directly.
        self._load()
        for key, value in list(_ditems(self)):
            if type(value) is _Raw:
                with contextlib.suppress(KeyError):  # corrupt: dropped, as on any read
                    self._decode(key, value)

    def __getitem__(self, key: str) -> Any:
        self._load()
        value = _dget(self, key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        if type(value) is _Raw:
            return self._decode(key, value)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        self._load()
        value = _dget(self, key, _MISSING)
        if value is _MISSING:
            return default
        if type(value) is _Raw:
            try:
                return self._decode(key, value)
            except KeyError:
                return default
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        if type(key) is not str:
            raise TypeError(f"session keys must be str, not {type(key).__name__}")
        if not key.isascii():
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:
                raise SessionEncodeError(key, "the key holds a lone surrogate (not valid UTF-8)") from None
        self._load()
        text = codec.encode(key, value)
        size = self._sized() - self._len_of(key) + len(key.encode()) + len(text.encode())
        if size > self._max_size:
            raise SessionTooLarge(size, self._max_size)
        self._size = size
        _dset(self, key, value)
        self._dirty[key] = text

    def replace(self, key: str, value: Any) -> None:
        """``session[key] = value``, written whole when the request ends: the stored value is
        overwritten, never merged with changes a concurrent request made to it (see the
        module docstring, "Patched or replaced")."""
        self[key] = value
        self._replaced.add(key)

    def _sized(self) -> int:
        if self._size is None:
            self._size = codec.encoded_size(dict(self._orig))
        return self._size

    def _len_of(self, key: str) -> int:
        # Size estimate of the key's current value: exact for raw and assigned values, the
        # loaded size for a value mutated in place (delta() measures exactly at the end).
        if not _dcontains(self, key):
            return 0
        text = self._dirty.get(key) or self._orig.get(key, "")
        return len(key.encode()) + len(text.encode())

    def __delitem__(self, key: str) -> None:
        self._load()
        if not _dcontains(self, key):
            raise KeyError(key)
        self._size = self._sized() - self._len_of(key)
        _ddel(self, key)
        self._dirty.pop(key, None)

    # Overriding __iter__ (and keys) matters: dict(s), {**s}, f(**s) and d.update(s) then go
    # through keys() and __getitem__ instead of copying the storage (CPython's dict_merge).
    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(list(_dkeys(self)))

    def __reversed__(self) -> Iterator[str]:
        self._load()
        return iter(list(_dkeys(self))[::-1])

    def __len__(self) -> int:
        self._load()
        return _dlen(self)

    def __contains__(self, key: object) -> bool:
        self._load()
        return _dcontains(self, key)

    def keys(self) -> KeysView[str]:  # type: ignore[override]
        """A live view of the keys (the dict's own: loaded first)."""
        self._load()
        return _dkeys(self)

    def values(self) -> ValuesView[Any]:  # type: ignore[override]
        """A live view of the values (every value is decoded first: each one is read)."""
        self._decode_all()
        return _dvalues(self)

    def items(self) -> ItemsView[str, Any]:  # type: ignore[override]
        """A live view of the items (every value is decoded first: each one is read)."""
        self._decode_all()
        return _ditems(self)

    def _plain(self) -> dict[str, Any]:
        self._decode_all()
        return dict(_ditems(self))

    def copy(self) -> dict[str, Any]:
        """A plain ``dict`` holding the same values (as ``dict.copy`` gives for a subclass)."""
        return self._plain()

    def __copy__(self) -> dict[str, Any]:
        return self._plain()

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return copy.deepcopy(self._plain(), memo)

    def __reduce__(self) -> tuple[Any, ...]:
        # A pickled session is its data: the store connection and intents stay behind.
        return (dict, (self._plain(),))

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return self.__reduce__()

    @classmethod
    def fromkeys(cls, iterable: Iterable[str], value: Any = None) -> dict[str, Any]:  # type: ignore[override]
        """A plain ``dict`` (a session comes only from a request)."""
        return dict.fromkeys(iterable, value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Session):
            other._decode_all()
        elif not isinstance(other, Mapping):
            return NotImplemented
        self._decode_all()
        if not isinstance(other, dict):
            other = dict(other.items())
        return _deq(self, other)

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __or__(self, other: object) -> dict[str, Any]:  # type: ignore[override]
        if not isinstance(other, Mapping):
            return NotImplemented
        out = self._plain()
        out.update(other)
        return out

    def __ror__(self, other: object) -> dict[str, Any]:  # type: ignore[override]
        if not isinstance(other, Mapping):
            return NotImplemented
        out = dict(other)
        out.update(self._plain())
        return out

    def __ior__(self, other: Any) -> Self:  # type: ignore[override,misc]
        self.update(other)
        return self

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set each key of ``other`` (a mapping or key/value pairs) and of ``kwargs``."""
        if isinstance(other, Mapping):
            for key in other:
                self[key] = other[key]
        elif hasattr(other, "keys"):
            for key in other.keys():  # noqa: SIM118  # not a Mapping: keys() is all it offers
                self[key] = other[key]
        else:
            for key, value in other:
                self[key] = value
        for key, value in kwargs.items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        """``session[key]`` if present (no change), else ``default``, stored first."""
        value = self.get(key, _MISSING)
        if value is _MISSING:
            self[key] = default
            return default
        return value

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (``default`` if missing, else ``KeyError``)."""
        value = self.get(key, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise KeyError(key)
            return default
        del self[key]
        return value

    def popitem(self) -> tuple[str, Any]:
        """Remove and return the last (key, value) pair, as ``dict.popitem`` does."""
        self._load()
        while _dlen(self):
            key = next(reversed(_dkeys(self)))
            value = self.get(key, _MISSING)
            if value is not _MISSING:
                del self[key]
                return key, value
        raise KeyError("popitem(): session is empty")

    def __repr__(self) -> str:
        state = "unloaded" if self._loader is not None else f"{_dlen(self)} keys"
        # Never a token, a storage key or a value: reprs end up in logs and tracebacks.
        return f"<{type(self).__name__} {state} user_id={self.user_id_unloaded!r}>"

    def clear(self) -> None:
        """Empty the session. On a signed-in session this is :meth:`logout` (the user binding
        goes too, and the session is deleted from the store); on an anonymous one it removes
        every key this request sees (keys a concurrent request adds are kept)."""
        self._load()
        if self.user_id is not None:
            self.destroy()
            return
        self._clear_data()

    def _clear_data(self) -> None:
        _dclear(self)
        self._dirty.clear()
        self._size = 0

    # ---- change tracking ----------------------------------------------------------------

    @property
    def modified(self) -> bool:
        """True if the data differs from what was loaded (nested changes included)."""
        if self._loader is not None:
            return False
        try:
            return bool(self._changes()[0] or any(k not in self for k in self._orig))
        except SessionError:
            return True  # changed into something that cannot be saved; the save will say so

    @modified.setter
    def modified(self, value: bool) -> None:
        # Accepted and ignored: Flask code sets ``session.modified = True`` after nested
        # changes, which this session detects by itself; ``False`` cannot hide a change.
        return

    def _changes(self) -> tuple[dict[str, str], bool]:
        """(key -> new encoding for each key whose encoding changed, any value re-encoded)."""
        if self._loader is not None:
            return {}, False
        orig = self._orig
        changed: dict[str, str] = {}
        reencoded = False
        for key, value in _ditems(self):
            if type(value) is _Raw:
                continue
            text = self._dirty.get(key)
            if type(value) not in _IMMUTABLE:
                text = codec.encode(key, value)  # may have changed in place since
                reencoded = True
            elif text is None:
                continue  # read, and cannot have changed in place
            if orig.get(key) != text:
                changed[key] = text
        # Assignments keep the size exact as they go; only values changed in place since
        # (a list appended to) need the whole session measured again.
        if changed and reencoded:
            kept = {k: v for k, v in orig.items() if _dcontains(self, k)}
            size = codec.encoded_size({**kept, **changed})
            if size > self._max_size:
                raise SessionTooLarge(size, self._max_size)
        return changed, reencoded

    def delta(self, meta: Meta | None = None) -> Delta:
        """The field changes since loading, as a :class:`Delta` carrying ``meta``: a changed
        dict or list is a nested ``patch`` where the rules of "Patched or replaced" (module
        docstring) allow, a whole value in ``set`` otherwise."""
        changed, _ = self._changes()
        orig = self._orig
        deleted = frozenset(k for k in orig if not _dcontains(self, k))
        if not changed:
            return Delta(set=changed, delete=deleted, meta=meta)
        sets: dict[str, str] = {}
        patch: dict[str, tuple[PatchOp, ...]] = {}
        loaded = self._loaded
        for key, text in changed.items():
            ops: tuple[PatchOp, ...] | None = None
            if key not in self._replaced:
                value = _dget(self, key)
                old = orig.get(key)
                if old is None:
                    # A new key: merged into what a concurrent request may create meanwhile.
                    if type(value) is dict or type(value) is list:
                        new_tree = _json(text)
                        ops = diff.diff(type(new_tree)(), new_tree) or None
                elif loaded.get(key) is value:
                    ops = diff.diff(_json(old), _json(text))
            if ops is None:
                sets[key] = text
            elif ops:
                patch[key] = ops
        return Delta(set=sets, delete=deleted, meta=meta, patch=patch)

    def encoded(self) -> dict[str, str]:
        """Every current value, encoded (for creating the session in a store)."""
        self._load()
        changed, _ = self._changes()
        out = {k: v for k, v in self._orig.items() if _dcontains(self, k)}
        out.update(changed)
        return out

    # ---- lifecycle ----------------------------------------------------------------------

    @property
    def is_new(self) -> bool:
        """True if this session is not (yet) in the store."""
        return self.record is None

    def regenerate(self) -> None:
        """Give the session a new ID at the end of the request; the old ID dies at once.

        The CSRF token is renewed too (a privilege change): one issued before no longer
        validates; render forms after calling this.
        """
        self._load()
        self.rotate = True
        if _dcontains(self, CSRF_KEY):
            del self[CSRF_KEY]

    def destroy(self) -> None:
        """Delete the session on the server and clear the cookie; the data is dropped.

        Data written afterwards in the same request goes into a brand-new session.
        """
        self._load()
        if not self.destroyed:
            self.destroyed_user = self.user_id
        self.destroyed = True
        self.rotate = False
        self.new_user = None
        self.logging_in = False
        self.persist = None
        self._record = None
        self._orig = {}
        _dclear(self)
        self._dirty = {}
        self._loaded = {}
        self._replaced = set()
        self._size = 0

    def login(self, user_id: str | int) -> None:
        """Sign ``user_id`` in: regenerate the ID, then record the user and the auth time.

        User ids are strings: an ``int`` is stored as its decimal text, so after ``login(42)``
        :attr:`user_id` is ``"42"`` (look users up with that, or convert back). Anything else
        (``bool``, ``None``, an object, ``""``) is refused with ``TypeError``/``ValueError``.

        The pre-login ID never grants the signed-in session: it is dead once the response is
        sent, with no grace period. The CSRF token is renewed. The data is kept when an
        anonymous session signs in (a cart survives the login) and when the same user signs in
        again; signing in *another* user than the one signed in starts from an empty session
        (the previous user's session is deleted, as Django's ``login()`` does), keeping only a
        pending :meth:`remember`.
        """
        if isinstance(user_id, bool) or not isinstance(user_id, str | int):
            raise TypeError(f"login() takes the user's id as a str (or an int), not {type(user_id).__name__}")
        uid = str(user_id)
        if not uid:
            raise ValueError("login() needs a non-empty user id")
        current = self.user_id
        if current is not None and current != uid:
            persist = self.persist
            self.destroy()
            self.persist = persist
        self.regenerate()
        self.new_user = (uid, self._clock())
        self.logging_in = True

    def reauthenticate(self) -> None:
        """Record that the signed-in user just proved who they are again (step-up): the ID
        is rotated and the authentication time reset. Raises ``SessionError`` if no user."""
        user = self.user_id
        if user is None:
            raise SessionError("reauthenticate() needs a signed-in user; call login() instead")
        self.regenerate()
        self.new_user = (user, self._clock())

    @property
    def auth_age(self) -> float | None:
        """Seconds since the user last authenticated, or ``None`` if nobody is signed in."""
        if self.new_user is not None:
            return max(0.0, self._clock() - self.new_user[1])
        meta = self.meta
        if meta is None or meta.user_id is None or meta.auth_at is None:
            return None
        return max(0.0, self._clock() - meta.auth_at)

    def recently_authenticated(self, max_age: float = 300) -> bool:
        """True if the user authenticated within ``max_age`` seconds: the gate before a
        sensitive action (change password, pay). If False, ask for the password again and
        call :meth:`reauthenticate`."""
        age = self.auth_age
        return age is not None and age <= max_age

    @property
    def public_id(self) -> str | None:
        """A short keyed hash naming this session in events and device lists (never a token)."""
        if self.storage_key is None or self.id_secret is None:
            return None
        return ids.public_id(self.storage_key, self.id_secret)

    # ---- CSRF ---------------------------------------------------------------------------

    def csrf_token(self) -> str:
        """This session's anti-CSRF token for forms (created and saved on first use)."""
        value = self.get(CSRF_KEY)
        if not isinstance(value, str) or not ids.is_valid_token(value):
            value = ids.new_token()
            self[CSRF_KEY] = value
        return value

    def check_csrf(self, value: str | None) -> bool:
        """True if ``value`` (from a form or header) is this session's CSRF token."""
        expected = self.get(CSRF_KEY)
        if not isinstance(expected, str) or not isinstance(value, str):
            return False
        return hmac.compare_digest(expected.encode(), value.encode("utf-8", "replace"))

    # ---- remember me ----------------------------------------------------------------------

    def remember(
        self, idle: float | timedelta | None = None, absolute: float | timedelta | None = None
    ) -> None:
        """Make this session persistent ("remember me"): its cookie gets a ``Max-Age`` up to
        the absolute limit, so it survives a browser restart, and the server keeps it for
        ``idle`` without use, ``absolute`` at most (seconds or ``timedelta``; defaults:
        the ``remember_idle_timeout`` and ``remember_absolute_timeout`` options).

        The limits are stored with the session and enforced on every later request; the
        absolute one counts from the last authentication (:meth:`login`), or from creation
        if nobody signed in, never from this call, and is capped at
        ``remember_absolute_timeout``. Calling it again with the same limits changes
        nothing (so ``session.permanent = True`` on every request is harmless). Works with
        :meth:`login` in the same request, in either order. A session with no data and no user
        is still not saved: remembering creates no session by itself.
        """
        idle_s = None if idle is None else seconds(idle, "remember(idle=...)")
        absolute_s = None if absolute is None else seconds(absolute, "remember(absolute=...)")
        if idle_s is not None and absolute_s is not None and absolute_s < idle_s:
            raise ConfigError(
                f"remember(absolute={absolute_s:g}) must not be shorter than idle ({idle_s:g} s)"
            )
        self._load()
        self.persist = (idle_s, absolute_s)

    def forget(self) -> None:
        """Undo :meth:`remember`: a browser-session cookie again and the configured idle and
        absolute limits (the absolute end moves no later than this call + the normal
        absolute limit: toggling cannot extend a sign-in)."""
        self._load()
        self.persist = False

    @property
    def persistent(self) -> bool:
        """True if this session is (or, once saved, will be) remembered: see :meth:`remember`."""
        if self.persist is not None:
            return self.persist is not False
        meta = self.meta
        return meta is not None and own_limits(meta) is not None

    @property
    def permanent(self) -> bool:
        """Flask's name for :attr:`persistent`; ``session.permanent = True`` calls
        :meth:`remember` with the default limits, ``False`` calls :meth:`forget`."""
        return self.persistent

    @permanent.setter
    def permanent(self, value: bool) -> None:
        if value:
            if not self.persistent:
                self.remember()
        elif self.persistent:
            self.forget()

    def url_token(self) -> str | None:
        """URL transport only: the token to put in links for this session (it can change when
        the session is first saved or rotated, so render links after any login/regenerate)."""
        return None if self.token_issuer is None else self.token_issuer()

    def logout(self) -> None:
        """Sign out: the same as :meth:`destroy`. The session is deleted from the store when the
        response is ready (its token is dead for every copy of the cookie, it leaves the user's
        device list, a ``logged_out`` event), the cookie is cleared, a pending :meth:`remember`
        is dropped. Data written afterwards in the same request starts a new anonymous
        session."""
        self.destroy()

    # ---- facts --------------------------------------------------------------------------

    @property
    def meta(self) -> Meta | None:
        """Stored metadata, or ``None`` for a session not yet saved."""
        record = self.record
        return None if record is None else record.meta

    @property
    def user_id(self) -> str | None:
        """The signed-in user's id, or ``None``."""
        if self.new_user is not None:
            return self.new_user[0]
        meta = self.meta
        return None if meta is None else meta.user_id

    @property
    def user_id_unloaded(self) -> str | None:
        # For repr: never triggers a store round trip.
        if self._loader is not None:
            return None
        return self.user_id

    @property
    def auth_at(self) -> datetime | None:
        """When the user last authenticated (login or re-authentication), or ``None``."""
        if self.new_user is not None:
            return _dt(self.new_user[1])
        meta = self.meta
        return None if meta is None or meta.auth_at is None else _dt(meta.auth_at)

    @property
    def created_at(self) -> datetime | None:
        """When the session was first saved (``None`` until then)."""
        meta = self.meta
        return None if meta is None else _dt(meta.created_at)

    @property
    def last_seen(self) -> datetime | None:
        """When the session was last used, to the touch interval's precision."""
        meta = self.meta
        return None if meta is None else _dt(meta.last_seen)

    @property
    def expires_at(self) -> datetime | None:
        """When the session dies unless used again (idle), capped by the absolute limit."""
        meta = self.meta
        return None if meta is None else _dt(meta.expires_at)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)
