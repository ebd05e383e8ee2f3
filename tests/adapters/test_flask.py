"""Flask through ``init_app``: flask.session behaves as Flask users expect, with no SECRET_KEY."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, session

from sessionkeeper import flask as sk_flask
from sessionkeeper.core import ids

from .conftest import COOKIE, CountingStore, UnavailableStore


def make(store: Any, **options: Any) -> tuple[Flask, Any]:
    app = Flask(__name__)
    sk_flask.init_app(app, store=store, **options)
    return app, app.test_client(use_cookies=False)


def token_of(response: Any) -> str | None:
    cookies = response.headers.getlist("Set-Cookie")
    if not cookies:
        return None
    (cookie,) = cookies
    return str(cookie.split(";", 1)[0].split("=", 1)[1])


def headers(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Cookie": f"{COOKIE}={token}"}


def test_get_set_pop_clear(store: CountingStore) -> None:
    app, client = make(store)
    assert app.secret_key is None

    @app.route("/set")
    def set_() -> str:
        session["a"] = 1
        session["b"] = [1]
        return "ok"

    @app.route("/use")
    def use() -> dict[str, Any]:
        popped = session.pop("a", None)
        session["b"].append(2)
        return {"popped": popped, "missing": session.get("zzz", "dflt"), "b": session.get("b")}

    @app.route("/clear")
    def clear() -> str:
        session.clear()
        return "cleared"

    @app.route("/dump")
    def dump() -> dict[str, Any]:
        return dict(session)

    token = token_of(client.get("/set"))
    assert token
    assert client.get("/use", headers=headers(token)).json == {"popped": 1, "missing": "dflt", "b": [1, 2]}
    assert client.get("/dump", headers=headers(token)).json == {"b": [1, 2]}
    r = client.get("/clear", headers=headers(token))
    assert r.headers.getlist("Set-Cookie") == []
    assert client.get("/dump", headers=headers(token)).json == {}


def test_new_permanent_and_modified_do_not_create_sessions(store: CountingStore) -> None:
    app, client = make(store)

    @app.route("/flags")
    def flags() -> dict[str, Any]:
        session.permanent = True
        session.modified = True
        return {"permanent": session.permanent, "new": session.new, "modified": session.modified}

    @app.route("/set")
    def set_() -> str:
        session["x"] = 1
        return "ok"

    r = client.get("/flags")
    assert r.json == {"permanent": True, "new": True, "modified": False}
    assert r.headers.getlist("Set-Cookie") == [] and store.kinds() == []
    token = token_of(client.get("/set"))
    r = client.get("/flags", headers=headers(token))
    assert r.json["new"] is False
    # Issue 9.7 changed this: permanent = True is remember() now, so an existing session is
    # saved once with its "remember me" limits (in the metadata, not as a data key) and its
    # cookie gets Max-Age. It used to change nothing at all.
    assert store.kinds() == ["Create", "Load", "Apply"]
    (cookie,) = r.headers.getlist("Set-Cookie")
    assert "Max-Age=" in cookie and token_of(r) == token
    store.reset()
    again = client.get("/flags", headers=headers(token))  # already permanent: nothing to save
    assert again.headers.getlist("Set-Cookie") == [] and store.kinds() == ["Load"]


def test_vary_is_merged_with_the_apps_own(store: CountingStore) -> None:
    app, client = make(store)

    @app.route("/")
    def index() -> Any:
        session.get("x")
        return "ok", 200, {"Vary": "Accept-Encoding"}

    assert client.get("/").headers.getlist("Vary") == ["Accept-Encoding, Cookie"]


def test_view_touching_nothing_makes_no_store_call(store: CountingStore) -> None:
    app, client = make(store)

    @app.route("/")
    def index() -> str:
        return "ok"

    r = client.get("/", headers=headers("A" * 43))
    assert r.headers.getlist("Set-Cookie") == [] and r.headers.getlist("Vary") == [] and store.ops == []


@pytest.mark.parametrize("testing", [False, True])
def test_store_down_during_the_view_is_503(store: CountingStore, testing: bool) -> None:
    app, client = make(UnavailableStore(store))
    app.testing = testing  # the error handler answers even when exceptions propagate

    @app.route("/")
    def index() -> str:
        return str(session.get("x"))

    @app.route("/set")
    def set_() -> str:
        session["x"] = 1
        return "ok"

    r = client.get("/", headers=headers(ids.new_token()))  # a load is needed, and fails
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    r = client.get("/set")  # fails when saving, after the view returned
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers.getlist("Set-Cookie") == []
    assert r.get_data(as_text=True).startswith("Session store unavailable")


def test_unhandled_error_in_testing_mode_saves_nothing(store: CountingStore) -> None:
    app, client = make(store)
    app.testing = True

    @app.route("/")
    def index() -> str:
        session["x"] = 1
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        client.get("/")
    assert store.ops == []


def test_login_and_user_facts(store: CountingStore) -> None:
    app, client = make(store)

    @app.route("/login")
    def login() -> str:
        session.login("dana")  # type: ignore[attr-defined]
        return "in"

    @app.route("/me")
    def me() -> dict[str, Any]:
        return {"user": session.user_id, "created": session.created_at is not None}  # type: ignore[attr-defined]

    token = token_of(client.get("/login"))
    assert client.get("/me", headers=headers(token)).json == {"user": "dana", "created": True}


def test_init_app_registers_the_interface(store: CountingStore) -> None:
    app = Flask(__name__)
    interface = sk_flask.init_app(app, store=store, cookie_name="sid", secure=False)
    assert app.session_interface is interface and app.extensions["sessionkeeper"] is interface
    assert interface.config.cookie.cookie_name == "sid"
