"""Issue 4 fixtures: one app written for ASGI (Starlette), WSGI and Flask, driven with an
injected clock, over every store ``open_store`` can open here (memory, SQLite, files).

- :class:`LClient` sends requests by hand (the token travels by the configured transport, or
  the one a test names), from a chosen client address and User-Agent, and can run requests in
  the background: ASGI requests run as tasks on one event loop in a helper thread, WSGI and
  Flask requests in worker threads. Every wait is bounded by ``WAIT``.
- :class:`Browser` is one device: its address, its User-Agent and the token it holds.
- :class:`Events` subscribes a sync and an async callable (and, if asked, one that raises).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
from flask import Flask
from flask import request as flask_request
from flask import session as flask_session
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from werkzeug.test import Client as WerkzeugClient

from sessionkeeper import SessionConfig, SessionError, SessionEvent, SessionManager, Store, open_store
from sessionkeeper import asgi as sk_asgi
from sessionkeeper import flask as sk_flask
from sessionkeeper import wsgi as sk_wsgi
from sessionkeeper.core import ids
from sessionkeeper.core.lifecycle import Device
from tests.adapters.conftest import CountingStore
from tests.adapters.conftest import Resp as AdapterResp
from tests.core.conftest import T0, FakeClock

from ..waits import WAIT, Gate, Rendezvous

T = TypeVar("T")
COOKIE = "__Host-session"

FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
CHROME_WIN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36")
SAFARI_IOS = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")

KINDS = ["asgi", "wsgi", "flask"]


# ---- clock, stores ---------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def store_url_for(name: str, tmp_path: Path) -> str:
    if name == "sqlite":
        return f"sqlite:///{tmp_path}/s.db"
    if name == "file":
        return f"file://{tmp_path}/files"
    return "memory://"


# Every store: memory, SQLite and files, and the PostgreSQL and Redis stores (each test on its
# own table or key prefix, through the conformance suite's backends, which skip locally and
# fail under CI=true when a server is missing). SK_LIFECYCLE_SERVICES=0 leaves the servers out.
STORES = ["memory", "sqlite", "file"]
SERVICE_STORES = ["postgres", "redis", "redis-cluster"]
if os.environ.get("SK_LIFECYCLE_SERVICES", "1") not in ("0", "false", "no"):
    STORES += SERVICE_STORES


@contextmanager
def open_inner(name: str, tmp_path: Path) -> Iterator[Store]:
    if name in SERVICE_STORES:
        from tests.stores.backends import postgres, redis

        backend = postgres if name == "postgres" else redis
        with backend.open(name, tmp_path) as store:
            yield store
        return
    store = open_store(store_url_for(name, tmp_path))
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(params=STORES)
def inner_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with open_inner(str(request.param), tmp_path) as store:
        yield store


@pytest.fixture
def store(inner_store: Store) -> CountingStore:
    return CountingStore(inner_store)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ---- events ----------------------------------------------------------------------------------


@dataclass(repr=False)
class Events:
    """A sync and an async subscriber, each keeping what it received."""

    sync_seen: list[SessionEvent] = field(default_factory=list)
    async_seen: list[SessionEvent] = field(default_factory=list)
    failures: int = 0

    def sync(self, event: SessionEvent) -> None:
        self.sync_seen.append(event)

    async def asub(self, event: SessionEvent) -> None:
        await asyncio.sleep(0)  # really async: it suspends once
        self.async_seen.append(event)

    def broken(self, event: SessionEvent) -> None:
        self.failures += 1
        raise RuntimeError("audit hook down (test)")

    def subscribers(self, broken: bool = False) -> tuple[Callable[[SessionEvent], Any], ...]:
        if broken:
            return (self.broken, self.sync, self.asub, self.broken)
        return (self.sync, self.asub)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.sync_seen]

    def of(self, kind: str) -> list[SessionEvent]:
        return [e for e in self.sync_seen if e.kind == kind]

    def clear(self) -> None:
        self.sync_seen.clear()
        self.async_seen.clear()


# ---- the app, three times --------------------------------------------------------------------


class RecordingManager(SessionManager):
    """A SessionManager that notes which of its methods the apps called."""

    calls: list[str]

    def __getattribute__(self, name: str) -> Any:
        if name in ("devices", "adevices", "revoke", "arevoke", "revoke_others", "arevoke_others",
                    "revoke_all", "arevoke_all"):
            object.__getattribute__(self, "calls").append(name)
        return object.__getattribute__(self, name)


def dev_json(d: Device) -> dict[str, Any]:
    return {
        "session_id": d.session_id,
        "created_at": d.created_at.timestamp(),
        "last_seen": d.last_seen.timestamp(),
        "expires_at": d.expires_at.timestamp(),
        "auth_at": None if d.auth_at is None else d.auth_at.timestamp(),
        "ip": d.ip,
        "user_agent": d.user_agent,
        "current": d.current,
    }


def act(c: LClient, session: Any, path: str, q: dict[str, str]) -> tuple[int, Any]:
    """The app's logic, shared by the three framework versions: (status, JSON body)."""
    c.hits.append(path)
    m = c.manager
    if path == "/untouched":
        return 200, "ok"
    if path == "/set":
        session[q["k"]] = q["v"]
        return 200, "set"
    if path == "/all":
        return 200, dict(session)
    if path == "/login":
        session.login(q["u"])
        if "then" in q:
            session["after_login"] = q["then"]
        return 200, "in"
    if path == "/logout":
        session.logout()
        return 200, "out"
    if path == "/destroy":
        session.destroy()
        return 200, "destroyed"
    if path == "/regenerate":
        session.regenerate()
        return 200, "regenerated"
    if path == "/reauth":
        try:
            session.reauthenticate()
        except SessionError as exc:
            return 409, str(exc)
        return 200, "reauthenticated"
    if path == "/whoami":
        auth_at = session.auth_at
        return 200, {
            "user_id": session.user_id,
            "new": session.is_new,
            "public_id": session.public_id,
            "recent": session.recently_authenticated(float(q.get("max", "300"))),
            "auth_at": None if auth_at is None else auth_at.timestamp(),
            "keys": sorted(session),
        }
    if path == "/csrf":
        return 200, session.csrf_token()
    if path == "/checkcsrf":
        return 200, session.check_csrf(q.get("t"))
    if path == "/urltoken":
        if "u" in q:
            session.login(q["u"])
        if "k" in q:
            session[q["k"]] = q["v"]
        return 200, session.url_token()
    if path == "/post":
        session["posted"] = q.get("v", "yes")
        return 200, "posted"
    if path == "/remember":
        if "u" in q:
            session.login(q["u"])
        idle, absolute = q.get("idle"), q.get("absolute")
        session.remember(None if idle is None else float(idle),
                         None if absolute is None else float(absolute))
        return 200, session.persistent
    if path == "/forget":
        session.forget()
        return 200, session.persistent
    if path == "/clear":
        session.clear()
        if "then" in q:
            session["after_clear"] = q["then"]
        return 200, "cleared"
    if path == "/pop":
        return 200, session.pop(q["k"], None)
    if path == "/devices":
        devices = m.devices(current=session)
        c.devices_seen.extend(devices)
        return 200, [dev_json(d) for d in devices]
    if path == "/revoke":
        return 200, m.revoke(session.user_id, q["sid"])
    if path == "/revoke_others":
        return 200, m.revoke_others(session)
    if path == "/revoke_all":
        return 200, m.revoke_all(session.user_id)
    if path == "/slow":
        user = session.user_id  # loads the session now (lazily in WSGI and Flask)
        c.gate.hold()
        session[q["k"]] = q["v"]
        return 200, {"user_id": user}
    if path == "/race":
        user = session.user_id
        c.meet.wait_sync()
        session[q["k"]] = q["v"]
        return 200, {"user_id": user}
    return 404, "not found"


