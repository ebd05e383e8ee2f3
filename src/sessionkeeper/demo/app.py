"""A small demo site: log in, see and change session data, log out.

Plain WSGI and the standard library's threaded server, so it runs with no extra packages.

It is a showcase of the library, so it is hardened the way the README tells users to be:

- CSRF (WSTG-SESS-05): the library's own check (``csrf=True``: cross-site unsafe requests
  are refused before the app runs) plus a per-form token (``session.csrf_token()``, checked
  with ``session.check_csrf``). The login form carries one too, so an attacker cannot sign a
  visitor into the attacker's account (login CSRF): the first visit therefore stores an
  anonymous pre-session holding that token.
- Request bodies: ``Content-Length`` must be plain digits (else 400) and at most
  :data:`MAX_BODY` (else 413); nothing is read beyond it, and a body without a length is
  refused (411).
- Every response, the library's own 403/503 included, carries a strict Content-Security-Policy
  (no scripts at all; only the page's own inline style, by hash), ``X-Frame-Options: DENY``,
  ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and, for pages,
  ``Cache-Control: no-store``.
- The store URL is shown with its password masked, on the page and in the console.
- The default SQLite file lives in a per-user directory (mode 0700), never at a fixed name in
  the shared temp directory.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import html
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ..core.session import Session
from ..errors import ConfigError, SessionError
from ..manager import SessionManager
from ..wsgi import ENVIRON_KEY, SessionMiddleware, StartResponse

WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: Largest request body the demo reads (its forms need a few hundred bytes).
MAX_BODY = 64 * 1024

STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse;width:100%}"
    "td,th{border-bottom:1px solid #ddd;padding:.3rem;text-align:left}"
    "form{display:inline}input{font:inherit;padding:.2rem}button{font:inherit;cursor:pointer}"
    ".box{background:#f5f5f5;border-radius:6px;padding:.8rem 1rem;margin:1rem 0}"
    "code{font-size:90%}.fp{font-family:ui-monospace,monospace}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()

#: The headers every response of the demo carries.
SECURITY_HEADERS: list[tuple[str, str]] = [
    ("Content-Security-Policy",
     f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
     "frame-ancestors 'none'; base-uri 'none'"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sessionkeeper demo</title>
<style>{style}</style></head><body>
<h1>sessionkeeper demo</h1>
<div class="box" id="status">{status}</div>
<h2>Session data</h2>
<table id="data"><tr><th>key</th><th>value</th><th></th></tr>{rows}</table>
<p><form method="post" action="/set">{csrf}
<input name="key" placeholder="key" required> <input name="value" placeholder="value">
<button id="set">Set</button></form></p>
<h2>Lifecycle</h2>
<p>{lifecycle}</p>
{devices}
<div class="box"><small>Store: <code id="store">{store}</code>. The cookie holds a random
256-bit token; the store keeps only its SHA-256 hash. The fingerprint above is a short keyed
hash of that, safe to show: the token itself never appears on a page. Idle timeout {idle},
absolute {absolute}, both enforced on the server. Every form carries a CSRF token and
cross-site posts are refused. This demo runs over plain HTTP on loopback, so it sets
<code>secure=False</code>; production keeps the default <code>Secure</code> +
<code>__Host-</code> cookie.</small></div>
</body></html>
"""

_DIGITS = re.compile(r"[0-9]+")
_SECRET = re.compile(r"(?i)pass|secret|token|key|auth")  # query options that may hold secrets


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


# ---- small helpers, each tested on its own ----------------------------------------------------


