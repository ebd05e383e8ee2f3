"""Django glue: ``SESSION_ENGINE = "sessionkeeper.django"`` keeps Django's sessions in a
sessionkeeper store, with Django's own ``SessionMiddleware`` and ``django.contrib.auth``
unchanged::

    SESSION_ENGINE = "sessionkeeper.django"
    SESSIONKEEPER = {"store": "sqlite:///sessions.db", "idle_timeout": 1800}

What changes under Django's API (``request.session`` works as before):

- The session key Django puts in the cookie is a 256-bit sessionkeeper token; the store only
  ever sees its hash (:func:`sessionkeeper.storage_key`). A key that is not shaped like one of
  our tokens is never looked up.
- ``save()`` writes only the keys this request changed or deleted (diffed against what it
  loaded), so concurrent requests that change different keys all keep their changes.
- ``save()`` on a session deleted meanwhile (logout elsewhere, revoked, expired) raises
  ``UpdateError``, which Django's middleware turns into ``SessionInterrupted``: it never comes
  back to life.
- ``cycle_key()`` (called by ``login()`` and ``update_session_auth_hash()``) moves the session
  to a new key atomically (the store's Rename), and the session is bound to the signed-in user
  (``_auth_user_id``), so :class:`~sessionkeeper.SessionManager` lists and revokes a Django
  user's sessions.
- Idle and absolute limits are enforced on the server (see :func:`_limits` for how
  ``set_expiry`` maps onto them). A session only read is touched at most once per
  ``touch_interval``, by marking it modified so that Django's middleware saves it.
- The ``a*`` methods (``aload``, ``asave``, ``acycle_key`` …) drive the same generators with
  the store's async face: native async I/O on stores with an async client, no thread per call.

Each operation is written once, as a generator of store operations
(:mod:`sessionkeeper.core.records`) run by :func:`~sessionkeeper.drivers.run_sync` or
:func:`~sessionkeeper.drivers.run_async`.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings  # type: ignore[import-untyped]
from django.contrib.sessions.backends.base import (  # type: ignore[import-untyped]
    CreateError,
    SessionBase,
    UpdateError,
)
from django.contrib.sessions.middleware import (  # type: ignore[import-untyped]
    SessionMiddleware as _DjangoSessionMiddleware,
)
from django.core.signals import setting_changed  # type: ignore[import-untyped]

from .core import codec, ids
from .core.clock import seconds
from .core.config import SessionConfig
from .core.fingerprint import Client
from .core.records import Apply, Create, Delete, Delta, Load, Meta, Op, Purge, Record, Rename
from .drivers import run_async, run_sync
from .errors import ConfigError, SessionEncodeError, SessionTooLarge, StoreError
from .stores.base import Store, open_store

__all__ = ["Backend", "SessionMiddleware", "SessionStore", "backend_for"]

log = logging.getLogger("sessionkeeper")

#: Django keeps the signed-in user's primary key under this session key (``auth.SESSION_KEY``).
AUTH_USER_KEY = "_auth_user_id"
#: Django keeps ``set_expiry()``'s value under this session key.
EXPIRY_KEY = "_session_expiry"

_CREATE_ATTEMPTS = 8  # a fresh 256-bit key is never taken; a store that says so is broken

# SessionConfig options that Django's own settings or middleware already decide.
_REFUSED: dict[str, str] = {
    "cookie_name": "set SESSION_COOKIE_NAME",
    "cookie_path": "set SESSION_COOKIE_PATH",
    "cookie_domain": "set SESSION_COOKIE_DOMAIN",
    "cookie_max_age": "set SESSION_COOKIE_AGE / SESSION_EXPIRE_AT_BROWSER_CLOSE",
    "secure": "set SESSION_COOKIE_SECURE = True",
    "http_only": "set SESSION_COOKIE_HTTPONLY",
    "same_site": "set SESSION_COOKIE_SAMESITE",
    "host_prefix": "set SESSION_COOKIE_NAME = '__Host-sessionid' (with SESSION_COOKIE_SECURE = True "
                   "and no SESSION_COOKIE_DOMAIN)",
    "transport": "Django's SessionMiddleware always uses the cookie",
    "header_name": "Django's SessionMiddleware always uses the cookie",
    "url_param": "Django's SessionMiddleware always uses the cookie",
    "lazy_load": "Django's sessions always load on first access",
    "csrf": "use Django's CsrfViewMiddleware",
    "trusted_origins": "set CSRF_TRUSTED_ORIGINS",
    "unavailable_status": "a store outage raises StoreUnavailable; handle it in a Django middleware",
    "rotate_interval": "not supported by the Django backend (call request.session.cycle_key())",
    "renew_grace": "not supported by the Django backend",
    "max_sessions_per_user": "not supported by the Django backend; use SessionManager.revoke_others",
    "on_session_limit": "not supported by the Django backend",
    "anomaly_policy": "not supported by the Django backend",
    "probe_threshold": "not supported by the Django backend",
    "probe_window": "not supported by the Django backend",
    "on_event": "not supported by the Django backend; use Django's user_logged_in/out signals",
}


@dataclass(frozen=True, slots=True)
class Backend:
    """The store and options a :class:`SessionStore` class works with."""

    store: Store
    config: SessionConfig
    owned: bool = False  # opened here from a URL: closed here when the settings change


def backend_for(store: Store | str, config: SessionConfig | None = None, **options: Any) -> Backend:
    """A :class:`Backend` over ``store`` (a :class:`~sessionkeeper.Store` or a store URL)."""
    _refuse(options)
    cfg = SessionConfig.from_options(config, **options)
    return Backend(open_store(store) if isinstance(store, str) else store, cfg)


def _refuse(options: Mapping[str, Any]) -> None:
    for name in options:
        if name in _REFUSED:
            raise ConfigError(f"SESSIONKEEPER option {name!r} does not apply to Django: {_REFUSED[name]}")


# ---- settings -----------------------------------------------------------------------------

_lock = threading.Lock()
_from_settings: Backend | None = None


def _settings_backend() -> Backend:
    """The backend described by ``settings.SESSIONKEEPER`` (built once, rebuilt when a test
    overrides the settings it reads)."""
    global _from_settings
    built = _from_settings
    if built is not None:  # the common case, read without the lock
        return built
    with _lock:
        if _from_settings is None:
            _from_settings = _build_from_settings()
        return _from_settings


def _build_from_settings() -> Backend:
    conf = getattr(settings, "SESSIONKEEPER", None)
    if not isinstance(conf, Mapping) or "store" not in conf:
        raise ConfigError(
            "SESSION_ENGINE = 'sessionkeeper.django' needs a store: add "
            "SESSIONKEEPER = {'store': 'sqlite:///sessions.db'} (or a redis:// or postgresql:// "
            "URL) to your settings"
        )
    options = dict(conf)
    store = options.pop("store")
    store_options = options.pop("store_options", {})
    _refuse(options)
    # SESSION_COOKIE_AGE is Django's lifetime of a session: when the project set it and did
    # not say otherwise, it becomes the absolute limit. Django's default (two weeks) is not
    # taken: the library's own default (12 hours) applies, as in every other adapter.
    if "absolute_timeout" not in options and settings.is_overridden("SESSION_COOKIE_AGE"):
        options["absolute_timeout"] = settings.SESSION_COOKIE_AGE
        if "idle_timeout" not in options:
            idle = seconds(SessionConfig.idle_timeout, "idle_timeout")
            options["idle_timeout"] = min(idle, float(settings.SESSION_COOKIE_AGE))
    cfg = SessionConfig.from_options(**options)
    if not settings.SESSION_COOKIE_SECURE and not settings.DEBUG:
        # Django's default, and the one place where this engine is less strict than the
        # other adapters: Django's middleware, not this module, sets the cookie.
        log.warning(
            "SESSION_COOKIE_SECURE is False: Django also sends the session cookie over plain "
            "http, where anyone on the way can take the session; set SESSION_COOKIE_SECURE = True"
        )
    if isinstance(store, str):
        return Backend(open_store(store, **store_options), cfg, owned=True)
    if not isinstance(store, Store):
        raise ConfigError(f"SESSIONKEEPER['store'] must be a store URL or a Store, not {store!r}")
    return Backend(store, cfg)


def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    global _from_settings
    if setting in ("SESSIONKEEPER", "SESSION_COOKIE_AGE"):
        with _lock:
            old, _from_settings = _from_settings, None
        if old is not None and old.owned:
            old.store.close()


setting_changed.connect(_settings_changed, dispatch_uid="sessionkeeper.django")


# ---- expiry -------------------------------------------------------------------------------


def _timestamp(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp()  # naive: local time, as Django's now()
    except ValueError:
        return None


def _limits(cfg: SessionConfig, expiry: Any, created_at: float) -> tuple[float, float]:
    """``(idle seconds, absolute expiry time)`` of a session, from the options and the value
    ``set_expiry()`` left in the session:

    - none, or ``0`` (expire at browser close: a cookie matter): the configured limits;
    - seconds ``n``: ``n`` of inactivity (Django's meaning), the absolute limit stretched to at
      least ``n``; ``remember_absolute_timeout`` caps ``n`` ("remember me" for 14 days works,
      "for ever" does not);
    - a date (a ``datetime`` or ``timedelta``): that moment, no idle limit (Django's meaning),
      capped at ``max(absolute_timeout, remember_absolute_timeout)`` after creation.
    """
    t = cfg.timeouts
    longest = max(t.absolute, seconds(cfg.remember_absolute_timeout, "remember_absolute_timeout"))
    # A non-finite number (set_expiry(float("nan"))) would make every expiry comparison false.
    if isinstance(expiry, int | float) and not isinstance(expiry, bool) and expiry != 0 \
            and math.isfinite(expiry):
        idle = min(float(expiry), longest)
        return idle, created_at + max(t.absolute, idle)
    if isinstance(expiry, str):
        at = _timestamp(expiry)
        if at is not None and math.isfinite(at):
            return math.inf, min(at, created_at + longest)
    return t.idle, created_at + t.absolute


def _decode(fields: Mapping[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, text in fields.items():
        try:
            data[key] = codec.decode(text)
        except ValueError:
            # Left out: the next save deletes it from the store.
            log.warning("dropping corrupt session value %r", key)
    return data


# ---- the session store ------------------------------------------------------------------


class SessionStore(SessionBase):  # type: ignore[misc]
    """Django's ``SessionStore`` on a sessionkeeper store (``SESSION_ENGINE`` names this module).

    ``SessionStore.bind(store, **options)`` makes a subclass on another store (tests, a second
    site, code outside settings).
    """

    #: set by :meth:`bind`; ``None``: read ``settings.SESSIONKEEPER``
    bound: ClassVar[Backend | None] = None
    _session_key: str | None  # Django's validating property; annotated for the type checker

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._loaded: dict[str, str] = {}  # encoded fields as last read from / written to the store
        self._meta: Meta | None = None  # the store's metadata; None: not (known to be) stored
        #: the client (ip, user agent) to record for device lists; set by :class:`SessionMiddleware`
        self.client: Client | None = None

    @classmethod
    def bind(
        cls, store: Store | str, config: SessionConfig | None = None, **options: Any
    ) -> type[SessionStore]:
        """A subclass whose sessions live in ``store`` with ``options`` (SessionConfig fields)."""
        return type(cls.__name__, (cls,), {"bound": backend_for(store, config, **options),
                                           "__module__": cls.__module__})

    @classmethod
    def backend(cls) -> Backend:
        """The store and options in use."""
        return cls.bound if cls.bound is not None else _settings_backend()

    @property
    def _cfg(self) -> SessionConfig:
        return self.backend().config

    # ---- keys ------------------------------------------------------------------------------

    def _validate_session_key(self, key: object) -> bool:
        # Only our tokens: anything else (Django's 32-character keys included) never
        # reaches the store.
        return isinstance(key, str) and ids.is_valid_token(key)

    def _get_new_session_key(self) -> str:
        token = self._cfg.token_factory()
        if not ids.is_valid_token(token):
            raise ConfigError(
                "token_factory must return tokens shaped like sessionkeeper.new_token() "
                "(43 base64url characters from 32 random bytes)"
            )
        return token

    async def _aget_new_session_key(self) -> str:
        return self._get_new_session_key()  # no uniqueness round trip: Create refuses a taken key

    # ---- the operations, each written once ---------------------------------------------------

    def _alive(self, record: Record, now: float) -> bool:
        meta = record.meta
        expiry_text = record.fields.get(EXPIRY_KEY)
        expiry = None
        if expiry_text is not None:
            try:
                expiry = codec.decode(expiry_text)
            except ValueError:
                expiry = None
        idle, absolute_at = _limits(self._cfg, expiry, meta.created_at)
        return now < meta.expires_at and now < meta.last_seen + idle and now < absolute_at

    def _forget(self) -> None:
        self._loaded, self._meta = {}, None

    def _fetch(self) -> Generator[Op, Any, Record | None]:
        """Read this session's record: live -> kept as the diff base; dead -> deleted, and
        the key dropped (a later save creates a new session under a new key)."""
        self._forget()
        token = self.session_key
        if token is None:
            return None
        now = self._cfg.clock()
        key = ids.storage_key(token)
        record: Record | None = yield Load(key, now)
        if record is not None and not self._alive(record, now):
            yield Delete(key)  # dead under today's limits: gone for every reader
            record = None
        if record is None:
            self._session_key = None
            return None
        self._loaded, self._meta = dict(record.fields), record.meta
        return record

    def _load_flow(self) -> Generator[Op, Any, dict[str, Any]]:
        record = yield from self._fetch()
        if record is None:
            return {}
        cfg = self._cfg
        t = cfg.timeouts
        if t.touch_due(record.meta.last_seen, cfg.clock()):
            # Keeps a session that is only read alive under the idle limit: Django's
            # middleware saves modified sessions, and this save writes metadata only.
            self.modified = True
        return _decode(record.fields)

    def _exists_flow(self, session_key: str | None) -> Generator[Op, Any, bool]:
        if not isinstance(session_key, str) or not ids.is_valid_token(session_key):
            return False
        now = self._cfg.clock()
        record: Record | None = yield Load(ids.storage_key(session_key), now)
        return record is not None and self._alive(record, now)

    def _encode(self, data: Mapping[Any, Any]) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in data.items():
            if type(key) is not str:
                raise SessionEncodeError(repr(key), f"session keys must be str, not {type(key).__name__}")
            out[key] = codec.encode(key, value)
        size = codec.encoded_size(out)
        if size > self._cfg.max_size:
            raise SessionTooLarge(size, self._cfg.max_size)
        return out

    def _next_meta(self, data: Mapping[str, Any], now: float) -> Meta:
        old = self._meta
        created = old.created_at if old is not None else now
        idle, absolute_at = _limits(self._cfg, data.get(EXPIRY_KEY), created)
        user = data.get(AUTH_USER_KEY)
        user_id = None if user is None else str(user)
        same_user = old is not None and old.user_id == user_id
        # auth_at: when this user signed in (Django's login() sets _auth_user_id once).
        auth_at = old.auth_at if old is not None and same_user else (now if user_id is not None else None)
        info = dict(old.info) if old is not None else {}
        if self.client is not None and not same_user:
            info.update(self.client.info())  # the device that signed in
        return Meta(created, now, min(now + idle, absolute_at), absolute_at, user_id, auth_at, info)

    def _delta(self, encoded: Mapping[str, str], meta: Meta) -> Delta:
        loaded = self._loaded
        changed = {k: v for k, v in encoded.items() if loaded.get(k) != v}
        return Delta(set=changed, delete=frozenset(k for k in loaded if k not in encoded), meta=meta)

    def _save_flow(self, must_create: bool = False) -> Generator[Op, Any, None]:
        if self.session_key is None:
            yield from self._create_flow()
            return
        now = self._cfg.clock()
        if must_create:
            data = self._get_session(no_load=True)
            encoded = self._encode(data)
            meta = self._next_meta(data, now)
            if not (yield Create(ids.storage_key(self.session_key), Record(encoded, meta))):
                raise CreateError
            self._loaded, self._meta = encoded, meta
            return
        if not hasattr(self, "_session_cache"):
            self._session_cache = yield from self._load_flow()
            if self.session_key is None:  # it was not there: a new session
                yield from self._create_flow()
                return
        elif self._meta is None:
            # Data set without loading (clear(), or a key given by hand): the diff needs the
            # stored fields, and a session that is not there is not written.
            token = self.session_key
            if (yield from self._fetch()) is None:
                self._session_key = token
                raise UpdateError
        assert self.session_key is not None
        data = self._session_cache
        encoded = self._encode(data)
        meta = self._next_meta(data, now)
        if not (yield Apply(ids.storage_key(self.session_key), self._delta(encoded, meta), now)):
            # Deleted meanwhile (logout in another request, revoked, expired): never brought
            # back. Django's middleware turns this into SessionInterrupted.
            self._forget()
            raise UpdateError
        self._loaded, self._meta = encoded, meta

    def _create_flow(self) -> Generator[Op, Any, None]:
        for _ in range(_CREATE_ATTEMPTS):
            self._session_key = self._get_new_session_key()
            try:
                yield from self._save_flow(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise StoreError(f"the store refused {_CREATE_ATTEMPTS} fresh session keys in a row")

    def _cycle_flow(self) -> Generator[Op, Any, None]:
        if hasattr(self, "_session_cache"):
            data = self._session_cache
            if self.session_key is not None and self._meta is None:
                yield from self._fetch()
        else:
            data = yield from self._load_flow()
        self._session_cache = data
        token = self.session_key
        if token is None or self._meta is None:
            yield from self._create_flow()  # never stored: a first save under a new key
            return
        now = self._cfg.clock()
        encoded = self._encode(data)
        meta = self._next_meta(data, now)
        delta = self._delta(encoded, meta)
        new = self._get_new_session_key()
        if (yield Rename(ids.storage_key(token), ids.storage_key(new), delta, now)):
            self._session_key = new
            self._loaded, self._meta = encoded, meta
            self.modified = True
            return
        # Gone meanwhile (logged out elsewhere, revoked): what it held must not come back.
        # Only what this request wrote moves into a brand-new session.
        self._session_cache = {k: data[k] for k in delta.set}
        self._forget()
        self._session_key = None
        yield from self._create_flow()

    def _delete_flow(self, session_key: str | None) -> Generator[Op, Any, None]:
        if session_key is None:
            session_key = self.session_key
            if session_key is None:
                return
        if session_key == self.session_key:
            self._forget()
        if ids.is_valid_token(session_key):
            yield Delete(ids.storage_key(session_key))

    # ---- Django's API: sync -----------------------------------------------------------------

    def _run(self, flow: Generator[Op, Any, Any]) -> Any:
        return run_sync(flow, self.backend().store)

    def load(self) -> dict[str, Any]:
        """The stored data (``{}`` for a missing or expired session, whose key is dropped)."""
        result: dict[str, Any] = self._run(self._load_flow())
        return result

    def exists(self, session_key: str | None) -> bool:
        """Whether a live session has this key."""
        return bool(self._run(self._exists_flow(session_key)))

    def create(self) -> None:
        """Save the current data (usually none) under a new key."""
        self._run(self._create_flow())

    def save(self, must_create: bool = False) -> None:
        """Write the keys changed since loading; ``UpdateError`` if the session is gone."""
        self._run(self._save_flow(must_create))

    def delete(self, session_key: str | None = None) -> None:
        """Delete the session under ``session_key`` (default: this one) from the store."""
        self._run(self._delete_flow(session_key))

    def cycle_key(self) -> None:
        """Move the session to a new key atomically, keeping its data (and binding the user)."""
        self._run(self._cycle_flow())

    @classmethod
    def _purge_flow(cls) -> Generator[Op, Any, int]:
        backend = cls.backend()
        total, batch = 0, 500
        while True:
            removed: int = yield Purge(backend.config.clock(), batch)
            total += removed
            if removed < batch:
                return total

    @classmethod
    def clear_expired(cls) -> None:
        """Remove expired sessions (Django's ``clearsessions`` command)."""
        run_sync(cls._purge_flow(), cls.backend().store)

    # ---- Django's API: async (the same generators, the store's async face) ------------------

    async def _arun(self, flow: Generator[Op, Any, Any]) -> Any:
        return await run_async(flow, self.backend().store)

    async def aload(self) -> dict[str, Any]:
        """Async :meth:`load`."""
        result: dict[str, Any] = await self._arun(self._load_flow())
        return result

    async def aexists(self, session_key: str | None) -> bool:
        """Async :meth:`exists`."""
        return bool(await self._arun(self._exists_flow(session_key)))

    async def acreate(self) -> None:
        """Async :meth:`create`."""
        await self._arun(self._create_flow())

    async def asave(self, must_create: bool = False) -> None:
        """Async :meth:`save`."""
        await self._arun(self._save_flow(must_create))

    async def adelete(self, session_key: str | None = None) -> None:
        """Async :meth:`delete`."""
        await self._arun(self._delete_flow(session_key))

    async def acycle_key(self) -> None:
        """Async :meth:`cycle_key`."""
        await self._arun(self._cycle_flow())

    @classmethod
    async def aclear_expired(cls) -> None:
        """Async :meth:`clear_expired`."""
        await run_async(cls._purge_flow(), cls.backend().store)


class SessionMiddleware(_DjangoSessionMiddleware):  # type: ignore[misc]
    """Django's ``SessionMiddleware`` that also records the client's IP address and browser
    with a session when a user signs in, for device lists
    (:meth:`sessionkeeper.SessionManager.devices`). Optional: Django's own middleware works,
    the device list then shows no IP and an "unknown" browser.

    The IP is ``REMOTE_ADDR``: behind a proxy, set it from the forwarded header in a
    middleware of your own first.
    """

    def process_request(self, request: Any) -> None:
        super().process_request(request)
        session = request.session
        if isinstance(session, SessionStore):
            meta: Mapping[str, str] = request.META
            session.client = Client(meta.get("REMOTE_ADDR") or None, meta.get("HTTP_USER_AGENT"))