async def aact(c: LClient, session: Any, path: str, q: dict[str, str]) -> tuple[int, Any]:
    """The async version: SessionManager's a-forms, async waits; the rest as :func:`act`."""
    m = c.manager
    if path == "/devices":
        c.hits.append(path)
        devices = await m.adevices(current=session)
        c.devices_seen.extend(devices)
        return 200, [dev_json(d) for d in devices]
    if path == "/revoke":
        c.hits.append(path)
        return 200, await m.arevoke(session.user_id, q["sid"])
    if path == "/revoke_others":
        c.hits.append(path)
        return 200, await m.arevoke_others(session)
    if path == "/revoke_all":
        c.hits.append(path)
        return 200, await m.arevoke_all(session.user_id)
    if path == "/slow":
        c.hits.append(path)
        user = session.user_id
        await asyncio.to_thread(c.gate.hold)
        session[q["k"]] = q["v"]
        return 200, {"user_id": user}
    if path == "/race":
        c.hits.append(path)
        user = session.user_id
        await c.meet.wait_async()
        session[q["k"]] = q["v"]
        return 200, {"user_id": user}
    return act(c, session, path, q)


PATHS = ["/untouched", "/set", "/all", "/login", "/logout", "/destroy", "/regenerate", "/reauth",
         "/whoami", "/csrf", "/checkcsrf", "/urltoken", "/post", "/devices", "/revoke",
         "/revoke_others", "/revoke_all", "/slow", "/race",
         "/remember", "/forget", "/clear", "/pop"]


