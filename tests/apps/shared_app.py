"""A tiny app served in its own process by the cross-process tests:

    python -m tests.apps.shared_app asgi|wsgi PORT STORE_URL

Endpoints: GET /whoami, POST /login?user=U, POST /logout, POST /set?k=K&v=V.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sessionkeeper import Session, open_store
from sessionkeeper import asgi as sk_asgi
from sessionkeeper import wsgi as sk_wsgi

OPTIONS: dict[str, Any] = {"secure": False}


def handle(session: Session, method: str, path: str, query: str) -> tuple[int, dict[str, Any]]:
    q = {k: v[0] for k, v in parse_qs(query).items()}
    if path == "/login" and method == "POST":
        session.login(q["user"])
    elif path == "/logout" and method == "POST":
        session.logout()
    elif path == "/set" and method == "POST":
        session[q["k"]] = q["v"]
    elif path != "/whoami":
        return 404, {}
    if path == "/whoami":
        return 200, {"user": session.user_id, "data": dict(session)}
    return 200, {"ok": True}


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    status, body = handle(environ[sk_wsgi.ENVIRON_KEY], environ["REQUEST_METHOD"],
                          environ["PATH_INFO"], environ.get("QUERY_STRING", ""))
    raw = json.dumps(body).encode()
    start_response(f"{status} X", [("Content-Type", "application/json"), ("Content-Length", str(len(raw)))])
    return [raw]


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    status, body = handle(scope["session"], scope["method"], scope["path"], scope["query_string"].decode())
    raw = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": raw})


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    kind, port, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    store = open_store(url)
    if kind == "wsgi":
        app = sk_wsgi.SessionMiddleware(wsgi_app, store=store, **OPTIONS)
        with make_server("127.0.0.1", port, app, server_class=_Server, handler_class=_Quiet) as httpd:
            httpd.serve_forever()
    else:
        import uvicorn

        uvicorn.run(sk_asgi.SessionMiddleware(asgi_app, store=store, **OPTIONS),  # type: ignore[arg-type]
                    host="127.0.0.1", port=port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
