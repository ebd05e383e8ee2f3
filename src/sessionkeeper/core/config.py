"""Every option, with its default and its check. The same names work in every adapter."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from ..errors import ConfigError
from . import ids
from .clock import Clock, Timeouts, seconds, system_clock
from .cookies import CookiePolicy, SameSite
from .events import Subscriber
from .expiry import checked_prefix
from .fingerprint import AnomalyPolicy

Transport = Literal["cookie", "header", "url"]
SessionLimitPolicy = Literal["evict", "refuse"]
_HEADER_RE = re.compile(r"[A-Za-z0-9-]+")
_PARAM_RE = re.compile(r"[A-Za-z0-9_.-]+")
_DEFAULT_ID_SECRET = b"sessionkeeper.public-id.v1"


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` as browsers compare it: lowercase, no trailing slash, no
    default port (``https://Example.com:443/`` -> ``https://example.com``)."""
    value = origin.strip().rstrip("/").lower()
    for scheme, port in (("https://", ":443"), ("http://", ":80")):
        if value.startswith(scheme) and value.endswith(port):
            return value[: -len(port)]
    return value


_BOOL_OPTIONS = ("secure", "http_only", "host_prefix", "lazy_load", "csrf")
_STR_OPTIONS = ("cookie_name", "cookie_path", "header_name", "url_param", "transport",
                "same_site", "on_session_limit", "anomaly_policy")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _kind(value: object) -> str:
    return type(value).__name__


def checked_origin(entry: object) -> str:
    """A ``trusted_origins`` entry, checked and normalised (``https://Example.com:443/`` ->
    ``https://example.com``), or :class:`ConfigError` saying what is wrong with it.

    An origin is exactly ``scheme://host[:port]`` with scheme ``http`` or ``https``. Refused,
    because each would silently trust more than the app means to: ``"null"`` (what sandboxed
    iframes, ``data:`` pages and some redirects send, so any site can produce it), entries
    without a scheme (a browser never sends one), wildcards, a path, query, fragment or
    user name (a browser's ``Origin`` never carries them, so the entry could never match or
    was meant as a pattern), and empty strings.
    """
    where = f"trusted_origins entry {entry!r}"
    if not isinstance(entry, str):
        raise ConfigError(f"{where} must be a string like 'https://app.example.com', not a {_kind(entry)}")
    value = entry.strip(" \t\r\n")
    if not value:
        raise ConfigError("trusted_origins holds an empty string; remove it")
    if value.lower() == "null":
        raise ConfigError(
            f"{where}: 'null' is the origin of sandboxed iframes, data: and file: pages, which "
            "any site can create; trusting it turns the CSRF check off. Remove it"
        )
    if "*" in value:
        raise ConfigError(f"{where}: wildcards are not supported; list each origin in full")
    if not value.isascii() or not value.isprintable() or any(c.isspace() for c in value):
        raise ConfigError(
            f"{where} must be plain ASCII without spaces (write an international domain "
            "name in its xn-- form, as browsers send it)"
        )
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 address
        raise ConfigError(f"{where} is not a valid origin") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not value[len(scheme) :].startswith("://"):
        raise ConfigError(
            f"{where} needs an http:// or https:// scheme, as browsers send in Origin "
            "(e.g. 'https://app.example.com')"
        )
    # A trailing "/" is how many people write an origin: accepted and dropped.
    if parts.path not in ("", "/") or "?" in value or "#" in value:
        raise ConfigError(f"{where} must be scheme://host[:port] only, without a path, query or fragment")
    if "@" in parts.netloc:
        raise ConfigError(f"{where} must not carry a user name or password")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"{where} has an invalid port")
    host = parts.hostname  # lowercased, IPv6 brackets removed
    if not host:
        raise ConfigError(f"{where} has no host name")
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _check_types(config: SessionConfig) -> None:
    """Wrong types caught at construction, naming the option (``secure="false"`` would
    otherwise be truthy, and a number where a name belongs fails much later)."""
    for name in _BOOL_OPTIONS:
        value = getattr(config, name)
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be True or False, not {value!r} (a {_kind(value)})")
    for name in _STR_OPTIONS:
        value = getattr(config, name)
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, not {value!r} (a {_kind(value)})")
    if config.cookie_domain is not None and not isinstance(config.cookie_domain, str):
        raise ConfigError(f"cookie_domain must be a string or None, not a {_kind(config.cookie_domain)}")
    threshold = config.probe_threshold
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ConfigError(f"probe_threshold must be a positive int, not {threshold!r}")
    seconds(config.probe_window, "probe_window")
    for name in ("clock", "token_factory"):
        if not callable(getattr(config, name)):
            raise ConfigError(f"{name} must be a callable, not a {_kind(getattr(config, name))}")
    secret = config.id_secret
    if secret is not None:
        if not isinstance(secret, str | bytes | bytearray):
            raise ConfigError(f"id_secret must be bytes, a str or None, not a {_kind(secret)}")
        if not secret:
            raise ConfigError("id_secret must not be empty; leave it None for the default")
    if isinstance(config.renew_grace, bool):
        raise ConfigError("renew_grace must be a number of seconds or a timedelta, not a bool")