def starlette_app(c: LClient) -> Starlette:
    async def endpoint(request: Request) -> Response:
        status, body = await aact(c, request.session, request.url.path, dict(request.query_params))
        return JSONResponse(body, status_code=status)

    return Starlette(
        routes=[Route(p, endpoint, methods=["GET", "POST"]) for p in PATHS],
        middleware=[Middleware(sk_asgi.SessionMiddleware, store=c.store, config=c.config)],
    )


def wsgi_app(c: LClient) -> sk_wsgi.SessionMiddleware:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        status, body = act(c, environ[sk_wsgi.ENVIRON_KEY], environ["PATH_INFO"], q)
        data = json.dumps(body).encode()
        start_response(f"{status} X", [("Content-Type", "application/json"),
                                        ("Content-Length", str(len(data)))])
        return [data]

    return sk_wsgi.SessionMiddleware(app, store=c.store, config=c.config)


def flask_app(c: LClient) -> Flask:
    app = Flask(__name__)

    @app.route("/<path:name>", methods=["GET", "POST"])
    def endpoint(name: str) -> Any:
        status, body = act(c, flask_session, "/" + name, flask_request.args.to_dict())
        return app.json.response(body), status

    sk_flask.init_app(app, store=c.store, config=c.config)
    return app


# ---- the client --------------------------------------------------------------------------------


@dataclass
class Resp(AdapterResp):
    """The adapters' response, plus the header transport's token."""

    transport: str = "cookie"
    header_name: str = "x-session-token"

    @property
    def cookie_token(self) -> str | None:
        return AdapterResp.token.fget(self)  # type: ignore[attr-defined,no-any-return]

    @property
    def token(self) -> str | None:
        """The token the response hands out: None if none, "" if it takes it away."""
        if self.transport == "header":
            return self.one(self.header_name)
        return self.cookie_token


