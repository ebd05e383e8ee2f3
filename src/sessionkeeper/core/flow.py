"""One request, start to end, as pure decisions. The adapters do the I/O.

1. :meth:`SessionFlow.begin` turns what the adapter read off the request (:class:`RequestInfo`)
   into a :class:`RequestState`: the token from the configured transport only (cookie, header
   or URL). Absent, repeated, oversized or malformed -> no token: no store call is made for it.
   With ``csrf`` on, a cross-site unsafe request is refused here, before the app runs.
2. :meth:`SessionFlow.load` is a generator of store operations returning the live record or
   ``None``. It enforces the *current* timeouts, or the session's own ones after
   ``remember()`` (strict mode: a value the store does not hold is never adopted), follows a
   renewal alias during its grace window, checks the client's fingerprint against the one
   recorded at login and applies the anomaly policy (:mod:`.anomaly`), and notices bursts of
   unknown IDs. Adapters run it eagerly (ASGI) or on first access (WSGI, Flask).
3. After the app, :meth:`SessionFlow.commit` is a generator too: it yields the store operations
   that save the session and returns the headers to add. Untouched, unchanged and no touch
   due -> it yields nothing. Audit events collect in ``RequestState.events`` for the adapter
   to hand to subscribers.

The drivers in :mod:`sessionkeeper.drivers` run the generators against a store, sync or async.

Fingerprint drift (``anomaly_policy``), decided by :func:`.anomaly.respond`. The drifted
request is the one that loses; no policy hands it a cookie for the signed-in session:

- ``"ignore"``: nothing happens. ``"log"`` (default): one ``anomaly`` event per drifted
  client; both clients keep using the session (detection only).
- ``"reauthenticate"``: the session stays signed in, but its authentication time is dropped:
  the owner must re-enter the password before a sensitive action, and the drifted request sees
  ``recently_authenticated()`` False, always.
- ``"rotate"``: the drifted request's token is not honoured: it gets a fresh anonymous
  session, and a cookie replacing (or deleting) the stolen one; the owner's session, its ID and
  cookie are left exactly as they were.
- ``"revoke"``: the session is deleted; both clients start anonymous.

In a drifted request the flow itself never renews, re-sends or refreshes the session's token.

Persistent sessions ("remember me", :meth:`Session.remember`): the session's own idle and
absolute limits are kept in its metadata (:func:`.lifecycle.limits`) and govern expiry, touches
and the cookie, which then carries ``Max-Age`` = seconds left until the absolute limit, set
whenever the token is handed out (create, rotation, the change itself).

A ``Secure`` cookie set in answer to plain HTTP for a host that is not loopback is dropped by
the browser: :func:`warn_insecure_cookie` logs that once per process, with the fixes.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import parse_qs

from ..errors import ConfigError
from . import anomaly, ids
from .clock import Timeouts
from .config import SessionConfig, normalize_origin
from .cookies import MAX_VALUE, read_token
from .events import EventKind, SessionEvent
from .fingerprint import Client, ip_prefix
from .lifecycle import alive, limits, own_limits, remember_limits, with_limits
from .probing import ProbeMonitor
from .records import Apply, Create, Delete, Delta, ListUser, Load, Meta, Op, Record, Rename
from .session import Session

log = logging.getLogger("sessionkeeper")

Headers = list[tuple[str, str]]
S = TypeVar("S", bound=Session)
CommitFlow = Generator[Op, Any, Headers]
LoadFlow = Generator[Op, Any, "Record | None"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_ROTATED_AT = "rot"  # Meta.info key: when the ID was last renewed (float text)


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the adapter read off the request; plain strings, nothing parsed yet."""

    method: str = "GET"
    cookie: str | None = None  # the Cookie header(s), joined with "; "
    header_token: str | None = None  # the configured token header's value(s), joined with ","
    query: str = ""  # the raw query string
    ip: str | None = None
    user_agent: str | None = None
    origin: str | None = None
    sec_fetch_site: str | None = None
    host: str | None = None  # the Host header
    scheme: str = "http"

    def __repr__(self) -> str:
        # Never the Cookie header, the token header or the query (the URL transport's token):
        # reprs end up in logs and in tracebacks that record local variables.
        return (
            f"RequestInfo(method={self.method!r}, cookie={_hidden(self.cookie)}, "
            f"header_token={_hidden(self.header_token)}, query={_hidden(self.query or None)}, "
            f"ip={self.ip!r}, user_agent={self.user_agent!r}, origin={self.origin!r}, "
            f"sec_fetch_site={self.sec_fetch_site!r}, host={self.host!r}, scheme={self.scheme!r})"
        )

    @property
    def own_origin(self) -> str | None:
        """``scheme://host[:port]`` of this request (what a same-origin ``Origin`` says)."""
        return None if self.host is None else f"{self.scheme}://{self.host}".lower()

    @property
    def client(self) -> Client:
        return Client(self.ip, self.user_agent)


