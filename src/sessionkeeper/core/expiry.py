"""Expiry a person can see: the decisions behind the status and extend endpoints and the
``Session-Expires`` response header, as pure functions (the adapters do the I/O).

Rules:

- The *status* endpoint (``GET <prefix>/status``) answers from the record as loaded: it never
  counts as activity. The adapter runs :meth:`SessionFlow.load` and never ``commit``, so a
  poll makes no store write, no touch and sends no ``Set-Cookie``: an open tab that polls
  cannot keep a session alive.
- The *extend* endpoint (``POST <prefix>/extend``) slides the idle expiry to
  ``now + idle``, never past the absolute limit (:func:`extended`). It is an unsafe request:
  it passes only the library's same-origin check (``Sec-Fetch-Site`` / ``Origin``, whatever
  the ``csrf`` option says) *and* carries ``X-Requested-With: sessionkeeper`` (a custom
  header, which a cross-site form cannot send and a cross-site ``fetch`` cannot send without
  a CORS preflight this endpoint never grants).
- The *end* endpoint (``POST <prefix>/end``, same checks) signs the session out: the
  client's "Sign out" button, usable without knowing the app's own logout form.
- Every response to a request that read a live session carries
  ``Session-Expires: idle=<epoch>, absolute=<epoch>`` (an RFC 8941 dictionary of integer
  seconds since the epoch): the expiry *after* this request, i.e. as written if the request
  saved the session, else as loaded. A page learns it from its own ``fetch`` calls.
- The times are the ones the server enforces: :func:`.lifecycle.alive` judges a session by
  ``last_seen + idle`` (its own limits after ``remember()``), the stored ``expires_at`` and
  the absolute window, so :func:`expiry_of` takes the earliest of those.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigError
from .clock import Timeouts
from .lifecycle import limits, window_start
from .records import Apply, Create, Meta, Op, Rename

#: Name of the response header that carries a read session's expiry.
HEADER = "Session-Expires"
#: The header the browser client sends on extend / end (with value :data:`REQUESTED_WITH`).
REQUESTED_WITH_HEADER = "X-Requested-With"
REQUESTED_WITH = "sessionkeeper"

Endpoint = Literal["status", "extend", "end", "client.js", "client.css"]
#: Which method each endpoint answers.
METHODS: Mapping[str, str] = {
    "status": "GET", "extend": "POST", "end": "POST", "client.js": "GET", "client.css": "GET",
}
_PREFIX_RE = re.compile(r"(/[A-Za-z0-9._~-]+)+")


def checked_prefix(value: object) -> str | None:
    """The ``expiry_endpoints`` option, checked: ``None`` (off) or a path such as
    ``"/_session"`` (no trailing slash, no query, plain path characters)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _PREFIX_RE.fullmatch(value):
        raise ConfigError(
            f"expiry_endpoints must be None (off) or a path like '/_session' (a leading "
            f"slash, no trailing slash, letters, digits and ._~- only), not {value!r}"
        )
    return value


def route(prefix: str | None, path: str) -> Endpoint | None:
    """Which expiry endpoint ``path`` names under ``prefix``, or ``None`` (the app's own)."""
    if prefix is None or not path.startswith(prefix + "/"):
        return None
    name = path[len(prefix) + 1:]
    return name if name in METHODS else None  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Expiry:
    """When a session dies if nobody uses it (``idle_at``) and at the latest (``absolute_at``),
    in seconds since the epoch. ``idle_at <= absolute_at`` always."""

    idle_at: float
    absolute_at: float

    def header(self) -> str:
        """The ``Session-Expires`` header value: ``idle=<int>, absolute=<int>``.

        Rounded *down*, so a page never believes it has longer than the server grants."""
        return f"idle={math.floor(self.idle_at)}, absolute={math.floor(self.absolute_at)}"


