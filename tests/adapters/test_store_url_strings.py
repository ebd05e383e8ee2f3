"""Issue 9.5 (adapter part): every adapter takes ``store=`` as a Store *or* a store URL string,
and refuses anything else when it is built, naming the option (it used to accept a string
and fail on the first request with ``AttributeError``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from werkzeug.test import Client as WerkzeugClient

from sessionkeeper import ConfigError, SessionConfig, SessionManager, Store
from sessionkeeper import asgi as sk_asgi
from sessionkeeper import flask as sk_flask
from sessionkeeper import wsgi as sk_wsgi

from .conftest import COOKIE, flask_app, starlette_app, wsgi_app


def get(kind: str, app: Any, path: str, cookie: str | None = None) -> tuple[str, str | None]:
    """(body, the session token a Set-Cookie hands out) for one real request."""
    headers = {} if cookie is None else {"Cookie": f"{COOKIE}={cookie}"}
    if kind == "asgi":
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
                return await c.get(path, headers=headers)

        r = asyncio.run(go())
        body, set_cookie = r.text, r.headers.get("set-cookie")
    else:
        w = WerkzeugClient(app, use_cookies=False).get(path, headers=headers, base_url="https://testserver")
        body, set_cookie = w.get_data(as_text=True), w.headers.get("Set-Cookie")
    token = None if set_cookie is None else set_cookie.split(";", 1)[0].split("=", 1)[1]
    return body, token


@pytest.mark.parametrize("kind", ["asgi", "wsgi", "flask"])
@pytest.mark.parametrize("scheme", ["sqlite", "file"])
def test_store_url_string_is_opened(kind: str, scheme: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db" if scheme == "sqlite" else f"file://{tmp_path}/sessions"
    build = {"asgi": starlette_app, "wsgi": wsgi_app, "flask": flask_app}[kind]
    app = build(url)  # type: ignore[arg-type]  # the helpers are typed for Store; a URL works
    _, token = get(kind, app, "/set?k=colour&v=blue")
    assert token
    body, _ = get(kind, app, "/all", token)
    assert json.loads(body) == {"colour": "blue"}  # saved in, and loaded from, that store
    if scheme == "sqlite":
        assert (tmp_path / "s.db").exists()
    else:
        assert any(p.is_file() for p in (tmp_path / "sessions").rglob("*"))


def _noop_asgi(scope: Any, receive: Any, send: Any) -> Any:
    raise AssertionError("not called")


def _noop_wsgi(environ: Any, start_response: Any) -> Any:
    raise AssertionError("not called")


CONSTRUCTORS = {
    "asgi": lambda store, **kw: sk_asgi.SessionMiddleware(_noop_asgi, store=store, **kw),
    "wsgi": lambda store, **kw: sk_wsgi.SessionMiddleware(_noop_wsgi, store=store, **kw),
    "flask": lambda store, **kw: sk_flask.init_app(Flask(__name__), store=store, **kw),
    "manager": lambda store, **kw: SessionManager(store, **kw),
}


@pytest.mark.parametrize("kind", list(CONSTRUCTORS))
def test_every_adapter_accepts_a_url_string(kind: str) -> None:
    built = CONSTRUCTORS[kind]("memory://")
    assert isinstance(built.store, Store)
    assert built.store.name == "memory"


@pytest.mark.parametrize("kind", list(CONSTRUCTORS))
@pytest.mark.parametrize("wrong", [42, b"memory://", None, {"url": "memory://"}, Path("/tmp/x.db")])
def test_wrong_store_type_is_refused_at_construction_naming_the_option(kind: str, wrong: object) -> None:
    with pytest.raises(ConfigError, match=r"store= must be a Store .*or a store URL") as refused:
        CONSTRUCTORS[kind](wrong)
    assert type(wrong).__name__ in str(refused.value)


@pytest.mark.parametrize("kind", list(CONSTRUCTORS))
def test_bad_store_url_is_refused_at_construction(kind: str) -> None:
    with pytest.raises(ConfigError, match="scheme"):
        CONSTRUCTORS[kind]("nosuch://x")
    with pytest.raises(ConfigError, match="not a URL"):
        CONSTRUCTORS[kind]("sessions.db")


@pytest.mark.parametrize("kind", list(CONSTRUCTORS))
def test_wrong_config_type_is_refused_naming_the_option(kind: str) -> None:
    with pytest.raises(ConfigError, match="config= must be a SessionConfig"):
        CONSTRUCTORS[kind]("memory://", config={"secure": False})
    assert CONSTRUCTORS[kind]("memory://", config=SessionConfig(secure=False)).config.secure is False


def test_manager_on_a_url_sees_the_middlewares_sessions(tmp_path: Path) -> None:
    """A SessionManager opened from the same URL lists the sessions the app saved."""
    url = f"sqlite:///{tmp_path}/s.db"
    app = wsgi_app(url)  # type: ignore[arg-type]
    client = WerkzeugClient(app, use_cookies=False)
    r = client.get("/login?u=alice", base_url="https://testserver")
    assert r.status_code == 200
    devices = SessionManager(url).devices("alice")
    assert len(devices) == 1
