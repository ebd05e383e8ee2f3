"""Account-security operations outside the request's own save: "your devices" and revocation.

Each is a generator of store operations (like :mod:`.flow`), run by the sync or async driver,
so the logic exists once. Devices are named by their public id (a short hash of the storage
key); no token or storage key leaves this module.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from .clock import Timeouts
from .events import SessionEvent
from .ids import public_id
from .records import Delete, ListUser, Meta, Op


@dataclass(frozen=True, slots=True)
class Device:
    """One live session of a user, as shown on an account-security page."""

    session_id: str  # public id: pass it back to revoke this one
    created_at: datetime
    last_seen: datetime
    expires_at: datetime
    auth_at: datetime | None
    ip: str | None
    user_agent: str  # summarised: "Firefox on Linux"
    current: bool  # the session of the request that asked


# ---- a session's own limits ("remember me") ---------------------------------------------------
# ``Session.remember()`` gives one session its own idle and absolute limits; they are kept in
# ``Meta.info`` (float text, small keys) so that every later request, and the device list, judge
# the session by them. ``LIMITS_SINCE`` is when the limits last changed (remember or forget): the
# absolute window counts from there, not from creation, so that ``forget()`` on a session older
# than the normal absolute limit returns it to the normal limits instead of killing it. Calling
# ``remember()`` again with the same limits changes nothing (Flask apps set
# ``session.permanent = True`` on every request: that must not restart the absolute window).
OWN_IDLE = "pi"
OWN_ABSOLUTE = "pa"
LIMITS_SINCE = "ps"


def _num(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and value == value and value > 0 else None  # no nan


def own_limits(meta: Meta) -> tuple[float, float] | None:
    """The session's own ``(idle, absolute)`` limits in seconds, or ``None`` (the config's)."""
    idle, absolute = _num(meta.info.get(OWN_IDLE)), _num(meta.info.get(OWN_ABSOLUTE))
    return None if idle is None or absolute is None else (idle, absolute)


def limits(meta: Meta, default: Timeouts) -> Timeouts:
    """The timeouts that apply to this session: its own (``remember()``) or ``default``."""
    own = own_limits(meta)
    if own is None:
        return default
    touch = default.touch_interval
    return Timeouts(own[0], own[1], touch if touch is not None and touch < own[0] else None)


def window_start(meta: Meta) -> float:
    """Where the absolute limit counts from: creation, or the last change of the limits."""
    since = _num(meta.info.get(LIMITS_SINCE))
    return meta.created_at if since is None else since


def with_limits(meta: Meta, own: tuple[float, float] | None, default: Timeouts, now: float) -> Meta:
    """``meta`` with its own limits set to ``own`` (``None``: back to ``default``), the absolute
    window restarting at ``now``. The very same object when nothing changes."""
    if own == own_limits(meta):
        return meta
    info = {k: v for k, v in meta.info.items() if k not in (OWN_IDLE, OWN_ABSOLUTE)}
    info[LIMITS_SINCE] = repr(now)
    if own is not None:
        info[OWN_IDLE], info[OWN_ABSOLUTE] = repr(own[0]), repr(own[1])
    t = limits(replace(meta, info=info), default)
    absolute_at = now + t.absolute
    return replace(meta, info=info, absolute_at=absolute_at,
                   expires_at=t.expires_at(max(meta.last_seen, now), absolute_at))


def alive(meta: Meta, now: float, timeouts: Timeouts) -> bool:
    """Whether a session is alive at ``now`` under *today's* timeouts (a store only knows the
    expiry written when the session was last saved, perhaps under longer timeouts), or under
    the session's own limits when the app gave it some with ``Session.remember()``."""
    t = limits(meta, timeouts)
    return not (now >= meta.expires_at or now >= meta.last_seen + t.idle
                or now >= window_start(meta) + t.absolute)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def device(key: str, meta: Meta, secret: bytes, current_key: str | None) -> Device:
    return Device(
        session_id=public_id(key, secret),
        created_at=_dt(meta.created_at),
        last_seen=_dt(meta.last_seen),
        expires_at=_dt(meta.expires_at),
        auth_at=None if meta.auth_at is None else _dt(meta.auth_at),
        ip=meta.info.get("ip") or None,
        user_agent=meta.info.get("ua", "unknown"),
        current=key == current_key,
    )


def list_devices(
    user_id: str, now: float, secret: bytes, current_key: str | None = None,
    timeouts: Timeouts | None = None,
) -> Generator[Op, Any, list[Device]]:
    """The user's live sessions (under ``timeouts`` when given), most recently used first."""
    rows: list[tuple[str, Meta]] = yield ListUser(user_id, now)
    devices = [device(k, m, secret, current_key) for k, m in rows
               if m.user_id == user_id and (timeouts is None or alive(m, now, timeouts))]
    devices.sort(key=lambda d: d.last_seen, reverse=True)
    return devices


def revoke(
    user_id: str,
    now: float,
    secret: bytes,
    *,
    session_id: str | None = None,
    keep_key: str | None = None,
    reason: str = "revoked",
) -> Generator[Op, Any, list[SessionEvent]]:
    """Delete the user's sessions: the one named ``session_id``, or all but ``keep_key``.

    Returns one ``revoked`` event per session deleted.

    A session renewed between the listing and its deletion has moved to a new key: the
    delete misses it. Revoking all (or all others) therefore lists again after such a miss,
    a few rounds at most, so that "log out everywhere" leaves nothing behind. (A single
    session named by its public id is not followed: its id changed with the renewal.)
    """
    events: list[SessionEvent] = []
    for _round in range(_ROUNDS):
        rows: list[tuple[str, Meta]] = yield ListUser(user_id, now)
        missed = False
        for key, meta in rows:
            if key == keep_key or meta.user_id != user_id:
                continue
            pid = public_id(key, secret)
            if session_id is not None and pid != session_id:
                continue
            if (yield Delete(key)):
                events.append(SessionEvent("revoked", now, pid, user_id, {"reason": reason}))
            else:
                missed = True
        if session_id is not None or not missed:
            break
    return events


_ROUNDS = 3