@dataclass(slots=True)
class RequestState:
    """Per-request state shared by load and commit."""

    info: RequestInfo
    token: str | None  # well-formed token whose session is (to be) loaded
    csrf_failed: bool = False
    resend: bool = False  # the client holds a renewed-away token: send it the current one
    renew: bool = False  # periodic renewal due (rotation with a grace window)
    drifted: bool = False  # fingerprint drift: the flow hands this request no token of its own
    refused: bool = False  # the anomaly policy refused the token: tell the client to drop it
    force_write: bool = False  # metadata changed by policy: save even if the app did not
    key: str | None = None  # storage key of the loaded session (saves hashing the token twice)
    events: list[SessionEvent] = field(default_factory=list)

    def __repr__(self) -> str:
        return (
            f"RequestState(info={self.info!r}, token={_hidden(self.token)}, "
            f"key={_hidden(self.key)}, csrf_failed={self.csrf_failed}, resend={self.resend}, "
            f"renew={self.renew}, drifted={self.drifted}, refused={self.refused}, "
            f"force_write={self.force_write}, events={self.events!r})"
        )

    def take_events(self) -> list[SessionEvent]:
        events, self.events = self.events, []
        return events


def _hidden(value: str | None) -> str:
    return "None" if value is None else f"<hidden, {len(value)} chars>"


# ---- Secure cookies over plain HTTP ----------------------------------------------------------
# Browsers drop a Secure cookie set over plain HTTP, except for loopback hosts (which they treat
# as secure contexts). The app then sees a new session on every request and nothing says why.

_INSECURE_WARNING = (
    "sessionkeeper sets the session cookie with the Secure attribute, but this request came "
    "over plain HTTP for host %r: the browser will drop the cookie, so every request starts a "
    "new session (nobody stays signed in). Fix: serve the app over HTTPS, or behind a proxy "
    "that tells it the scheme (uvicorn --proxy-headers / --forwarded-allow-ips, werkzeug's "
    "ProxyFix); for local development over HTTP pass secure=False; in tests use "
    "TestClient(app, base_url=\"https://testserver\"). (Logged once per process.)"
)
_warned = False


def reset_insecure_cookie_warning() -> None:
    """Let :func:`warn_insecure_cookie` log again (for tests)."""
    global _warned
    _warned = False


def host_name(host: str) -> str:
    """The name or address in a ``Host`` header: no port, no IPv6 brackets, lowercase, no
    trailing dot (``"[::1]:8000"`` -> ``"::1"``, ``"Example.COM.:80"`` -> ``"example.com"``)."""
    value = host.strip(" \t").lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    name, sep, port = value.rpartition(":")
    if sep and ":" not in name and (port == "" or port.isdigit()):
        value = name
    return value.rstrip(".")


