"""A small demo site: log in, see and change session data, log out.

Plain WSGI and the standard library's threaded server, so it runs with no extra packages.
"""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ..core.session import Session
from ..manager import SessionManager
from ..stores.base import open_store
from ..wsgi import ENVIRON_KEY, SessionMiddleware, StartResponse

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sessionkeeper demo</title>
<style>
body{{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ddd;padding:.3rem;text-align:left}}
form{{display:inline}} input{{font:inherit;padding:.2rem}} button{{font:inherit;cursor:pointer}}
.box{{background:#f5f5f5;border-radius:6px;padding:.8rem 1rem;margin:1rem 0}} code{{font-size:90%}}
</style></head><body>
<h1>sessionkeeper demo</h1>
<div class="box" id="status">{status}</div>
<h2>Session data</h2>
<table id="data"><tr><th>key</th><th>value</th><th></th></tr>{rows}</table>
<p><form method="post" action="/set">
<input name="key" placeholder="key" required> <input name="value" placeholder="value">
<button id="set">Set</button></form></p>
<h2>Lifecycle</h2>
<p>{lifecycle}</p>
{devices}
<div class="box"><small>Store: <code>{store}</code>. The cookie holds a random 256-bit token;
the store keeps only its SHA-256 hash. Idle timeout {idle:g} s, absolute {absolute:g} s, both
enforced on the server. This demo runs over plain HTTP on loopback, so it sets
<code>secure=False</code>; production keeps the default <code>Secure</code> +
<code>__Host-</code> cookie.</small></div>
</body></html>
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _devices(session: Session, manager: SessionManager) -> str:
    if session.user_id is None:
        return ""
    rows = "".join(
        f"<tr><td>{_e(d.user_agent)}</td><td>{_e(d.ip or '-')}</td>"
        f"<td>{_e(d.last_seen.strftime('%H:%M:%S'))}</td>"
        f"<td>{'this device' if d.current else ''}</td></tr>"
        for d in manager.devices(current=session)
    )
    return (
        "<h2>Your devices</h2><table id='devices'><tr><th>browser</th><th>address</th>"
        f"<th>last seen (UTC)</th><th></th></tr>{rows}</table><p><form method='post' "
        "action='/logout-others'><button id='logout-others'>Log out my other devices</button>"
        "</form></p>"
    )


def _page(session: Session, store_url: str, idle: float, absolute: float, devices: str) -> str:
    if session.user_id is not None:
        status = (f"Signed in as <b id='user'>{_e(session.user_id)}</b> since {_e(session.auth_at)}."
                  f"<br>Session created {_e(session.created_at)}, last seen {_e(session.last_seen)},"
                  f" expires {_e(session.expires_at)} unless used.")
        lifecycle = ("<form method='post' action='/regenerate'><button id='regenerate'>New session ID"
                     "</button></form> <form method='post' action='/logout'><button id='logout'>"
                     "Log out</button></form>")
    else:
        status = "Not signed in." + (
            " (anonymous session saved)" if not session.is_new else " No session is stored yet.")
        lifecycle = ("<form method='post' action='/login'><input name='user' placeholder='any user name'"
                     " required> <button id='login'>Log in</button></form>")
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td>{_e(v)}</td><td><form method='post' action='/delete'>"
        f"<input type='hidden' name='key' value='{_e(k)}'><button>delete</button></form></td></tr>"
        for k, v in sorted(session.items())
    )
    return PAGE.format(status=status, rows=rows or "<tr><td colspan=3><i>empty</i></td></tr>",
                       lifecycle=lifecycle, store=_e(store_url), idle=idle, absolute=absolute,
                       devices=devices)


def make_app(store_url: str, **options: Any) -> SessionMiddleware:
    """The demo WSGI app wrapped in the session middleware."""
    options.setdefault("secure", False)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        session: Session = environ[ENVIRON_KEY]
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        if method == "POST":
            size = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(min(size, 65536)).decode("utf-8", "replace")
            form = {k: v[0] for k, v in parse_qs(raw).items()}
            if path == "/login" and form.get("user", "").strip():
                session.login(form["user"].strip()[:64])
            elif path == "/logout":
                session.logout()
            elif path == "/logout-others" and session.user_id is not None:
                manager.revoke_others(session)
            elif path == "/regenerate":
                session.regenerate()
            elif path == "/set" and form.get("key"):
                session[form["key"][:64]] = form.get("value", "")[:1024]
            elif path == "/delete":
                session.pop(form.get("key", ""), None)
            start_response("303 See Other", [("Location", "/"), ("Content-Length", "0")])
            return [b""]
        if path != "/":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        cfg = middleware.config.timeouts
        body = _page(session, store_url, cfg.idle, cfg.absolute, _devices(session, manager)).encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    middleware = SessionMiddleware(app, store=open_store(store_url), **options)
    manager = SessionManager(middleware.store, middleware.config)
    return middleware


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(host: str = "127.0.0.1", port: int = 8000, store_url: str | None = None) -> None:
    """Serve the demo until interrupted."""
    url = store_url or "sqlite:///" + os.path.join(tempfile.gettempdir(), "sessionkeeper-demo.db")
    app = make_app(url)
    with make_server(host, port, app, server_class=_Server, handler_class=_Quiet) as httpd:
        print(f"sessionkeeper demo on http://{host}:{port}/  (store: {url}); Ctrl-C to stop", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            print("bye")