@dataclass(frozen=True)
class SessionConfig:
    """Options shared by the ASGI, WSGI and Flask adapters (pass them as keyword arguments).

    Defaults follow NIST SP 800-63B rev. 3 for AAL2: 30 minutes idle, 12 hours absolute.
    """

    idle_timeout: float | timedelta = 30 * 60
    absolute_timeout: float | timedelta = 12 * 3600
    touch_interval: float | timedelta | None = None
    remember_idle_timeout: float | timedelta = 14 * 24 * 3600
    """Idle limit of a session the app made persistent with ``Session.remember()``
    ("remember me"); ``remember(idle=...)`` overrides it per session."""
    remember_absolute_timeout: float | timedelta = 30 * 24 * 3600
    """Absolute limit of a session made persistent with ``Session.remember()``; also the
    cookie's ``Max-Age`` then. ``remember(absolute=...)`` overrides it per session."""
    cookie_name: str = "session"
    cookie_path: str = "/"
    cookie_domain: str | None = None
    cookie_max_age: int | None = None
    secure: bool = True
    http_only: bool = True
    same_site: SameSite = "lax"
    host_prefix: bool = True
    max_size: int = 64 * 1024
    unavailable_status: int = 503
    clock: Clock = system_clock
    token_factory: Callable[[], str] = ids.new_token
    lazy_load: bool = False  # ASGI: load on first access (sync store call) instead of eagerly
    # --- transports: only the configured one is accepted ---
    transport: Transport = "cookie"
    header_name: str = "X-Session-Token"
    url_param: str = "sid"
    # --- lifecycle ---
    rotate_interval: float | timedelta | None = None  # periodic ID renewal; None: off
    renew_grace: float | timedelta = 30  # how long a renewed-away ID still leads to its session
    max_sessions_per_user: int | None = None
    on_session_limit: SessionLimitPolicy = "evict"
    anomaly_policy: AnomalyPolicy = "log"
    probe_threshold: int = 20  # unknown IDs from one network in probe_window -> anomaly event
    probe_window: float = 60.0
    on_event: Sequence[Subscriber] = ()
    id_secret: bytes | str | None = None
    """Key of the short public ids that name sessions in events, logs and device lists
    (:func:`sessionkeeper.core.ids.public_id`). A public id never reveals the token or the
    storage key. With the default (``None``: a fixed, published label) anyone who holds a
    storage key — a store dump or backup, a database administrator — can compute its public
    id and so match store records to your logs and events. Set a per-deployment secret
    (e.g. 32 random bytes from your secret manager) when logs or events reach people who
    must not link them to store contents; every app instance, worker, ``SessionManager``
    and CLI run that names sessions must then use the same secret, and changing it renames
    every session's public id."""
    # --- CSRF (cookie and url transports) ---
    csrf: bool = False  # reject cross-site unsafe requests (Sec-Fetch-Site / Origin)
    trusted_origins: Sequence[str] = ()
    """Other origins (exactly ``https://host[:port]``) whose cross-site unsafe requests pass the
    CSRF check. Normalised as browsers send ``Origin`` (lowercase, no default port, no
    trailing slash); ``"null"``, entries without an http(s) scheme, wildcards, paths and user
    names are refused at construction (see :func:`checked_origin`)."""
    # --- expiry a person can see (sessionkeeper.core.expiry) ---
    expiry_endpoints: str | None = None
    """Path prefix of the session-expiry endpoints, e.g. ``"/_session"``; ``None`` (default):
    off. When set, the middleware answers ``GET <prefix>/status`` (expiry as JSON, never
    counted as activity), ``POST <prefix>/extend`` (slides the idle timeout, never past the
    absolute limit), ``POST <prefix>/end`` (signs out) and serves the browser client at
    ``<prefix>/client.js`` and ``<prefix>/client.css``; responses of requests that read a
    session carry ``Session-Expires: idle=<epoch>, absolute=<epoch>``. See docs/expiry.md."""
    timeouts: Timeouts = field(init=False)
    cookie: CookiePolicy = field(init=False)

    def __post_init__(self) -> None:
        _check_types(self)
        # Flask and most docs write SameSite values capitalised ("Lax", "None").
        object.__setattr__(self, "same_site", self.same_site.lower())
        idle = seconds(self.idle_timeout, "idle_timeout")
        absolute = seconds(self.absolute_timeout, "absolute_timeout")
        if absolute < idle:
            raise ConfigError(
                f"absolute_timeout ({absolute:g} s) must not be shorter than idle_timeout "
                f"({idle:g} s)"
            )
        touch = None if self.touch_interval is None else seconds(self.touch_interval, "touch_interval")
        if touch is not None and touch >= idle:
            # A read-only session is touched only this often: it would die idle in between.
            raise ConfigError(
                f"touch_interval ({touch:g} s) must be shorter than idle_timeout ({idle:g} s)"
            )
        object.__setattr__(self, "timeouts", Timeouts(idle, absolute, touch))
        r_idle = seconds(self.remember_idle_timeout, "remember_idle_timeout")
        r_absolute = seconds(self.remember_absolute_timeout, "remember_absolute_timeout")
        if r_absolute < r_idle:
            raise ConfigError(
                f"remember_absolute_timeout ({r_absolute:g} s) must not be shorter than "
                f"remember_idle_timeout ({r_idle:g} s)"
            )
        if touch is not None and touch >= r_idle:
            raise ConfigError(
                f"touch_interval ({touch:g} s) must be shorter than remember_idle_timeout "
                f"({r_idle:g} s)"
            )
        object.__setattr__(
            self,
            "cookie",
            CookiePolicy(
                name=self.cookie_name,
                path=self.cookie_path,
                domain=self.cookie_domain,
                secure=self.secure,
                http_only=self.http_only,
                same_site=self.same_site,
                max_age=self.cookie_max_age,
                host_prefix=self.host_prefix,
            ),
        )
        if isinstance(self.max_size, bool) or not isinstance(self.max_size, int) or self.max_size < 1:
            raise ConfigError(f"max_size must be a positive number of bytes, not {self.max_size!r}")
        status = self.unavailable_status
        if isinstance(status, bool) or not isinstance(status, int) or not 500 <= status <= 599:
            raise ConfigError("unavailable_status must be a 5xx status code")

        if self.transport not in ("cookie", "header", "url"):
            raise ConfigError(f"transport must be 'cookie', 'header' or 'url', not {self.transport!r}")
        if not _HEADER_RE.fullmatch(self.header_name):
            raise ConfigError(f"header_name {self.header_name!r} is not a valid header name")
        if not _PARAM_RE.fullmatch(self.url_param):
            raise ConfigError(f"url_param {self.url_param!r} is not a valid query parameter name")
        if self.rotate_interval is not None:
            seconds(self.rotate_interval, "rotate_interval")
        if isinstance(self.renew_grace, timedelta):
            object.__setattr__(self, "renew_grace", self.renew_grace.total_seconds())
        if not isinstance(self.renew_grace, int | float) or not 0 <= self.renew_grace <= 300:
            raise ConfigError("renew_grace must be between 0 and 300 seconds")
        cap = self.max_sessions_per_user
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ConfigError(f"max_sessions_per_user must be a positive int or None, not {cap!r}")
        if self.on_session_limit not in ("evict", "refuse"):
            raise ConfigError("on_session_limit must be 'evict' or 'refuse'")
        if self.anomaly_policy not in ("ignore", "log", "rotate", "reauthenticate", "revoke"):
            raise ConfigError(
                "anomaly_policy must be one of 'ignore', 'log', 'rotate', 'reauthenticate', 'revoke'"
            )
        if callable(self.on_event):
            object.__setattr__(self, "on_event", (self.on_event,))
        if isinstance(self.on_event, str | bytes) or not isinstance(self.on_event, Iterable):
            raise ConfigError(f"on_event must be a callable or a list of callables, not {self.on_event!r}")
        object.__setattr__(self, "on_event", tuple(self.on_event))
        for subscriber in self.on_event:
            if not callable(subscriber):
                raise ConfigError(f"on_event must hold callables, not {subscriber!r}")
        if isinstance(self.trusted_origins, str | bytes) or not isinstance(self.trusted_origins, Iterable):
            raise ConfigError(
                "trusted_origins must be a list of origins like ['https://app.example.com'], "
                f"not {self.trusted_origins!r}"
            )
        trusted = tuple(dict.fromkeys(checked_origin(o) for o in self.trusted_origins))
        object.__setattr__(self, "trusted_origins", trusted)
        checked_prefix(self.expiry_endpoints)

    @property
    def remember_timeouts(self) -> Timeouts:
        """Limits of sessions the app made persistent with ``Session.remember()``.

        ``remember_idle_timeout`` and ``remember_absolute_timeout`` in seconds; the touch
        throttle follows the same rule as :attr:`timeouts` (``touch_interval`` if set, else a
        tenth of idle, at most 60 s).
        """
        return Timeouts(
            seconds(self.remember_idle_timeout, "remember_idle_timeout"),
            seconds(self.remember_absolute_timeout, "remember_absolute_timeout"),
            self.timeouts.touch_interval,
        )

    @property
    def rotate_every(self) -> float | None:
        """Periodic renewal interval in seconds, or ``None``."""
        if self.rotate_interval is None:
            return None
        return seconds(self.rotate_interval, "rotate_interval")

    @property
    def grace(self) -> float:
        """``renew_grace`` in seconds."""
        g = self.renew_grace
        return g.total_seconds() if isinstance(g, timedelta) else float(g)

    @property
    def id_secret_bytes(self) -> bytes:
        """The key of the public ids: ``id_secret`` encoded (UTF-8 for a str), or, when it is
        not set, the fixed public label ``b"sessionkeeper.public-id.v1"`` — with which public
        ids are computable by anyone holding a storage key (see ``id_secret``)."""
        secret = self.id_secret
        if secret is None:
            return _DEFAULT_ID_SECRET
        return secret.encode() if isinstance(secret, str) else bytes(secret)

    @classmethod
    def from_options(cls, config: SessionConfig | None = None, **options: Any) -> SessionConfig:
        """Build a config from keyword options, naming any unknown one."""
        known = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"unknown session option(s) {', '.join(unknown)}; "
                f"valid options are: {', '.join(sorted(known))}"
            )
        if config is not None:
            if options:
                base = {f.name: getattr(config, f.name) for f in fields(cls) if f.init}
                return cls(**{**base, **options})
            return config
        return cls(**options)
