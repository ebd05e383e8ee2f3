"""Adapter test fixtures: stores (every one ``open_store`` can open now), store wrappers that
count or fail, the same small app written for ASGI (Starlette), WSGI and Flask, and one
client interface over all three."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from flask import Flask
from flask import session as flask_session
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from werkzeug.test import Client as WerkzeugClient

from sessionkeeper import Store, StoreUnavailable, open_store
from sessionkeeper import asgi as sk_asgi
from sessionkeeper import flask as sk_flask
from sessionkeeper import wsgi as sk_wsgi
from sessionkeeper.core.records import Op
from sessionkeeper.core.session import Session

COOKIE = "__Host-session"


# ---- stores -----------------------------------------------------------------------------


class CountingStore(Store):
    """Passes every operation to ``inner`` and remembers it."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.ops: list[Op] = []
        self._lock = threading.Lock()

    def _seen(self, op: Op) -> None:
        with self._lock:
            self.ops.append(op)

    def execute(self, op: Op) -> Any:
        self._seen(op)
        return self.inner.execute(op)

    async def aexecute(self, op: Op) -> Any:
        self._seen(op)
        return await self.inner.aexecute(op)

    def close(self) -> None:
        self.inner.close()

    def kinds(self) -> list[str]:
        return [type(op).__name__ for op in self.ops]

    def reset(self) -> None:
        with self._lock:
            self.ops.clear()


class UnavailableStore(Store):
    """A store whose server is down for the operations named in ``failing``."""

    def __init__(
        self, inner: Store, failing: Iterable[str] = ("Load", "Create", "Apply", "Rename", "Delete")
    ) -> None:
        self.inner = inner
        self.failing = set(failing)

    def execute(self, op: Op) -> Any:
        if type(op).__name__ in self.failing:
            raise StoreUnavailable("connection refused (test)")
        return self.inner.execute(op)

    async def aexecute(self, op: Op) -> Any:
        if type(op).__name__ in self.failing:
            raise StoreUnavailable("connection refused (test)")
        return await self.inner.aexecute(op)


def have_sqlite() -> bool:
    return importlib.util.find_spec("sessionkeeper.stores.sqlite") is not None


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        if not have_sqlite():
            pytest.skip("sessionkeeper.stores.sqlite does not exist yet")
        return f"sqlite:///{tmp_path}/s.db"
    return "memory://"


@pytest.fixture
def store(store_url: str) -> Iterator[CountingStore]:
    inner = open_store(store_url)
    try:
        yield CountingStore(inner)
    finally:
        inner.close()


# ---- the app, three times ---------------------------------------------------------------
# Routes (GET, query string parameters):
#   /untouched           never looks at the session
#   /all                 the whole session as JSON (a read)
#   /set?k=&v=           session[k] = v
#   /append?k=&v=        session.setdefault(k, []).append(v)   (nested mutation)
#   /login?u=  /logout  /regenerate
#   /user                {"user_id": ...}
#   /fail                session["failed"] = "yes", then answers 500
#   /raise               session["raised"] = "yes", then raises


class Boom(Exception):
    pass


def act(session: Session | Any, path: str, q: dict[str, str]) -> tuple[int, Any]:
    """The app's logic, shared by the three framework versions: (status, JSON body)."""
    if path == "/untouched":
        return 200, "ok"
    if path == "/all":
        return 200, dict(session)
    if path == "/set":
        session[q["k"]] = q["v"]
        return 200, "set"
    if path == "/append":
        session.setdefault(q["k"], []).append(q["v"])
        return 200, "appended"
    if path == "/login":
        session.login(q["u"])
        return 200, "in"
    if path == "/logout":
        session.logout()
        return 200, "out"
    if path == "/regenerate":
        session.regenerate()
        return 200, "regenerated"
    if path == "/user":
        return 200, {"user_id": session.user_id}
    if path == "/fail":
        session["failed"] = "yes"
        return 500, "failed"
    if path == "/raise":
        session["raised"] = "yes"
        raise Boom("app error")
    return 404, "not found"