class LClient:
    """One app (``kind``) over ``store`` with ``options``; see the module docstring."""

    def __init__(self, kind: str, store: Store, clock: FakeClock, events: Events | None = None,
                 broken_subscriber: bool = False, **options: Any) -> None:
        self.kind = kind
        self.store = store
        self.clock = clock
        self.events = events if events is not None else Events()
        self.config = SessionConfig(clock=clock, on_event=self.events.subscribers(broken_subscriber),
                                    **options)
        self.manager = RecordingManager(store, self.config)
        self.manager.calls = []
        self.hits: list[str] = []
        self.devices_seen: list[Device] = []
        self.gate = Gate()
        self.meet = Rendezvous(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        if kind == "asgi":
            self.app: Any = starlette_app(self)
        elif kind == "wsgi":
            self.app = wsgi_app(self)
        else:
            self.app = flask_app(self)

    # -- background machinery --

    def _start(self) -> None:
        if self.kind == "asgi" and self._loop is None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._thread = threading.Thread(target=loop.run_forever, daemon=True)
            self._thread.start()
        elif self.kind != "asgi" and self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=16)

    def close(self) -> None:
        if self._loop is not None:
            loop = self._loop
            inner = getattr(self.store, "inner", self.store)
            if inner.name in ("postgresql", "redis"):
                # Their async connections belong to this loop: close them on it, before it goes.
                asyncio.run_coroutine_threadsafe(inner.aclose(), loop).result(WAIT)
            loop.call_soon_threadsafe(loop.stop)
            assert self._thread is not None
            self._thread.join(WAIT)
            assert not self._thread.is_alive()
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            self._loop = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # -- requests --

    def submit(self, path: str, token: str | None = None, *, method: str = "GET",
               ip: str = "203.0.113.5", ua: str = FIREFOX_LINUX, via: str | None = None,
               headers: dict[str, str] | None = None, **query: str) -> Future[Resp]:
        """Start a request in the background; ``token`` travels ``via`` the configured transport
        unless another is named; ``query`` is added to the query string."""
        self._start()
        via = via or self.config.transport
        hdrs = dict(headers or {})
        hdrs.setdefault("User-Agent", ua)
        params = dict(query)
        if token is not None:
            if via == "cookie":
                hdrs["Cookie"] = f"{COOKIE}={token}"
            elif via == "header":
                hdrs[self.config.header_name] = token
            else:
                params[self.config.url_param] = token
        target = path + (("&" if "?" in path else "?") + urlencode(params) if params else "")
        if self.kind == "asgi":
            assert self._loop is not None
            return asyncio.run_coroutine_threadsafe(self._asgi(method, target, hdrs, ip), self._loop)
        assert self._pool is not None
        return self._pool.submit(self._wsgi, method, target, hdrs, ip)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on this (ASGI) client's event loop, where its store's async side lives."""
        self._start()
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(WAIT)

    def request(self, path: str, token: str | None = None, **kwargs: Any) -> Resp:
        return self.submit(path, token, **kwargs).result(WAIT)

    def _resp(self, status: int, headers: list[tuple[str, str]], body: bytes) -> Resp:
        return Resp(status, headers, body, self.config.transport, self.config.header_name.lower())

    async def _asgi(self, method: str, target: str, headers: dict[str, str], ip: str) -> Resp:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 50123))
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
            r = await client.request(method, target, headers=headers)
        return self._resp(r.status_code, [(k.decode().lower(), v.decode()) for k, v in r.headers.raw],
                          r.content)

    def _wsgi(self, method: str, target: str, headers: dict[str, str], ip: str) -> Resp:
        client = WerkzeugClient(self.app, use_cookies=False)
        r = client.open(target, method=method, headers=headers, base_url="https://testserver",
                        environ_base={"REMOTE_ADDR": ip})
        return self._resp(r.status_code, [(k.lower(), v) for k, v in r.headers.items()], r.get_data())


@pytest.fixture
def make_client(clock: FakeClock) -> Iterator[Callable[..., LClient]]:
    made: list[LClient] = []

    def make(kind: str, store: Store, **options: Any) -> LClient:
        c = LClient(kind, store, clock, **options)
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            c.close()


@pytest.fixture
def client(kind: str, store: CountingStore, make_client: Callable[..., LClient]) -> LClient:
    return make_client(kind, store)


class Browser:
    """One device: address, User-Agent and the token it holds (updated from responses)."""

    def __init__(self, client: LClient, ip: str = "203.0.113.5", ua: str = FIREFOX_LINUX) -> None:
        self.client = client
        self.ip = ip
        self.ua = ua
        self.token: str | None = None

    def go(self, path: str, method: str = "GET", **query: str) -> Resp:
        r = self.client.request(path, self.token, method=method, ip=self.ip, ua=self.ua, **query)
        self.take(r)
        return r

    def submit(self, path: str, **query: str) -> Future[Resp]:
        return self.client.submit(path, self.token, ip=self.ip, ua=self.ua, **query)

    def take(self, r: Resp) -> None:
        if r.token is not None:
            self.token = r.token or None

    def login(self, user: str) -> Resp:
        r = self.go("/login", u=user)
        assert r.status == 200 and r.token, (r.status, r.headers)
        return r

    def whoami(self, **query: str) -> dict[str, Any]:
        r = self.go("/whoami", **query)
        assert r.status == 200
        body: dict[str, Any] = r.json
        return body


def secrets_of(store: Store, *tokens: str | None) -> list[str]:
    """The tokens and their storage keys: what must never show in devices or events."""
    out: list[str] = []
    for t in tokens:
        if t:
            out += [t, ids.storage_key(t)]
    return out


def is_public_id(value: object) -> bool:
    return isinstance(value, str) and len(value) == 16 and all(ch in "0123456789abcdef" for ch in value)