def mask_url(url: str) -> str:
    """``url`` with its password, and query values that look secret, shown as ``***``.

    ``postgresql://app:s3cret@db/app`` -> ``postgresql://app:***@db/app``.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable store URL)"
    netloc = parts.netloc
    creds, at, hosts = netloc.rpartition("@")
    if at:
        user, colon, _ = creds.partition(":")
        netloc = f"{user}:***@{hosts}" if colon else f"{user}@{hosts}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if _SECRET.search(k) else v) for k, v in pairs], safe="*/:")
    if netloc == parts.netloc and query == parts.query:
        return url  # nothing to hide (and urlunsplit would turn sqlite:/// into sqlite://)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def relative_time(when: datetime | None, now: datetime) -> str:
    """``"3 minutes ago"``, ``"in 29 minutes"``, ``"just now"`` (``"-"`` for ``None``)."""
    if when is None:
        return "-"
    delta = (when - now).total_seconds()
    seconds = int(abs(delta))
    if seconds < 5:
        return "just now"
    units = ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))
    for i, (size, unit) in enumerate(units):
        if seconds >= size:
            n, rest = divmod(seconds, size)
            text = f"{n} {unit}{'' if n == 1 else 's'}"
            # days and hours get the next unit too: "in 13 days 23 hours", not "in 13 days"
            if size >= 3600 and rest >= units[i + 1][0]:
                m, small_unit = rest // units[i + 1][0], units[i + 1][1]
                text += f" {m} {small_unit}{'' if m == 1 else 's'}"
            return f"in {text}" if delta > 0 else f"{text} ago"
    return "just now"  # pragma: no cover - the loop always returns


def duration(seconds: float) -> str:
    """``1800`` -> ``"30 minutes"``, ``43200`` -> ``"12 hours"``."""
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return f"{seconds:g} seconds"


def _time(when: datetime | None, now: datetime) -> str:
    """A relative time with the exact one (to the second, UTC) as a tooltip."""
    if when is None:
        return "-"
    exact = when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<time datetime='{_e(when.isoformat(timespec='seconds'))}' title='{exact}'>" \
           f"{_e(relative_time(when, now))}</time>"


def fingerprint(session: Session) -> str | None:
    """A short, safe name of the session's current ID: the first 8 characters of its public
    id (a keyed hash of the token's hash; the token cannot be recovered from it)."""
    public = session.public_id
    return None if public is None else public[:8]


class BadRequest(Exception):
    """A request the demo refuses before looking at its session."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def content_length(environ: dict[str, Any], limit: int = MAX_BODY) -> int:
    """The request body's declared length, checked: plain digits (RFC 9110 ``1*DIGIT``, so no
    sign, space or underscore that ``int()`` would accept), at most ``limit``. Raises
    :class:`BadRequest` (400, 411 or 413) otherwise; a missing length means no body."""
    raw = environ.get("CONTENT_LENGTH")
    if environ.get("HTTP_TRANSFER_ENCODING"):
        raise BadRequest("411 Length Required", "Send the form with a Content-Length.")
    if raw is None or raw == "":
        return 0
    if not isinstance(raw, str) or not _DIGITS.fullmatch(raw):
        raise BadRequest("400 Bad Request", "Content-Length must be a number of bytes.")
    digits = raw.lstrip("0")
    # compared by length first: int() of thousands of digits is slow, or refused outright
    if len(digits) > len(str(limit)) or int(digits or "0") > limit:
        raise BadRequest("413 Content Too Large", f"A form may hold at most {limit} bytes.")
    return int(digits or "0")


def read_form(environ: dict[str, Any]) -> dict[str, str]:
    """The urlencoded form in the body: exactly ``Content-Length`` bytes are read, never more."""
    size = content_length(environ)
    raw = environ["wsgi.input"].read(size) if size else b""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("400 Bad Request", "The form must be UTF-8.") from None
    return {k: v[0] for k, v in parse_qs(text, max_num_fields=20).items()}


# ---- pages -------------------------------------------------------------------------------------


def _csrf_field(session: Session) -> str:
    return f"<input type='hidden' name='csrf' value='{_e(session.csrf_token())}'>"


def _devices(session: Session, manager: SessionManager, now: datetime) -> str:
    if session.user_id is None:
        return ""
    rows = "".join(
        f"<tr><td>{_e(d.user_agent)}</td><td>{_e(d.ip or '-')}</td>"
        f"<td>{_time(d.last_seen, now)}</td>"
        f"<td>{'this device' if d.current else ''}</td></tr>"
        for d in manager.devices(current=session)
    )
    return (
        "<h2>Your devices</h2><table id='devices'><tr><th>browser</th><th>address</th>"
        f"<th>last seen</th><th></th></tr>{rows}</table><p><form method='post' "
        f"action='/logout-others'>{_csrf_field(session)}<button id='logout-others'>Log out my "
        "other devices</button></form></p>"
    )


def _page(session: Session, store_url: str, idle: float, absolute: float,
          manager: SessionManager, now: datetime) -> str:
    csrf = _csrf_field(session)  # first: it may create the (pre-)session the page describes
    if session.user_id is not None:
        status = (f"Signed in as <b id='user'>{_e(session.user_id)}</b>, "
                  f"authenticated {_time(session.auth_at, now)}.")
        if session.persistent:
            status += (" <span id='remembered'>Remembered: the cookie survives a browser "
                       "restart.</span>")
        lifecycle = (f"<form method='post' action='/regenerate'>{csrf}<button id='regenerate'>New "
                     f"session ID</button></form> <form method='post' action='/logout'>{csrf}"
                     "<button id='logout'>Log out</button></form>")
    else:
        status = "Not signed in."
        lifecycle = (f"<form method='post' action='/login'>{csrf}<input name='user' "
                     "placeholder='any user name' required> <label><input type='checkbox' "
                     "name='remember' id='remember'> remember me</label> "
                     "<button id='login'>Log in</button></form>")
    fp = fingerprint(session)
    if fp is None:
        status += "<br>Session fingerprint: <span class='fp' id='fingerprint'>none yet</span>" \
                  " (saved at the end of this request)."
    else:
        status += (f"<br>Session fingerprint: <span class='fp' id='fingerprint'>{_e(fp)}</span>; "
                   f"created {_time(session.created_at, now)}, last seen "
                   f"{_time(session.last_seen, now)}, expires {_time(session.expires_at, now)} "
                   "unless used.")
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td>{_e(v)}</td><td><form method='post' action='/delete'>{csrf}"
        f"<input type='hidden' name='key' value='{_e(k)}'><button>delete</button></form></td></tr>"
        for k, v in sorted(session.items()) if not k.startswith("_")
    )
    return PAGE.format(style=STYLE, status=status, csrf=csrf,
                       rows=rows or "<tr><td colspan=3><i>empty</i></td></tr>",
                       lifecycle=lifecycle, store=_e(mask_url(store_url)), idle=duration(idle),
                       absolute=duration(absolute), devices=_devices(session, manager, now))


def _answer(start_response: StartResponse, status: str, body: str,
            content_type: str = "text/plain; charset=utf-8") -> list[bytes]:
    data = body.encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data))),
                            ("Cache-Control", "no-store")])
    return [data]


def _hardened(app: WSGIApp) -> WSGIApp:
    """``app`` with :data:`SECURITY_HEADERS` on every response, the session middleware's own
    403 and 503 included (so this wraps the middleware, not the other way round)."""

    def wrapped(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            # dict.fromkeys: one copy of a header both the page and the middleware set alike
            return start_response(status, list(dict.fromkeys([*headers, *SECURITY_HEADERS])), exc_info)

        return app(environ, start)

    return wrapped


def make_app(store_url: str, **options: Any) -> WSGIApp:
    """The demo WSGI app: the session middleware (``csrf=True``) around the pages, with the
    security headers around both."""
    options.setdefault("secure", False)  # plain HTTP on loopback; see the page's footnote
    options.setdefault("csrf", True)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        session: Session = environ[ENVIRON_KEY]
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        if method == "POST":
            try:
                form = read_form(environ)
            except BadRequest as exc:
                return _answer(start_response, exc.status, exc.message + "\n")
            if path not in ("/login", "/logout", "/logout-others", "/regenerate", "/set", "/delete"):
                return _answer(start_response, "404 Not Found", "not found\n")
            if not session.check_csrf(form.get("csrf")):
                page = ("<!doctype html><title>Form expired</title><p>This form has expired or "
                        "came from another site. <a href='/'>Reload the page</a> and try again.")
                return _answer(start_response, "403 Forbidden", page, "text/html; charset=utf-8")
            if path == "/login" and form.get("user", "").strip():
                session.login(form["user"].strip()[:64])
                if form.get("remember"):
                    session.remember()  # "remember me": Max-Age cookie, longer server limits
            elif path == "/logout":
                session.logout()
            elif path == "/logout-others" and session.user_id is not None:
                manager.revoke_others(session)
            elif path == "/regenerate":
                session.regenerate()
            elif path == "/set" and form.get("key") and not form["key"].startswith("_"):
                session[form["key"][:64]] = form.get("value", "")[:1024]
            elif path == "/delete" and not form.get("key", "").startswith("_"):
                session.pop(form.get("key", ""), None)
            start_response("303 See Other", [("Location", "/"), ("Content-Length", "0"),
                                             ("Cache-Control", "no-store")])
            return [b""]
        if method not in ("GET", "HEAD"):
            return _answer(start_response, "405 Method Not Allowed", "use GET or POST\n")
        if path != "/":
            return _answer(start_response, "404 Not Found", "not found\n")
        cfg = middleware.config.timeouts
        body = _page(session, store_url, cfg.idle, cfg.absolute, manager, datetime.now(timezone.utc))
        return _answer(start_response, "200 OK", body, "text/html; charset=utf-8")

    middleware = SessionMiddleware(app, store=store_url, **options)
    manager = SessionManager(middleware.store, middleware.config)
    return _hardened(middleware)


# ---- where the default database lives -----------------------------------------------------------


def _private_dir(path: str) -> str:
    """``path`` as a directory only this user can enter (created 0700 if missing). Refuses one
    that is a symlink or owned by another user: someone else could swap the database."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{path} is not a directory (a symlink?); remove it or pass --store")
    getuid = getattr(os, "getuid", None)
    if getuid is not None and st.st_uid != getuid():
        raise ConfigError(f"{path} belongs to another user; remove it or pass --store")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)  # ours, but others could enter it
    return path


