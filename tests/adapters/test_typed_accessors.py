"""Issue 9.8: typed ways to reach the session. ``from sessionkeeper.flask import session`` (Flask
types its own ``session`` as ``SessionMixin``, so ``session.login(...)`` failed mypy) and
``from sessionkeeper.asgi import get_session`` for Starlette/FastAPI requests or raw scopes.
Checked at run time through real calls, and at type-check time by mypy --strict on user code.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi import Request as FastAPIRequest
from flask import Flask
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from werkzeug.test import Client as WerkzeugClient

from sessionkeeper import Session, SessionError
from sessionkeeper import asgi as sk_asgi
from sessionkeeper import flask as sk_flask
from sessionkeeper.asgi import get_session
from sessionkeeper.flask import FlaskSession
from sessionkeeper.flask import session as typed_session

from .conftest import COOKIE


async def _get(app: Any, path: str, cookie: str | None = None) -> httpx.Response:
    headers = {} if cookie is None else {"Cookie": f"{COOKIE}={cookie}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        return await client.get(path, headers=headers)


def _token(r: httpx.Response | Any) -> str:
    header = r.headers.get("set-cookie")
    assert header, "no Set-Cookie"
    return str(header.split(";", 1)[0].split("=", 1)[1])


# ---- ASGI: get_session -------------------------------------------------------------------------


def test_get_session_from_a_starlette_request() -> None:
    async def login(request: Request) -> JSONResponse:
        session = get_session(request)
        assert isinstance(session, Session) and session is request.session
        session.login("alice")
        return JSONResponse("in")

    async def who(request: Request) -> JSONResponse:
        return JSONResponse(get_session(request).user_id)

    app = Starlette(routes=[Route("/login", login), Route("/who", who)],
                    middleware=[Middleware(sk_asgi.SessionMiddleware, store="memory://")])
    token = _token(asyncio.run(_get(app, "/login")))
    assert asyncio.run(_get(app, "/who", token)).json() == "alice"


def test_get_session_as_a_fastapi_dependency() -> None:
    app = FastAPI()
    app.add_middleware(sk_asgi.SessionMiddleware, store="memory://")

    def current_session(request: FastAPIRequest) -> Session:
        return get_session(request)

    @app.get("/login")
    def login(session: Session = Depends(current_session)) -> str:  # noqa: B008 - FastAPI's idiom
        session.login("bob")
        return "in"

    @app.get("/who")
    def who(session: Session = Depends(current_session)) -> str | None:  # noqa: B008
        return session.user_id

    token = _token(asyncio.run(_get(app, "/login")))
    assert asyncio.run(_get(app, "/who", token)).json() == "bob"


def test_get_session_from_a_raw_scope() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        session = get_session(scope)
        session["n"] = session.get("n", 0) + 1
        body = str(session["n"]).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    wrapped = sk_asgi.SessionMiddleware(app, store="memory://")
    r = asyncio.run(_get(wrapped, "/"))
    assert r.text == "1"
    assert asyncio.run(_get(wrapped, "/", _token(r))).text == "2"


def test_get_session_without_the_middleware_says_what_to_do() -> None:
    async def endpoint(request: Request) -> PlainTextResponse:
        try:
            get_session(request)
        except SessionError as exc:
            return PlainTextResponse(str(exc), status_code=500)
        return PlainTextResponse("found")

    app = Starlette(routes=[Route("/", endpoint)])
    r = asyncio.run(_get(app, "/"))
    assert "SessionMiddleware" in r.text and "nothing" in r.text
    with pytest.raises(SessionError, match="a dict"):
        get_session({"type": "http", "session": {}})  # e.g. Starlette's own cookie sessions


# ---- Flask: the typed session proxy --------------------------------------------------------------


def test_flask_typed_session_is_the_request_session() -> None:
    app = Flask(__name__)
    sk_flask.init_app(app, store="memory://")

    @app.route("/login")
    def login() -> str:
        assert isinstance(typed_session, FlaskSession)
        typed_session.login("carol")
        return "in"

    @app.route("/who")
    def who() -> str:
        from flask import session as flask_session

        assert typed_session._get_current_object() is flask_session._get_current_object()  # type: ignore[attr-defined]
        return typed_session.user_id or "-"

    client = WerkzeugClient(app, use_cookies=False)
    r = client.get("/login", base_url="https://testserver")
    cookie = r.headers["Set-Cookie"].split(";", 1)[0]
    assert client.get("/who", base_url="https://testserver",
                      headers={"Cookie": cookie}).get_data(as_text=True) == "carol"


def test_flask_typed_session_without_init_app_says_what_to_do() -> None:
    app = Flask(__name__)
    app.secret_key = "x"

    @app.route("/")
    def view() -> str:
        try:
            typed_session.get("a")
        except SessionError as exc:
            return str(exc)
        return "no error"

    assert "init_app" in WerkzeugClient(app).get("/").get_data(as_text=True)


# ---- mypy --strict on user code ------------------------------------------------------------------

USER_CODE = '''
from flask import Flask
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from sessionkeeper import Session
from sessionkeeper.asgi import get_session
from sessionkeeper.flask import FlaskSession, init_app, session

app = Flask(__name__)
init_app(app, store="sqlite:///sessions.db")


@app.post("/login")
def login() -> str:
    session.login("alice")
    session.permanent = True
    session["cart"] = [1, 2]
    user: str | None = session.user_id
    fresh: bool = session.recently_authenticated(300)
    return f"{user} {fresh}"


async def starlette_login(request: Request) -> PlainTextResponse:
    s: Session = get_session(request)
    s.login("bob")
    s.remember()
    return PlainTextResponse(s.csrf_token())


def raw(scope: dict[str, object]) -> str | None:
    return get_session(scope).user_id


# If either accessor were typed Any, these ignores would be unused: an error under --strict.
wrong: int = session  # type: ignore[assignment]
also_wrong: int = get_session({})  # type: ignore[assignment]
proxy_is_flask_session: FlaskSession = session
'''

FLASK_OWN_SESSION = '''
from flask import session

session.login("alice")
'''


def test_mypy_strict_accepts_the_typed_accessors_in_user_code(tmp_path: Path) -> None:
    """A user's module using both accessors passes ``mypy --strict``; the same call through
    ``flask.session`` is rejected (why the typed proxy exists)."""
    from mypy import api

    good = tmp_path / "user_app.py"
    good.write_text(textwrap.dedent(USER_CODE))
    bad = tmp_path / "flask_own.py"
    bad.write_text(textwrap.dedent(FLASK_OWN_SESSION))
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")
    out, err, status = api.run([
        "--strict", "--config-file", str(config), "--cache-dir", str(tmp_path / ".mypy_cache"),
        "--no-error-summary", "--hide-error-context", str(good), str(bad),
    ])
    lines = [line for line in out.splitlines() if line.strip()]
    assert [line for line in lines if "user_app.py" in line] == [], out + err
    assert any("flask_own.py" in line and '"login"' in line for line in lines), out + err
    assert status == 1  # only the deliberate flask.session error
