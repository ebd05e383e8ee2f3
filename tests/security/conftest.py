"""Shared helpers for the adversarial suite: raw ASGI and WSGI calls that send exactly the bytes
a test names (no client library normalising headers on the way), and one tiny app written once
for both interfaces.

Every test file here names the OWASP ASVS 5.0 V7 or WSTG-SESS requirement it covers (see
README.md for the map).
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from sessionkeeper import Store, open_store, wsgi
from tests.adapters.conftest import CountingStore
from tests.core.conftest import T0, FakeClock
from tests.lifecycle.conftest import LClient

COOKIE = "__Host-session"  # the default policy's cookie name

Message = dict[str, Any]


@dataclass
class Resp:
    """One response: status, headers (names lowercased, values as latin-1 text), body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    def cookies(self, name: str = COOKIE) -> list[str]:
        """The values of every Set-Cookie for ``name`` (``""`` for a deletion)."""
        out = []
        for header in self.all("set-cookie"):
            pair = header.split(";", 1)[0]
            key, _, value = pair.partition("=")
            if key == name:
                out.append("" if value == '""' else value)
        return out

    @property
    def token(self) -> str | None:
        """The token the one Set-Cookie for our cookie hands out, else None."""
        values = self.cookies()
        assert len(values) <= 1, "two Set-Cookie headers for the session cookie"
        return values[0] if values and values[0] else None

    @property
    def json(self) -> Any:
        return json.loads(self.body)


# ---- one app, two interfaces ----------------------------------------------------------------
# Routes (any method; query string parameters):
#   /set?who=X   session["who"] = X; answers {"who": X}
#   /read        answers the view below without writing
#   /login?u=U   session.login(U)
#   anything else answers the view
# The view: {"who": session.get("who"), "n": len(session), "new": session.is_new,
#            "url_token": session.url_token()}  (url_token only with transport="url")


def act(session: Any, path: str, query: str) -> tuple[int, bytes]:
    q = {k: v[0] for k, v in parse_qs(query).items()}
    if path == "/set":
        session["who"] = q.get("who", "x")
    elif path == "/login":
        session.login(q.get("u", "u"))
    view = {"who": session.get("who"), "n": len(session), "new": session.is_new}
    if path == "/url-token":
        view["url_token"] = session.url_token()
    return 200, json.dumps(view).encode()


def asgi_app() -> Any:
    """The bare ASGI app behind the middleware."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        status, body = act(scope["session"], scope["path"], scope["query_string"].decode("latin-1"))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    return app


def wsgi_app() -> Any:
    """The bare WSGI app behind the middleware."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        status, body = act(environ[wsgi.ENVIRON_KEY], environ["PATH_INFO"], environ.get("QUERY_STRING", ""))
        start_response(f"{status} OK", [("Content-Type", "application/json")])
        return [body]

    return app


# ---- raw calls --------------------------------------------------------------------------------


async def asgi_request(
    app: Any,
    path: str = "/",
    *,
    method: str = "GET",
    cookie: bytes | None = None,
    headers: Sequence[tuple[bytes, bytes]] = (),
    query: bytes = b"",
    scheme: str = "https",
) -> Resp:
    """One raw ASGI HTTP call; header values go through as the given bytes."""
    raw = [(b"host", b"testserver"), *headers]
    if cookie is not None:
        raw.append((b"cookie", cookie))
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": scheme, "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": query, "headers": raw, "client": ("203.0.113.7", 40000),
        "server": ("testserver", 443 if scheme == "https" else 80),
    }
    sent: list[Message] = []
    done = False

    async def receive() -> Message:
        nonlocal done
        if not done:
            done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(0)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers_out = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in start.get("headers", [])]
    return Resp(int(start["status"]), headers_out, body)


def wsgi_request(
    app: Any,
    path: str = "/",
    *,
    method: str = "GET",
    cookie: bytes | None = None,
    headers: Sequence[tuple[bytes, bytes]] = (),
    query: bytes = b"",
    scheme: str = "https",
) -> Resp:
    """One raw WSGI call. As PEP 3333 says, header values in environ are the bytes decoded as
    latin-1 (so what the ASGI test sends as bytes is the same request here)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path,
        "QUERY_STRING": query.decode("latin-1"), "SERVER_NAME": "testserver",
        "SERVER_PORT": "443" if scheme == "https" else "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.7", "HTTP_HOST": "testserver",
        "wsgi.version": (1, 0), "wsgi.url_scheme": scheme, "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers:
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        text = value.decode("latin-1")
        environ[key] = environ[key] + "," + text if key in environ else text
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie.decode("latin-1")
    captured: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured.append((status, response_headers))
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, response_headers = captured[-1]
    return Resp(int(status.split(" ", 1)[0]), [(k.lower(), v) for k, v in response_headers], body)


class Client:
    """The same request API over the ASGI or the WSGI middleware on one store."""

    def __init__(self, kind: str, store: Store, **options: Any) -> None:
        self.kind = kind
        if kind == "asgi":
            from sessionkeeper import asgi

            self.app: Any = asgi.SessionMiddleware(asgi_app(), store=store, **options)
        else:
            self.app = wsgi.SessionMiddleware(wsgi_app(), store=store, **options)

    def request(self, path: str = "/", **kwargs: Any) -> Resp:
        if self.kind == "asgi":
            return asyncio.run(asgi_request(self.app, path, **kwargs))
        return wsgi_request(self.app, path, **kwargs)


@pytest.fixture
def memory_store() -> Iterator[Store]:
    store = open_store("memory://")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(params=["asgi", "wsgi"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ---- lifecycle clients (test_v7_anomaly, test_v7_logout; a module may define its own) ----


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CountingStore]:
    """A counting store over memory or SQLite, for :func:`make`'s clients."""
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/s.db"
    inner = open_store(url)
    try:
        yield CountingStore(inner)
    finally:
        inner.close()


@pytest.fixture
def make(store: CountingStore) -> Iterator[Callable[..., LClient]]:
    """``make(kind, **options)``: a lifecycle test client (asgi, wsgi, flask) on ``store``."""
    made: list[LClient] = []

    def make(kind: str, **options: Any) -> LClient:
        c = LClient(kind, store, FakeClock(T0), **options)
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            c.close()