def default_store_url() -> str:
    """SQLite in ``$XDG_STATE_HOME/sessionkeeper/demo.db`` (``~/.local/state/...`` if unset),
    or, if that cannot be made, in a per-user directory of the temp dir
    (``sessionkeeper-<uid>``, mode 0700, refused if another user owns it)."""
    state = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):  # the XDG spec: relative values are ignored
        home = os.path.expanduser("~")
        state = os.path.join(home, ".local", "state") if os.path.isabs(home) else ""
    if state:
        try:
            return "sqlite:///" + os.path.join(_private_dir(os.path.join(state, "sessionkeeper")), "demo.db")
        except OSError:
            pass  # e.g. a read-only home: fall back to the temp dir
    user = getattr(os, "getuid", lambda: os.environ.get("USERNAME", "user"))()
    folder = _private_dir(os.path.join(tempfile.gettempdir(), f"sessionkeeper-{user}"))
    return "sqlite:///" + os.path.join(folder, "demo.db")


# ---- the server ----------------------------------------------------------------------------------


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _not_ready(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    return _answer(start_response, "503 Service Unavailable", "starting\n")  # pragma: no cover


def serve(host: str = "127.0.0.1", port: int = 8000, store_url: str | None = None) -> None:
    """Serve the demo until interrupted. The port is taken first, so a busy one is reported
    (as a :class:`SessionError` naming ``--port``) before anything else happens."""
    try:
        httpd = make_server(host, port, _not_ready, server_class=_Server, handler_class=_Quiet)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise SessionError(
                f"port {port} on {host} is already in use (another demo or server?); "
                f"choose another with --port, e.g. sessionkeeper demo --port {port + 1}"
            ) from None
        raise SessionError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port or --host"
        ) from None
    with httpd:
        url = store_url or default_store_url()
        httpd.set_app(make_app(url))
        print(f"sessionkeeper demo on http://{host}:{port}/  (store: {mask_url(url)}); "
              "Ctrl-C to stop", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            print("bye")