def expiry_of(meta: Meta, timeouts: Timeouts) -> Expiry:
    """The expiry the server enforces for a session with ``meta`` under ``timeouts`` (the
    config's; a remembered session's own limits are taken from its metadata)."""
    t = limits(meta, timeouts)
    absolute_at = min(meta.absolute_at, window_start(meta) + t.absolute)
    idle_at = min(meta.expires_at, meta.last_seen + t.idle, absolute_at)
    return Expiry(idle_at, absolute_at)


def extended(meta: Meta, now: float, timeouts: Timeouts) -> Expiry:
    """The expiry after an extend at ``now``: idle slides to ``now + idle``, capped by the
    absolute limit (an extend can never outlive it)."""
    t = limits(meta, timeouts)
    absolute_at = expiry_of(meta, timeouts).absolute_at
    return Expiry(min(now + t.idle, absolute_at), absolute_at)


def written_meta(op: Op) -> Meta | None:
    """The metadata ``op`` writes for the request's session, if it writes any (the save of
    a request: a create, a delta with metadata, a rename)."""
    if isinstance(op, Create):
        return op.record.meta
    if isinstance(op, Apply | Rename):
        return op.delta.meta
    return None


def parse_header(value: str) -> Expiry | None:
    """A ``Session-Expires`` value back as an :class:`Expiry`; ``None`` if it is not one
    (what the browser client accepts: both members, non-negative integers)."""
    found: dict[str, int] = {}
    for part in value.split(","):
        name, eq, number = part.strip().partition("=")
        if not eq or name not in ("idle", "absolute") or name in found:
            return None
        if not number.isascii() or not number.isdigit() or len(number) > 15:
            return None
        found[name] = int(number)
    if set(found) != {"idle", "absolute"} or found["idle"] > found["absolute"]:
        return None
    return Expiry(float(found["idle"]), float(found["absolute"]))


def status_body(
    meta: Meta | None, now: float, timeouts: Timeouts, *, expiry: Expiry | None = None
) -> dict[str, Any]:
    """The JSON object the status and extend endpoints answer.

    ``{"active": false}`` when there is no live session; otherwise ``active``,
    ``authenticated`` (a user is signed in), ``now``, ``idle_expires_at``,
    ``absolute_expires_at`` (epoch seconds) and ``idle_remaining`` / ``absolute_remaining``
    (whole seconds, never negative: a client counts down from these with its own clock, so a
    wrong clock on the user's machine does not matter). ``expiry`` overrides the one computed
    from ``meta`` (the extend endpoint passes the extended one)."""
    if meta is None:
        return {"active": False, "authenticated": False, "now": math.floor(now)}
    e = expiry if expiry is not None else expiry_of(meta, timeouts)
    return {
        "active": True,
        "authenticated": meta.user_id is not None,
        "now": math.floor(now),
        "idle_expires_at": math.floor(e.idle_at),
        "absolute_expires_at": math.floor(e.absolute_at),
        "idle_remaining": max(0, math.floor(e.idle_at - now)),
        "absolute_remaining": max(0, math.floor(e.absolute_at - now)),
    }


def json_body(body: Mapping[str, Any]) -> bytes:
    """Compact JSON bytes of an endpoint answer."""
    return json.dumps(body, separators=(",", ":")).encode()


def unsafe_allowed(same_origin: bool, requested_with: str | None) -> bool:
    """Whether an extend / end request may proceed: it passed the same-origin check and sent
    ``X-Requested-With: sessionkeeper`` (both; either alone is not enough)."""
    return same_origin and (requested_with or "").strip().lower() == REQUESTED_WITH


#: Headers of every endpoint answer: never cached, never sniffed as something else.
ANSWER_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
)

__all__ = [
    "ANSWER_HEADERS",
    "HEADER",
    "METHODS",
    "REQUESTED_WITH",
    "REQUESTED_WITH_HEADER",
    "Endpoint",
    "Expiry",
    "checked_prefix",
    "expiry_of",
    "extended",
    "json_body",
    "parse_header",
    "route",
    "status_body",
    "unsafe_allowed",
    "written_meta",
]
