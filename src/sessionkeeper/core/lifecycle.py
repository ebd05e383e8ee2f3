"""Account-security operations outside the request's own save: "your devices" and revocation.

Each is a generator of store operations (like :mod:`.flow`), run by the sync or async driver,
so the logic exists once. Devices are named by their public id (a short hash of the storage
key); no token or storage key leaves this module.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from .clock import Timeouts
from .events import SessionEvent
from .ids import public_id
from .records import Delete, ListUser, Meta, Op

log = logging.getLogger("sessionkeeper")


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
# the session by them.
# The absolute limit bounds one sign-in (ASVS V7.3.2): it counts from the last authentication
# (``auth_at``), or from creation for a session nobody signed in to, never from a change of the
# limits. Otherwise a client holding the cookie (its owner, or a thief with a copy) could stay
# signed in for ever by toggling an app's "keep me signed in" switch. So:
# - ``remember()`` sets the end to that start + its absolute limit;
# - ``forget()`` can only bring the end closer: min(current end, now + the normal absolute
#   limit). A session older than the normal absolute limit is returned to the normal limits
#   rather than killed, and ``LIMITS_SINCE`` (when forget() did that) is where "today's"
#   normal absolute limit counts from for it (always within the stored end).
# Calling ``remember()`` again with the same limits changes nothing (Flask apps set
# ``session.permanent = True`` on every request).
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


def sign_in_start(meta: Meta) -> float:
    """When this sign-in began: the last authentication, or creation if nobody signed in."""
    return meta.created_at if meta.auth_at is None else meta.auth_at


def window_start(meta: Meta) -> float:
    """Where the absolute limit counts from: the sign-in for a remembered session; for any
    other, creation, or the ``forget()`` that returned it to the normal limits."""
    if own_limits(meta) is not None:
        return sign_in_start(meta)
    since = _num(meta.info.get(LIMITS_SINCE))
    return meta.created_at if since is None else since


def with_limits(meta: Meta, own: tuple[float, float] | None, default: Timeouts, now: float) -> Meta:
    """``meta`` with its own limits set to ``own`` (``None``: back to ``default``). The absolute
    end becomes the sign-in's start + ``own``'s absolute limit, or, back to ``default``, at most
    ``now`` + its absolute limit (never later than it was). The same object when nothing changes."""
    if own == own_limits(meta):
        return meta
    info = {k: v for k, v in meta.info.items() if k not in (OWN_IDLE, OWN_ABSOLUTE, LIMITS_SINCE)}
    if own is not None:
        info[OWN_IDLE], info[OWN_ABSOLUTE] = repr(own[0]), repr(own[1])
        absolute_at = sign_in_start(meta) + own[1]
    else:
        info[LIMITS_SINCE] = repr(now)
        absolute_at = min(meta.absolute_at, now + default.absolute)
    t = limits(replace(meta, info=info), default)
    return replace(meta, info=info, absolute_at=absolute_at,
                   expires_at=t.expires_at(max(meta.last_seen, now), absolute_at))


def remember_limits(idle: float | None, absolute: float | None, remember: Timeouts) -> tuple[float, float]:
    """A session's own ``(idle, absolute)`` from ``remember(idle, absolute)`` (``None``: the
    ``remember_*`` options, ``remember``). The absolute limit is capped at
    ``remember_absolute_timeout`` in every adapter (as Django's ``set_expiry`` is): the option
    is the deployment's bound on one sign-in, which app code (``login_user(duration=...)``,
    a "remember me for a year" form) must not exceed. Capping is logged once, with the fix."""
    global _capped_warned
    wanted = remember.absolute if absolute is None else absolute
    capped = min(wanted, remember.absolute)
    if capped < wanted and not _capped_warned:
        _capped_warned = True
        log.warning(
            "remember(absolute=%g s) is longer than remember_absolute_timeout (%g s): the session "
            "is remembered for %g s. Raise remember_absolute_timeout to allow longer sign-ins.",
            wanted, remember.absolute, capped,
        )
    return min(remember.idle if idle is None else idle, capped), capped


_capped_warned = False


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