def starlette_app(store: Store, **options: Any) -> Starlette:
    async def endpoint(request: Request) -> Response:
        status, body = act(request.session, request.url.path, dict(request.query_params))
        return JSONResponse(body, status_code=status)

    paths = ["/untouched", "/all", "/set", "/append", "/login", "/logout", "/regenerate", "/user",
             "/fail", "/raise"]
    return Starlette(
        routes=[Route(p, endpoint) for p in paths],
        middleware=[Middleware(sk_asgi.SessionMiddleware, store=store, **options)],
    )


def wsgi_app(store: Store, **options: Any) -> sk_wsgi.SessionMiddleware:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        status, body = act(environ[sk_wsgi.ENVIRON_KEY], environ["PATH_INFO"], q)
        data = json.dumps(body).encode()
        start_response(f"{status} X", [("Content-Type", "application/json"),
                                        ("Content-Length", str(len(data)))])
        return [data]

    return sk_wsgi.SessionMiddleware(app, store=store, **options)


def flask_app(store: Store, **options: Any) -> Flask:
    from flask import request

    app = Flask(__name__)
    assert app.secret_key is None  # server-side sessions need no SECRET_KEY

    @app.route("/<path:name>")
    def endpoint(name: str) -> Any:
        status, body = act(flask_session, "/" + name, request.args.to_dict())
        return app.json.response(body), status

    sk_flask.init_app(app, store=store, **options)
    return app


# ---- one client over all three ------------------------------------------------------------


@dataclass
class Resp:
    status: int
    headers: list[tuple[str, str]]  # names lowercased
    body: bytes

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    def one(self, name: str) -> str | None:
        values = self.all(name)
        assert len(values) <= 1, values
        return values[0] if values else None

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def token(self) -> str | None:
        """The token a Set-Cookie hands out (None if no cookie, "" if it deletes it)."""
        cookies = [c for c in self.all("set-cookie") if c.startswith(COOKIE + "=")]
        if not cookies:
            return None
        assert len(cookies) == 1, cookies
        value = cookies[0].split(";", 1)[0].split("=", 1)[1]
        return "" if value == '""' else value


class AppClient:
    """``get(path, cookie=...)`` against one adapter; cookies are sent by hand, so tests see
    exactly what goes over the wire."""

    def __init__(self, kind: str, store: Store, **options: Any) -> None:
        self.kind = kind
        if kind == "asgi":
            self.app: Any = starlette_app(store, **options)
        elif kind == "wsgi":
            self.app = wsgi_app(store, **options)
        else:
            self.app = flask_app(store, **options)

    def get(self, path: str, cookie: str | None = None, raw_cookie: str | None = None) -> Resp:
        header = raw_cookie if raw_cookie is not None else (None if cookie is None else f"{COOKIE}={cookie}")
        headers = {} if header is None else {"Cookie": header}
        if self.kind == "asgi":
            return asyncio.run(self._asgi_get(path, headers))
        client = WerkzeugClient(self.app, use_cookies=False)
        r = client.get(path, headers=headers)
        return Resp(r.status_code, [(k.lower(), v) for k, v in r.headers.items()], r.get_data())

    async def _asgi_get(self, path: str, headers: dict[str, str]) -> Resp:
        transport = httpx.ASGITransport(app=self.app)
        # Bytes go through as they are (UTF-8, NUL …), as a lenient server would pass them on.
        raw = {k: v.encode("utf-8") for k, v in headers.items()}
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
            r = await client.get(path, headers=raw)
        return Resp(r.status_code, [(k.decode().lower(), v.decode()) for k, v in r.headers.raw], r.content)


@pytest.fixture(params=["asgi", "wsgi", "flask"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(kind: str, store: CountingStore) -> AppClient:
    return AppClient(kind, store)
