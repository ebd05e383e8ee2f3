"""Sessions seen from outside one request's own save: list a user's devices, revoke one, the
others, or all; purge the expired ones. For account-security pages (with the current session)
and for admins (code, CLI, cron). Each method has a sync form and an async ``a``-form; both
run the same generator (from :mod:`sessionkeeper.core.lifecycle`, or :func:`purge_expired`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeGuard

from ._adapter import resolve_config, resolve_store
from .core.config import SessionConfig
from .core.events import SessionEvent
from .core.ids import public_id
from .core.lifecycle import Device, list_devices, revoke
from .core.records import Op, Purge, PurgeReport
from .core.session import Session
from .dispatch import emit_async, emit_sync
from .drivers import run_async, run_sync
from .stores.base import Store

__all__ = ["Device", "SessionManager"]


class SessionManager:
    """Device listing, revocation and purging over ``store``; revocations emit ``revoked``
    events, purges ``expired`` events.

    A revoked session is gone from the store, so it is dead at once on every app server that
    shares the store.
    """

    def __init__(self, store: Store | str, config: SessionConfig | None = None, **options: Any) -> None:
        """``store`` is a :class:`~sessionkeeper.Store` or a store URL; ``config``/``options``
        as for the middleware (the same ``id_secret`` names the same sessions)."""
        self.config = SessionConfig.from_options(resolve_config(config, "SessionManager"), **options)
        self.store = resolve_store(store, "SessionManager")

    def _secret(self) -> bytes:
        return self.config.id_secret_bytes

    @staticmethod
    def _current(session: Session | None) -> tuple[str | None, str | None]:
        if session is None:
            return None, None
        return session.user_id, session.storage_key

    def _emit(self, events: list[SessionEvent]) -> int:
        emit_sync(self.config.on_event, events)
        return len(events)

    async def _aemit(self, events: list[SessionEvent]) -> int:
        await emit_async(self.config.on_event, events)
        return len(events)

    # ---- listing --------------------------------------------------------------------------

    def devices(self, user_id: str | None = None, *, current: Session | None = None) -> list[Device]:
        """Live sessions of ``user_id`` (default: the user of ``current``), newest use first."""
        uid, key = self._current(current)
        uid = user_id if user_id is not None else uid
        if not _user(uid):
            return []
        return run_sync(self._list(uid, key), self.store)

    async def adevices(self, user_id: str | None = None, *, current: Session | None = None) -> list[Device]:
        """Async :meth:`devices`."""
        uid, key = self._current(current)
        uid = user_id if user_id is not None else uid
        if not _user(uid):
            return []
        return await run_async(self._list(uid, key), self.store)

    def _list(self, user_id: str, current_key: str | None) -> Any:
        cfg = self.config
        return list_devices(user_id, cfg.clock(), self._secret(), current_key, cfg.timeouts)

    # ---- revocation -----------------------------------------------------------------------

    def _plan(self, user_id: str, session_id: str | None, keep: str | None, reason: str) -> Any:
        return revoke(user_id, self.config.clock(), self._secret(),
                      session_id=session_id, keep_key=keep, reason=reason)

    def revoke(self, user_id: str | None, session_id: str) -> bool:
        """Revoke the session named ``session_id`` (a :attr:`Device.session_id`) of ``user_id``.
        False if ``user_id`` has no such live session (or is ``None``: nobody signed in)."""
        if not _user(user_id):
            return False
        return self._emit(run_sync(self._plan(user_id, session_id, None, "revoked"), self.store)) > 0

    async def arevoke(self, user_id: str | None, session_id: str) -> bool:
        """Async :meth:`revoke`."""
        if not _user(user_id):
            return False
        events = await run_async(self._plan(user_id, session_id, None, "revoked"), self.store)
        return await self._aemit(events) > 0

    def revoke_all(self, user_id: str | None) -> int:
        """Revoke every session of ``user_id``; returns how many (0 for ``None``)."""
        if not _user(user_id):
            return 0
        return self._emit(run_sync(self._plan(user_id, None, None, "revoke_all"), self.store))

    async def arevoke_all(self, user_id: str | None) -> int:
        """Async :meth:`revoke_all`."""
        if not _user(user_id):
            return 0
        return await self._aemit(await run_async(self._plan(user_id, None, None, "revoke_all"), self.store))

    def revoke_others(self, current: Session) -> int:
        """"Log out my other devices": revoke every session of ``current``'s user but it."""
        uid, key = self._current(current)
        if uid is None:
            return 0
        return self._emit(run_sync(self._plan(uid, None, key, "revoke_others"), self.store))

    async def arevoke_others(self, current: Session) -> int:
        """Async :meth:`revoke_others`."""
        uid, key = self._current(current)
        if uid is None:
            return 0
        return await self._aemit(await run_async(self._plan(uid, None, key, "revoke_others"), self.store))


    # ---- purging --------------------------------------------------------------------------

    def purge(self, *, batch: int = 500, now: float | None = None) -> int:
        """Remove the sessions expired at ``now`` (default: the config's clock) from the store,
        in batches of ``batch``, and emit one ``expired`` event per session removed
        (``detail``: ``reason="purge"`` and the session's ``expires_at``), so that an audit
        trail shows sessions that ended unseen, not only those a request found dead.

        Returns how many records went, as :meth:`Store.purge`
        counts them: expired renewal aliases are removed and counted too, but they are not
        sessions and get no event. Run it from a scheduled job. The removed sessions are held
        in memory until it returns (a few hundred bytes each); for a backlog of millions use
        ``sessionkeeper purge --events``, which works in chunks.
        On Redis, which expires sessions by itself, only the sessions expired by this clock but
        not yet by Redis's are removed here (see the events page of the docs for what Redis
        can and cannot report)."""
        cfg = self.config
        removed, events = run_sync(purge_expired(cfg.clock() if now is None else now, batch,
                                                 self._secret(), cfg.clock), self.store)
        self._emit(events)
        return removed

    async def apurge(self, *, batch: int = 500, now: float | None = None) -> int:
        """Async :meth:`purge`."""
        cfg = self.config
        removed, events = await run_async(purge_expired(cfg.clock() if now is None else now, batch,
                                                        self._secret(), cfg.clock), self.store)
        await self._aemit(events)
        return removed


def purge_expired(
    now: float, batch: int, secret: bytes, clock: Callable[[], float],
) -> Generator[Op, Any, tuple[int, list[SessionEvent]]]:
    """Purge what expired at ``now``; return the records removed and one ``expired`` event per
    session among them, dated by ``clock()`` when the purge returned (the moment they were
    seen gone), named by public id, never by key."""
    report: PurgeReport = yield Purge(now, batch, report=True)
    at = float(clock())
    return report.removed, [
        SessionEvent("expired", at, public_id(key, secret), meta.user_id,
                     {"reason": "purge", "expires_at": repr(float(meta.expires_at))})
        for key, meta in report.sessions
    ]


def _user(user_id: object) -> TypeGuard[str]:
    """A user id to look up: a non-empty string (``None`` means nobody is signed in)."""
    return isinstance(user_id, str) and user_id != ""