def is_loopback_host(host: str) -> bool:
    """True for hosts browsers treat as secure even over plain HTTP: ``localhost``,
    ``*.localhost``, 127.0.0.0/8 and ``::1`` (with or without a port)."""
    name = host_name(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        addr = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def warn_insecure_cookie(info: RequestInfo) -> bool:
    """Log (once per process) that a ``Secure`` cookie answering this plain-HTTP request will
    be dropped by the browser. Returns whether it logged."""
    global _warned
    if _warned or info.scheme != "http" or not info.host or is_loopback_host(info.host):
        return False
    _warned = True
    log.warning(_INSECURE_WARNING, host_name(info.host)[:255])
    return True


def csrf_allowed(info: RequestInfo, trusted: tuple[str, ...] = ()) -> bool:
    """Whether an unsafe request may proceed: same-origin by ``Sec-Fetch-Site``, or by
    ``Origin`` when the browser sent no fetch metadata. Requests with neither (non-browser
    clients) pass: they do not carry a browser's ambient cookies against the user's will.
    Origins compare as browsers write them (case, a trailing slash and default ports aside).
    Adapters pass websocket handshakes as method ``WEBSOCKET``: unsafe, since a cross-site page
    can open a websocket that carries the user's cookies."""
    if info.method.upper() in SAFE_METHODS:
        return True
    origin = normalize_origin(info.origin) if info.origin and info.origin.strip() else None
    if origin is not None and origin in trusted:
        return True
    site = (info.sec_fetch_site or "").strip().lower()
    if site:
        return site in ("same-origin", "none")
    if origin is None:
        return True
    return origin != "null" and info.own_origin is not None and origin == normalize_origin(info.own_origin)


class SessionFlow:
    """The per-application request logic, configured once by a :class:`SessionConfig`."""

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.cookie_name = config.cookie.cookie_name
        self.secret = config.id_secret_bytes
        self.monitor = ProbeMonitor(config.probe_threshold, config.probe_window)
        self.vary = {"cookie": "Cookie", "header": config.header_name, "url": None}[config.transport]

    # ---- request start -------------------------------------------------------------------

    def token(self, cookie_header: str | None) -> str | None:
        """The well-formed token in a Cookie header, or ``None`` (cookie transport)."""
        value = read_token(cookie_header, self.cookie_name)
        if value is None or not ids.is_valid_token(value):
            return None
        return value

    def _raw_token(self, info: RequestInfo) -> str | None:
        transport = self.config.transport
        if transport == "cookie":
            return read_token(info.cookie, self.cookie_name)
        if transport == "header":
            value = info.header_token
            # several headers arrive joined by commas: ambiguous, like two cookies
            if value is None or "," in value or len(value) > MAX_VALUE:
                return None
            return value.strip()
        if len(info.query) > 8 * MAX_VALUE:
            return None
        values = parse_qs(info.query, keep_blank_values=True).get(self.config.url_param, [])
        return values[0] if len(values) == 1 else None

    def begin(self, info: RequestInfo) -> RequestState:
        """Read the token from the configured transport and run the CSRF check."""
        raw = self._raw_token(info)
        token = raw if raw is not None and ids.is_valid_token(raw) else None
        state = RequestState(info=info, token=token)
        if raw and token is None:
            self._probe(state, self.config.clock())
        # A websocket handshake is checked whatever ``csrf`` says (ASVS V3.5.3, cross-site
        # websocket hijacking): no CORS rule guards it and SameSite=Lax lets a sibling
        # subdomain open one with the user's cookie; Origin / Sec-Fetch-Site are the only
        # defence. ``trusted_origins`` still admits other origins.
        websocket = info.method == "WEBSOCKET"
        if (self.config.csrf or websocket) and self.config.transport != "header":
            state.csrf_failed = not csrf_allowed(info, tuple(self.config.trusted_origins))
        return state

    def load_op(self, token: str) -> Load:
        return Load(ids.storage_key(token), self.config.clock())

    def check(self, record: Record | None) -> Record | None:
        """The record if it is alive under the *current* timeouts, else ``None``."""
        if record is None or not self._alive(record, self.config.clock()):
            return None
        return record

    def _alive(self, record: Record, now: float) -> bool:
        return alive(record.meta, now, self.config.timeouts)

    def _limits(self, meta: Meta) -> Timeouts:
        """The timeouts of this session: its own after ``remember()``, else the config's."""
        return limits(meta, self.config.timeouts)

    def load(self, state: RequestState) -> LoadFlow:
        """Yield the operations that load the client's session; return it or ``None``."""
        cfg = self.config
        assert state.token is not None
        now = cfg.clock()
        key = ids.storage_key(state.token)
        # Asked as of one absolute lifetime ago, the store also returns a session that expired
        # since (until a purge removes it): it is reported as expired, not as an unknown ID.
        # Whether it is alive is decided below, under the current timeouts.
        record: Record | None = yield Load(key, now - cfg.timeouts.absolute)
        if record is None and self._renewing:
            # Renewed moments ago? The alias leads the old token to the session, briefly.
            new = yield from self._follow(state.token, now)
            if new is not None:
                key = ids.storage_key(new)
                record = yield Load(key, now)
                if record is not None:
                    state.token, state.resend = new, True
        state.key = key
        if record is None:
            self._probe(state, now)
            return None
        meta = record.meta
        if not self._alive(record, now):
            # Found dead on access: remove it (reported once, also when requests race here).
            if (yield Delete(key)):
                self._event(state, "expired", key, meta.user_id, now)
            return None
        verdict = anomaly.respond(cfg.anomaly_policy, meta, state.info.client)
        if verdict is not None:
            record = yield from self._drifted(state, verdict, key, record, now)
            if record is None:
                return None
            meta = record.meta
        every = cfg.rotate_every
        if (every is not None and not state.drifted
                and now - _float(meta.info.get(_ROTATED_AT), meta.created_at) >= every):
            state.renew = True
        return record

    def _drifted(
        self, state: RequestState, verdict: anomaly.DriftResponse, key: str, record: Record, now: float
    ) -> LoadFlow:
        """Carry out the anomaly policy's response; the record this request sees, or ``None``."""
        cfg = self.config
        user = record.meta.user_id
        state.drifted = True
        state.resend = False  # never hand a drifted client the current token of a renewed session
        if verdict.report:
            self._event(state, "anomaly", key, user, now, reason="fingerprint",
                        changed=",".join(verdict.changed), policy=cfg.anomaly_policy)
        if verdict.revoke and (yield Delete(key)):
            self._event(state, "revoked", key, user, now, reason="anomaly")
        if not verdict.honour:
            # As if the request had come without a token: a fresh, anonymous session.
            state.token, state.key, state.refused = None, None, True
            return None
        state.force_write = state.force_write or verdict.write
        return Record(record.fields, verdict.meta)

    def open(
        self,
        state: RequestState,
        record: Record | None = None,
        run: Callable[[LoadFlow], Record | None] | None = None,
        cls: type[S] = Session,  # type: ignore[assignment]
    ) -> S:
        """The request's :class:`Session`: over ``record`` (already loaded, or ``None``), or,
        when ``run`` is given and the client sent a token, loading on first access."""
        loader = None
        if run is not None and state.token is not None:

            def loader() -> Record | None:
                loaded = run(self.load(state))
                self._identify(state, session, loaded)
                return loaded

        session = cls(clock=self.config.clock, max_size=self.config.max_size, record=record, loader=loader)
        if loader is None:
            self._identify(state, session, record)
        if self.config.transport == "url":
            session.token_issuer = lambda: self._url_token(state, session)
        return session

    def session(
        self,
        record: Record | None = None,
        loader: Callable[[], Record | None] | None = None,
        cls: type[S] = Session,  # type: ignore[assignment]
    ) -> S:
        """A bare :class:`Session` (for tests and custom adapters)."""
        return cls(clock=self.config.clock, max_size=self.config.max_size, record=record, loader=loader)

    def _identify(self, state: RequestState, session: Session, record: Record | None) -> None:
        if record is not None and state.token is not None:
            session.storage_key = state.key if state.key is not None else ids.storage_key(state.token)
            session.id_secret = self.secret  # public_id is computed only if asked for

    def _url_token(self, state: RequestState, session: Session) -> str | None:
        if session.record is not None and not (session.destroyed or session.rotate or state.renew):
            return state.token
        if session.next_token is None:
            session.next_token = self._new_token()
        return session.next_token

    # ---- request end ---------------------------------------------------------------------

    def commit(self, state: RequestState, session: Session, status: int) -> CommitFlow:
        """Yield the store operations that save ``session``; return headers to add.

        A 5xx status saves nothing: the app failed half-way and its changes may be half-made.
        """
        headers = yield from self._save(state, session, status)
        if state.refused and not self._hands_token(headers):
            # The anomaly policy refused the client's token: have it dropped, so the client
            # stops presenting it (and, if it was the owner who moved, starts afresh quietly).
            headers += [h for h in self._clear() if h not in headers]
        return headers

    def _save(self, state: RequestState, session: Session, status: int) -> CommitFlow:
        cfg = self.config
        headers: Headers = []
        if cfg.transport == "url":
            headers.append(("Referrer-Policy", "no-referrer"))
        # Untouched (never loaded, or loaded eagerly by an async adapter but never used):
        # no write, no touch, no header, so every adapter behaves the same.
        if status >= 500 or not session.loaded or not (session.accessed or state.force_write):
            return headers
        if self.vary is not None:
            headers.append(("Vary", self.vary))  # the response depends on the session it read
        now = cfg.clock()
        old_key = session.storage_key

        if session.destroyed:
            if old_key is not None and (yield Delete(old_key)):
                kind: EventKind = "logged_out" if session.destroyed_user else "destroyed"
                self._event(state, kind, old_key, session.destroyed_user, now)
            if state.token is not None:
                headers += self._clear()
            if len(session) == 0 and session.new_user is None:
                return headers
            # data written (or a user signed in) after destroy() goes into a brand-new session

        record = None if session.destroyed else session.record
        if record is None or old_key is None:
            user = session.new_user
            if (user is not None and user[0] is not None and cfg.max_sessions_per_user is not None
                    and (yield from self._enforce_cap(state, user[0], None, now))):
                user = None
            if len(session) == 0 and user is None:
                return headers  # nothing worth a session: stay lazy, no cookie
            token = session.next_token or self._new_token()
            key = ids.storage_key(token)
            meta = self._persisted(session, self._new_meta(state, user, now), now)
            if (yield Create(key, Record(session.encoded(), meta))):
                headers = self._replace_clear(headers) + self._issue(state, token, meta, now)
                self._event(state, "created", key, None if user is None else user[0], now)
                if user is not None:
                    self._event(state, "logged_in", key, user[0], now)
            return headers

        meta = record.meta
        # A drifted request gets a new ID only with a fresh authentication (login() or
        # reauthenticate() in this very request): a bare regenerate() would hand the drifted
        # client the signed-in session under a new ID and kill the owner's. It is not done;
        # the request's changes are saved into the session as it is.
        rotate = (session.rotate and (not state.drifted or session.new_user is not None)) or state.renew
        if rotate:
            kind = "rotated"
            new_meta = meta
            user = session.new_user
            if user is not None and session.logging_in and user[0] is not None \
                    and cfg.max_sessions_per_user is not None \
                    and (yield from self._enforce_cap(state, user[0], old_key, now)):
                user, rotate = None, state.renew
            if user is not None:
                # The user just proved who they are (login or step-up) from this client: its
                # fingerprint is the one later requests are compared with.
                new_meta = replace(new_meta, user_id=user[0], auth_at=user[1],
                                   info=self._fingerprint(new_meta.info, state))
                if session.logging_in:
                    kind = "logged_in"
        if rotate:
            new_meta = self._touched(self._persisted(session, new_meta, now), now)
            new_meta = replace(new_meta, info={**new_meta.info, _ROTATED_AT: repr(now)})
            token = session.next_token or self._new_token()
            key = ids.storage_key(token)
            grace = self._renewing and state.renew and not session.rotate and state.token is not None
            alias_ok = True
            if grace:
                assert state.token is not None
                alias = Record({"to": ids.wrap_token(token, state.token)},
                               Meta(now, now, now + cfg.grace, now + cfg.grace))
                # Alias first: there is no moment when the old token leads nowhere. If another
                # request renews this session right now, its alias is there: let it win.
                alias_ok = yield Create(ids.alias_key(state.token), alias)
            if alias_ok:
                if (yield Rename(old_key, key, session.delta(new_meta), now)):
                    headers += self._issue(state, token, new_meta, now)
                    # "previous" links the new public id to the old one in an audit trail.
                    self._event(state, kind, key, new_meta.user_id, now,
                                previous=ids.public_id(old_key, self.secret),
                                **({"reason": "renewal"} if grace else {}))
                elif grace:
                    assert state.token is not None
                    yield Delete(ids.alias_key(state.token))
                return headers
            # Another request is renewing this very session right now (its alias is there):
            # save into the session as usual below; if it has moved already, follow it.

        kept = self._persisted(session, meta, now)
        limits_changed = kept is not meta  # remember() / forget() changed the session's limits
        delta = session.delta()
        if (delta.touches_fields or state.force_write or limits_changed
                or self._limits(meta).touch_due(meta.last_seen, now)):
            touched = Delta(delta.set, delta.delete, self._touched(kept, now), delta.patch)
            ok = yield Apply(old_key, touched, now)
            if not ok and state.token is not None and self._renewing:
                # Renewed away by a concurrent request since this one loaded it: the changes
                # belong to the renewed session (its metadata is newer: keep it), and the
                # client is handed the current token, as if it had come with it.
                moved = yield from self._follow(state.token, now)
                fields_only = replace(delta, meta=None)
                if moved is not None and (yield Apply(ids.storage_key(moved), fields_only, now)):
                    state.token, state.resend = moved, not state.drifted
            elif (ok and state.token is not None and not state.resend and not state.drifted
                  and (limits_changed or cfg.cookie.max_age is not None)):
                # A persistent cookie's age is refreshed; a change of the limits changes it.
                headers += self._issue(state, state.token, kept, now)
        if state.resend and state.token is not None:
            headers += self._issue(state, state.token, kept, now)  # it came with a renewed-away token
        return headers

    def _persisted(self, session: Session, meta: Meta, now: float) -> Meta:
        """``meta`` with the app's ``remember()`` / ``forget()`` of this request applied."""
        intent = session.persist
        if intent is None:
            return meta
        own = None
        if intent is not False:
            own = remember_limits(*intent, self.config.remember_timeouts)  # capped at the option
        return with_limits(meta, own, self.config.timeouts, now)

    def _fingerprint(self, info: Mapping[str, str], state: RequestState) -> dict[str, str]:
        recorded = {k: v for k, v in info.items() if k != anomaly.REPORTED}
        return {**recorded, **state.info.client.info()}

    def _hands_token(self, headers: Headers) -> bool:
        name = "Set-Cookie" if self.config.transport == "cookie" else self.config.header_name
        return any(k == name for k, _v in headers)

    @property
    def _renewing(self) -> bool:
        """Periodic renewal with a grace window is on (renewal aliases exist)."""
        return self.config.rotate_every is not None and self.config.grace > 0

    def _follow(self, token: str, now: float) -> Generator[Op, Any, str | None]:
        """The token that ``token`` was renewed to within the grace window, or ``None``."""
        alias: Record | None = yield Load(ids.alias_key(token), now)
        return None if alias is None else ids.unwrap_token(alias.fields.get("to", ""), token)

    def _enforce_cap(
        self, state: RequestState, user_id: str, keep_key: str | None, now: float
    ) -> Generator[Op, Any, bool]:
        """Apply ``max_sessions_per_user`` before a login; True means the login is refused."""
        cap = self.config.max_sessions_per_user
        assert cap is not None
        rows: list[tuple[str, Meta]] = yield ListUser(user_id, now)
        timeouts = self.config.timeouts
        others = [(k, m) for k, m in rows if k != keep_key and alive(m, now, timeouts)]
        excess = len(others) - cap + 1
        if excess <= 0:
            return False
        if self.config.on_session_limit == "refuse":
            # Names the session that tried to sign in (if it had one): it stays as it was.
            self._event(state, "refused", keep_key, user_id, now, reason="session_limit",
                        limit=str(cap))
            return True
        for k, _m in sorted(others, key=lambda km: km[1].last_seen)[:excess]:
            if (yield Delete(k)):
                self._event(state, "revoked", k, user_id, now, reason="session_limit")
        return False

    # ---- helpers -------------------------------------------------------------------------

    def _probe(self, state: RequestState, now: float) -> None:
        net = ip_prefix(state.info.ip)
        if self.monitor.note(net, now):
            self._event(state, "anomaly", None, None, now, reason="unknown_ids", network=net,
                        count=str(self.monitor.threshold), window=f"{self.monitor.window:g}")

    def _event(self, state: RequestState, kind: EventKind, key: str | None, user_id: str | None,
               now: float, **detail: str) -> None:
        if not self.config.on_event:
            return
        pid = None if key is None else ids.public_id(key, self.secret)
        state.events.append(SessionEvent(kind, now, pid, user_id, detail))

    def _new_token(self) -> str:
        token = self.config.token_factory()
        if not ids.is_valid_token(token):
            # The next request would reject it and silently start a fresh session.
            raise ConfigError(
                "token_factory must return tokens shaped like sessionkeeper.new_token() "
                "(43 base64url characters from 32 random bytes)"
            )
        return token

    def _touched(self, meta: Meta, now: float) -> Meta:
        # Built field by field: dataclasses.replace costs twice as much, on every write.
        expires_at = self._limits(meta).expires_at(now, meta.absolute_at)
        return Meta(meta.created_at, now, expires_at, meta.absolute_at, meta.user_id, meta.auth_at, meta.info)

    def _new_meta(self, state: RequestState, user: tuple[str | None, float] | None, now: float) -> Meta:
        t = self.config.timeouts
        absolute_at = t.absolute_at(now)
        user_id, auth_at = user if user is not None else (None, None)
        return Meta(
            created_at=now,
            last_seen=now,
            expires_at=t.expires_at(now, absolute_at),
            absolute_at=absolute_at,
            user_id=user_id,
            auth_at=auth_at,
            info={**state.info.client.info(), _ROTATED_AT: repr(now)},
        )

    def _issue(self, state: RequestState, token: str, meta: Meta, now: float) -> Headers:
        """The headers that hand ``token`` (of a session with ``meta``) to the client."""
        transport = self.config.transport
        if transport == "cookie":
            policy = self.config.cookie
            if policy.secure:
                warn_insecure_cookie(state.info)
            # A persistent session's cookie lives until its absolute limit (it survives a
            # browser restart); any other is a browser-session cookie (or cookie_max_age).
            age = None if own_limits(meta) is None else max(1, int(meta.absolute_at - now))
            return [("Set-Cookie", policy.set_cookie(token, age)), ("Cache-Control", "no-store")]
        if transport == "header":
            return [(self.config.header_name, token), ("Cache-Control", "no-store")]
        return [("Cache-Control", "no-store")]  # URL: the app put session.url_token() in its links

    def _clear(self) -> Headers:
        transport = self.config.transport
        if transport == "cookie":
            return [("Set-Cookie", self.config.cookie.delete_cookie()), ("Cache-Control", "no-store")]
        if transport == "header":
            return [(self.config.header_name, ""), ("Cache-Control", "no-store")]
        return [("Cache-Control", "no-store")]

    def _replace_clear(self, headers: Headers) -> Headers:
        # A new session after destroy(): its cookie replaces the deletion.
        drop = set(self._clear())
        return [h for h in headers if h not in drop]


def _float(text: str | None, default: float) -> float:
    try:
        return float(text) if text is not None else default
    except ValueError:
        return default


def info_from_headers(
    method: str,
    headers: Mapping[str, str],
    *,
    query: str = "",
    ip: str | None = None,
    scheme: str = "http",
    header_name: str = "x-session-token",
) -> RequestInfo:
    """Build :class:`RequestInfo` from lowercase header names -> values (adapters share it)."""
    host = headers.get("host")
    return RequestInfo(
        method=method.upper(),
        cookie=headers.get("cookie"),
        header_token=headers.get(header_name.lower()),
        query=query,
        ip=ip,
        user_agent=headers.get("user-agent"),
        origin=headers.get("origin"),
        sec_fetch_site=headers.get("sec-fetch-site"),
        host=host,
        scheme=scheme,
    )


__all__ = [
    "CommitFlow",
    "Delta",
    "Headers",
    "LoadFlow",
    "RequestInfo",
    "RequestState",
    "SessionFlow",
    "csrf_allowed",
    "info_from_headers",
]
