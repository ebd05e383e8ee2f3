"""The demo site: a small shop ("sessionkeeper demo") that shows what the library does.

Plain WSGI and the standard library's threaded server, so it runs with no extra packages.

- Sign in and out (any user name, password ``demo``; the page says so), "remember me".
- A cart that two tabs can change at once without losing items: each cart line is its own
  session key (``cart:<sku>``), and the library saves per key, so two requests that add
  different products both keep their change.
- "This session": a safe fingerprint of the session ID (a keyed hash, never the token) that
  visibly changes on "New session ID"; created / last seen / expires as relative times.
- "Your devices": every live session of the user, each revocable.
- A step-up page: changing the e-mail address needs a password entered in the last two
  minutes (``recently_authenticated`` / ``reauthenticate``).
- The expiry warning (issue 10): the library's browser client, served by the middleware at
  ``/_session/client.js`` (``expiry_endpoints="/_session"``), warns ``--warn-before`` seconds
  before the idle timeout (``--idle-timeout``), offers re-authentication near the absolute
  limit, says when the session has ended, and keeps the checkout form's draft.

It is a showcase of the library, so it is hardened the way the README tells users to be:

- CSRF (WSTG-SESS-05): the library's own check (``csrf=True``: cross-site unsafe requests
  are refused before the app runs) plus a per-form token (``session.csrf_token()``, checked
  with ``session.check_csrf``). The sign-in form carries one too, so an attacker cannot sign a
  visitor into the attacker's account (login CSRF): the first visit therefore stores an
  anonymous pre-session holding that token.
- Request bodies: ``Content-Length`` must be plain digits (else 400) and at most
  :data:`MAX_BODY` (else 413); nothing is read beyond it, and a body without a length is
  refused (411).
- Every response, the library's own 403/503 included, carries a strict Content-Security-Policy
  (scripts only from the site itself, i.e. the library's client; no inline script; the one
  inline style by hash; ``fetch`` only to the site), ``X-Frame-Options: DENY``,
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
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit, urlunsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from .._adapter import static_file
from ..core.session import Session
from ..errors import ConfigError, SessionError
from ..manager import SessionManager
from ..stores.base import Store
from ..wsgi import ENVIRON_KEY, SessionMiddleware, StartResponse

WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: Largest request body the demo reads (its forms need a few hundred bytes).
MAX_BODY = 64 * 1024
#: Every demo account's password (any user name works).
DEMO_PASSWORD = "demo"  # noqa: S105 - published on the sign-in page, on purpose
#: Where the library's expiry endpoints and browser client live.
EXPIRY_PREFIX = "/_session"
#: How recent a password entry must be for the sensitive action (seconds).
STEP_UP_AGE = 120

PRODUCTS: dict[str, tuple[str, int, str]] = {  # sku -> name, price in cents, blurb
    "tea": ("Green tea", 650, "Sencha, 100 g tin"),
    "mug": ("Stoneware mug", 1400, "Holds 350 ml, speckled glaze"),
    "honey": ("Forest honey", 900, "Raw, 250 g jar"),
    "biscuits": ("Oat biscuits", 450, "Baked on Tuesdays"),
}

_SITE_STYLE = (
    ":root{--ink:#1d1d1f;--muted:#5b5b66;--line:#e3e3ea;--bg:#fafafc;--card:#fff;--accent:#0b57d0;"
    "--ok:#0a7a3e;--warn:#8a5300}"
    "*{box-sizing:border-box}"
    "body{font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--ink);"
    "background:var(--bg);margin:0}"
    "header{background:var(--card);border-bottom:1px solid var(--line)}"
    "header .in,main{max-width:60rem;margin:0 auto;padding:0 1rem}"
    "header .in{display:flex;align-items:center;gap:1.2rem;flex-wrap:wrap;min-height:3.5rem}"
    ".brand{font-weight:700;color:var(--ink);text-decoration:none;margin-right:auto}"
    "nav a{color:var(--accent);text-decoration:none;margin-left:1rem}"
    "nav a[aria-current=page]{color:var(--ink);font-weight:600}"
    "main{padding-top:1rem;padding-bottom:3rem}"
    "h1{font-size:1.6rem;margin:.8rem 0}h2{font-size:1.2rem;margin:1.6rem 0 .6rem}"
    "table{border-collapse:collapse;width:100%;background:var(--card)}"
    "td,th{border-bottom:1px solid var(--line);padding:.45rem .5rem;text-align:left;vertical-align:top}"
    "th{font-weight:600;color:var(--muted);font-size:.9rem}"
    "form{display:inline}label{display:block;margin:.4rem 0 .2rem;font-weight:500}"
    "input,textarea{font:inherit;padding:.35rem .5rem;border:1px solid #b9b9c4;border-radius:6px}"
    "textarea{width:100%;min-height:5rem}"
    "button{font:inherit;cursor:pointer;padding:.35rem .9rem;border-radius:6px;"
    "border:1px solid var(--accent);background:var(--accent);color:#fff}"
    "button.link{background:none;color:var(--accent)}"
    ".box{background:var(--card);border:1px solid var(--line);border-radius:10px;"
    "padding:.8rem 1rem;margin:1rem 0}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(13rem,1fr));gap:1rem}"
    ".card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:1rem}"
    ".card h3{margin:0 0 .2rem;font-size:1.05rem}.muted{color:var(--muted)}"
    ".price{font-weight:600;margin:.4rem 0 .6rem}"
    ".notice{border-left:4px solid var(--ok)}.alert{border-left:4px solid var(--warn)}"
    "code{font-size:90%}.fp{font-family:ui-monospace,monospace;font-weight:600}"
    "footer{color:var(--muted);font-size:.9rem}"
)
#: The page's one inline style: the site's own rules and the expiry client's stylesheet (so
#: the CSP needs no 'unsafe-inline' and no second style source).
STYLE = _SITE_STYLE + static_file("client.css").decode()
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()

#: The headers every response of the demo carries.
SECURITY_HEADERS: list[tuple[str, str]] = [
    ("Content-Security-Policy",
     f"default-src 'none'; script-src 'self'; connect-src 'self'; "
     f"style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; frame-ancestors 'none'; "
     "base-uri 'none'"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · sessionkeeper shop</title>
<style>{style}</style>
<script src="{prefix}/client.js" data-warn-before="{warn}" data-sign-in-url="/signin?next={{next}}"
 data-activity-throttle="{throttle}" data-poll-interval="{poll}" defer></script></head><body>
<header><div class="in"><a class="brand" href="/">☕ sessionkeeper shop</a><nav>{nav}</nav></div></header>
<main>
<div class="box" id="status">{status}</div>
{body}
<footer class="box"><small>Store: <code id="store">{store}</code>. The cookie holds a random
256-bit token; the store keeps only its SHA-256 hash, and pages show only a short keyed hash
of that. Idle timeout {idle}, absolute {absolute}, both enforced on the server; the warning
shows {warn_text} before the idle timeout. Every form carries a CSRF token and cross-site posts
are refused. This demo runs over plain HTTP on loopback, so it sets <code>secure=False</code>;
production keeps the default <code>Secure</code> + <code>__Host-</code> cookie.</small></footer>
</main></body></html>
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

NAV = (("/", "Shop"), ("/cart", "Cart"), ("/session", "This session"), ("/devices", "Your devices"),
       ("/account", "Account"))
#: Pages a sign-in may return to (``next``): a fixed list, so it is never an open redirect.
PAGES = frozenset({"/", "/cart", "/session", "/devices", "/account"})


def _csrf_field(session: Session) -> str:
    return f"<input type='hidden' name='csrf' value='{_e(session.csrf_token())}'>"


def _money(cents: int) -> str:
    return f"€{cents // 100}.{cents % 100:02d}"


def cart_lines(session: Session) -> dict[str, int]:
    """sku -> quantity. Each line is its own session key (``cart:<sku>``): two requests that
    change different lines at once both keep their change (the store saves per key)."""
    lines = {}
    for key, value in session.items():
        if key.startswith("cart:") and key[5:] in PRODUCTS and isinstance(value, int) and value > 0:
            lines[key[5:]] = value
    return dict(sorted(lines.items()))


def _form(action: str, csrf: str, inner: str, button: str, button_id: str = "", cls: str = "") -> str:
    bid = f" id='{button_id}'" if button_id else ""
    bcls = f" class='{cls}'" if cls else ""
    return f"<form method='post' action='{action}'>{csrf}{inner}<button{bid}{bcls}>{button}</button></form>"


class Page:
    """What one request renders: the session, the shared parts, then a body per path."""

    def __init__(self, session: Session, app: DemoApp, path: str, query: dict[str, str]) -> None:
        self.s = session
        self.app = app
        self.path = path
        self.q = query
        self.now = datetime.now(timezone.utc) if app.clock is None else \
            datetime.fromtimestamp(app.clock(), timezone.utc)
        self.csrf = _csrf_field(session)  # first: it may create the (pre-)session shown

    def status(self) -> str:
        s = self.s
        if s.user_id is None:
            return ("Not signed in. <a href='/signin' id='signin-link'>Sign in</a> with any user "
                    f"name and the password <code>{DEMO_PASSWORD}</code>.")
        text = (f"Signed in as <b id='user'>{_e(s.user_id)}</b>, authenticated "
                f"{_time(s.auth_at, self.now)}.")
        if s.persistent:
            text += " <span id='remembered'>Remembered: the cookie survives a browser restart.</span>"
        n = sum(cart_lines(s).values())
        text += f" Cart: <a href='/cart' id='cart-count'>{n} item{'' if n == 1 else 's'}</a>. "
        text += _form("/logout", self.csrf, "", "Sign out", "logout", "link")
        return text

    def render(self, title: str, body: str) -> str:
        nav = "".join(f"<a href='{href}'{' aria-current=page' if href == self.path else ''}>{name}</a>"
                      for href, name in NAV)
        t = self.app.timeouts
        every = int(min(60, max(5, t.idle / 4)))  # activity extends and status polls, seconds
        return PAGE.format(
            title=_e(title), style=STYLE, prefix=EXPIRY_PREFIX, warn=int(self.app.warn_before),
            throttle=every, poll=every, nav=nav, status=self.status(), body=body,
            store=_e(mask_url(self.app.store_url)), idle=duration(t.idle),
            absolute=duration(t.absolute), warn_text=duration(self.app.warn_before))

    # -- the pages --

    def shop(self) -> str:
        cards = "".join(
            f"<div class='card'><h3>{_e(name)}</h3><div class='muted'>{_e(blurb)}</div>"
            f"<div class='price'>{_money(price)}</div>"
            + _form("/cart/add", self.csrf, f"<input type='hidden' name='sku' value='{sku}'>",
                    "Add to cart", f"add-{sku}") + "</div>"
            for sku, (name, price, blurb) in PRODUCTS.items())
        rows = "".join(
            f"<tr><td><code>{_e(k)}</code></td><td>{_e(v)}</td><td>"
            + _form("/delete", self.csrf, f"<input type='hidden' name='key' value='{_e(k)}'>",
                    "delete", cls="link") + "</td></tr>"
            for k, v in sorted(self.s.items()) if not k.startswith("_"))
        return (
            "<h1>Shop</h1><div class='grid' id='products'>" + cards + "</div>"
            "<h2>Under the hood: what this session stores</h2>"
            "<p class='muted'>Each cart line is its own key, so two tabs can change the cart at "
            "the same moment and keep every item.</p>"
            "<table id='data'><tr><th>key</th><th>value</th><th></th></tr>"
            + (rows or "<tr><td colspan=3><i>empty</i></td></tr>") + "</table><p>"
            + _form("/set", self.csrf, "<input name='key' placeholder='key' required aria-label='key'> "
                    "<input name='value' placeholder='value' aria-label='value'> ", "Store", "set")
            + "</p>")

    def cart(self) -> str:
        lines = cart_lines(self.s)
        rows = "".join(
            f"<tr id='line-{sku}'><td>{_e(PRODUCTS[sku][0])}</td><td class='qty'>{n}</td>"
            f"<td>{_money(PRODUCTS[sku][1] * n)}</td><td>"
            + _form("/cart/remove", self.csrf, f"<input type='hidden' name='sku' value='{sku}'>",
                    "remove", cls="link") + "</td></tr>"
            for sku, n in lines.items())
        total = sum(PRODUCTS[sku][1] * n for sku, n in lines.items())
        done = "<div class='box notice' id='ordered'>Thank you: your order is on its way.</div>" \
            if self.q.get("ordered") else ""
        # always there (the button disabled while the cart is empty): its draft must survive
        # an expiry that empties the cart
        checkout = (
            "<h2>Checkout</h2><p class='muted'>Take your time: if your session ends while you "
            "type, what you wrote here is kept on this device and comes back after you sign "
            "in again.</p><form method='post' action='/checkout' id='checkout' "
            f"data-sessionkeeper-draft='checkout'>{self.csrf}"
            "<label for='address'>Delivery address</label><input id='address' name='address' "
            "size='40' autocomplete='street-address'>"
            "<label for='note'>Note for the courier</label><textarea id='note' name='note'>"
            "</textarea><p><button id='place-order'"
            + ("" if lines else " disabled") + ">Place order</button></p></form>")
        return (f"<h1>Your cart</h1>{done}<table id='cart'><tr><th>product</th><th>qty</th>"
                "<th>price</th><th></th></tr>"
                + (rows or "<tr><td colspan=4><i>empty</i> — <a href='/'>go shopping</a></td></tr>")
                + f"<tr><th>Total</th><th></th><th id='total'>{_money(total)}</th><th></th></tr>"
                "</table>" + checkout)

    def this_session(self) -> str:
        s = self.s
        fp = fingerprint(s)
        if fp is None:
            facts = ("<p>Session fingerprint: <span class='fp' id='fingerprint'>none yet</span> "
                     "(saved at the end of this request).</p>")
        else:
            facts = (
                f"<p>Session fingerprint: <span class='fp' id='fingerprint'>{_e(fp)}</span></p>"
                "<table id='facts'>"
                f"<tr><th>created</th><td id='created'>{_time(s.created_at, self.now)}</td></tr>"
                f"<tr><th>last seen</th><td id='last-seen'>{_time(s.last_seen, self.now)}</td></tr>"
                f"<tr><th>expires</th><td id='expires'>{_time(s.expires_at, self.now)} unless used"
                "</td></tr></table>")
        return (
            "<h1>This session</h1><p class='muted'>The fingerprint is a short keyed hash of the "
            "session ID: safe to show, it reveals nothing of the token in your cookie. “New "
            "session ID” gives the session a new token (the old one dies at once) and the "
            f"fingerprint changes with it.</p>{facts}<p>"
            + _form("/regenerate", self.csrf, "", "New session ID", "regenerate") + "</p>")

    def devices(self) -> str:
        if self.s.user_id is None:
            return "<h1>Your devices</h1><p>Sign in to see the devices signed in to your account.</p>"
        rows = "".join(
            f"<tr><td>{_e(d.user_agent)}</td><td>{_e(d.ip or '-')}</td>"
            f"<td>{_time(d.created_at, self.now)}</td><td>{_time(d.last_seen, self.now)}</td><td>"
            + ("<b>this device</b>" if d.current else _form(
                "/revoke", self.csrf, f"<input type='hidden' name='id' value='{_e(d.session_id)}'>",
                "Sign out", f"revoke-{_e(d.session_id[:8])}", "link"))
            + "</td></tr>"
            for d in self.app.manager.devices(current=self.s))
        return (
            "<h1>Your devices</h1><p class='muted'>Every browser signed in to your account. "
            "Signing one out ends its session on the server at once.</p>"
            "<table id='devices'><tr><th>browser</th><th>address</th><th>signed in</th>"
            f"<th>last seen</th><th></th></tr>{rows}</table><p>"
            + _form("/logout-others", self.csrf, "", "Sign out all other devices", "logout-others")
            + "</p>")

    def account(self) -> str:
        s = self.s
        if s.user_id is None:
            return "<h1>Account</h1><p>Sign in to manage your account.</p>"
        email = _e(s.get("email", f"{s.user_id}@example.com"))
        done = "<div class='box notice' id='changed'>E-mail address changed.</div>" \
            if self.q.get("changed") else ""
        if s.recently_authenticated(STEP_UP_AGE):
            action = ("<p>You confirmed your password recently, so you may change it now.</p>"
                      + _form("/account/email", self.csrf,
                              "<label for='email'>New e-mail address</label><input id='email' "
                              "name='email' type='email' required size='30'> ", "Change", "change-email"))
        else:
            failed = "<p class='box alert' id='failed'>Wrong password.</p>" if self.q.get("failed") else ""
            action = (f"{failed}<p>Changing the e-mail address is a sensitive action: confirm your "
                      f"password first (it counts for {duration(STEP_UP_AGE)}).</p>"
                      + _form("/reauth", self.csrf,
                              "<label for='password'>Password</label><input id='password' "
                              "name='password' type='password' autocomplete='current-password' "
                              "required> ", "Confirm", "confirm"))
        return (f"<h1>Account</h1>{done}<p>E-mail address: <b id='email-now'>{email}</b></p>{action}")

    def signin(self) -> str:
        nxt = self.q.get("next", "/")
        nxt = nxt if nxt in PAGES else "/"
        failed = "<p class='box alert' id='failed'>Wrong password: it is <code>demo</code>.</p>" \
            if self.q.get("failed") else ""
        return (
            f"<h1>Sign in</h1>{failed}<div class='box'>Demo accounts: any user name (try "
            f"<b>alice</b> or <b>bob</b>), password <code>{DEMO_PASSWORD}</code>.</div>"
            f"<form method='post' action='/login' id='signin'>{self.csrf}"
            f"<input type='hidden' name='next' value='{_e(nxt)}'>"
            "<label for='user'>User name</label><input id='user-name' name='user' required "
            "autocomplete='username'>"
            "<label for='password'>Password</label><input id='password' name='password' "
            "type='password' autocomplete='current-password'>"
            "<p><label><input type='checkbox' name='remember' id='remember'> remember me</label></p>"
            "<p><button id='login'>Sign in</button></p></form>")


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


POST_PATHS = frozenset({"/login", "/logout", "/logout-others", "/revoke", "/regenerate", "/set",
                        "/delete", "/cart/add", "/cart/remove", "/checkout", "/reauth",
                        "/account/email"})


class DemoApp:
    """The pages and actions; :func:`make_app` wraps them in the session middleware."""

    def __init__(self, store_url: str, warn_before: float, clock: Callable[[], float] | None) -> None:
        self.store_url = store_url
        self.warn_before = warn_before
        self.clock = clock
        self.manager: SessionManager
        self.timeouts: Any

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        session: Session = environ[ENVIRON_KEY]
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        if method == "POST":
            try:
                form = read_form(environ)
            except BadRequest as exc:
                return _answer(start_response, exc.status, exc.message + "\n")
            if path not in POST_PATHS:
                return _answer(start_response, "404 Not Found", "not found\n")
            if not session.check_csrf(form.get("csrf")):
                page = ("<!doctype html><title>Form expired</title><p>This form has expired or "
                        "came from another site. <a href='/'>Reload the page</a> and try again.")
                return _answer(start_response, "403 Forbidden", page, "text/html; charset=utf-8")
            to = self.act(session, path, form)
            start_response("303 See Other", [("Location", to), ("Content-Length", "0"),
                                             ("Cache-Control", "no-store")])
            return [b""]
        if method not in ("GET", "HEAD"):
            return _answer(start_response, "405 Method Not Allowed", "use GET or POST\n")
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", ""), max_num_fields=10).items()}
        p = Page(session, self, path, query)
        views = {"/": ("Shop", p.shop), "/cart": ("Cart", p.cart),
                 "/session": ("This session", p.this_session), "/devices": ("Your devices", p.devices),
                 "/account": ("Account", p.account), "/signin": ("Sign in", p.signin)}
        if path not in views:
            return _answer(start_response, "404 Not Found", "not found\n")
        title, view = views[path]
        return _answer(start_response, "200 OK", p.render(title, view()), "text/html; charset=utf-8")

    def act(self, session: Session, path: str, form: dict[str, str]) -> str:
        """Carry out one form post; where to send the browser next."""
        signed_in = session.user_id is not None
        sku = form.get("sku", "")
        if path == "/login":
            nxt = form.get("next", "/")
            nxt = nxt if nxt in PAGES else "/"
            user = form.get("user", "").strip()[:64]
            if not user or form.get("password") != DEMO_PASSWORD:
                return f"/signin?failed=1&next={quote(nxt)}"
            if signed_in:
                # Signing in again (say, near the absolute limit) starts a brand-new session
                # with a fresh absolute window; the cart comes along.
                keep = {k: v for k, v in session.items() if k.startswith("cart:")}
                session.destroy()
                session.update(keep)
            session.login(user)
            if form.get("remember"):
                session.remember()  # "remember me": Max-Age cookie, longer server limits
            return nxt
        if path == "/logout":
            session.logout()
        elif path == "/logout-others" and signed_in:
            self.manager.revoke_others(session)
            return "/devices"
        elif path == "/revoke" and signed_in:
            self.manager.revoke(session.user_id, form.get("id", ""))
            return "/devices"
        elif path == "/regenerate":
            session.regenerate()
            return "/session"
        elif path == "/set" and form.get("key") and not form["key"].startswith("_"):
            session[form["key"][:64]] = form.get("value", "")[:1024]
        elif path == "/delete" and not form.get("key", "").startswith("_"):
            session.pop(form.get("key", ""), None)
        elif path == "/cart/add" and sku in PRODUCTS:
            session[f"cart:{sku}"] = min(99, int(session.get(f"cart:{sku}", 0)) + 1)
            return "/"
        elif path == "/cart/remove":
            session.pop(f"cart:{sku}", None)
            return "/cart"
        elif path == "/checkout":
            if not signed_in:
                return "/signin?next=/cart"
            for key in [k for k in session if k.startswith("cart:")]:
                del session[key]
            return "/cart?ordered=1"
        elif path == "/reauth" and signed_in:
            if form.get("password") != DEMO_PASSWORD:
                return "/account?failed=1"
            session.reauthenticate()
            return "/account"
        elif path == "/account/email" and signed_in:
            if not session.recently_authenticated(STEP_UP_AGE):
                return "/account"
            session["email"] = form.get("email", "")[:254]
            return "/account?changed=1"
        return "/"


def make_app(store_url: str | Store, *, warn_before: float | None = None, shown_url: str | None = None,
             **options: Any) -> WSGIApp:
    """The demo WSGI app: the session middleware (``csrf=True``, ``expiry_endpoints``) around
    the pages, with the security headers around both. ``warn_before`` (seconds; default a
    quarter of the idle timeout, at most 2 minutes, at least 20 s) is when the expiry warning
    shows; ``options`` are :class:`~sessionkeeper.SessionConfig` fields."""
    options.setdefault("secure", False)  # plain HTTP on loopback; see the page's footnote
    options.setdefault("csrf", True)
    options.setdefault("expiry_endpoints", EXPIRY_PREFIX)
    # a Store object (tests) is named by shown_url, else by its class
    shown = store_url if isinstance(store_url, str) else shown_url or type(store_url).__name__
    app = DemoApp(shown, 0, options.get("clock"))
    middleware = SessionMiddleware(app, store=store_url, **options)
    idle = middleware.config.timeouts.idle
    if warn_before is None:
        warn_before = min(120.0, max(20.0, idle / 4))
    if not 20 <= warn_before < idle:
        raise ConfigError(
            f"--warn-before must be at least 20 seconds (WCAG 2.2.1 gives people 20 s to act) "
            f"and shorter than the idle timeout ({idle:g} s), not {warn_before:g}"
        )
    app.warn_before = warn_before
    app.timeouts = middleware.config.timeouts
    app.manager = SessionManager(middleware.store, middleware.config)
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


def serve(host: str = "127.0.0.1", port: int = 8000, store_url: str | None = None,
          idle_timeout: float | None = None, warn_before: float | None = None) -> None:
    """Serve the demo until interrupted. The port is taken first, so a busy one is reported
    (as a :class:`SessionError` naming ``--port``) before anything else happens.
    ``idle_timeout`` / ``warn_before`` (seconds) make the expiry warning quick to try."""
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
        options: dict[str, Any] = {}
        if idle_timeout is not None:
            options["idle_timeout"] = idle_timeout
            # keep the absolute limit meaningful next to a short idle one: 5 idle periods
            options["absolute_timeout"] = max(idle_timeout * 5, 300.0)
        httpd.set_app(make_app(url, warn_before=warn_before, **options))
        print(f"sessionkeeper demo on http://{host}:{port}/  (store: {mask_url(url)}); "
              "Ctrl-C to stop", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            print("bye")
