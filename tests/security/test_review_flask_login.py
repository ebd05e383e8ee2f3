"""Review R1: Flask-Login on sessionkeeper (``sessionkeeper.flask_login``), attacked.

Each test names its requirement (OWASP ASVS 5.0 V7 / WSTG-SESS). Real WSGI calls through
Flask's test client; a sqlite store in the test's own directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user
from flask_login.utils import encode_cookie

from sessionkeeper import SessionManager, Store, open_store
from sessionkeeper import flask as sk_flask
from sessionkeeper import flask_login as sk_flask_login
from sessionkeeper.flask import session

COOKIE = "__Host-session"
BASE = "https://localhost"


class User(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def make_app(store: Store, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "review-r1-secret-for-flask-login-cookie-signing"
    app.config.update(config)
    sk_flask.init_app(app, store=store)
    manager = LoginManager(app)

    @manager.user_loader
    def load_user(user_id: str) -> User | None:
        return User(user_id) if user_id in ("42", "7") else None

    sk_flask_login.init_app(app, manager)

    @app.post("/login")
    def login() -> str:
        login_user(User(request.form["user"]), remember=request.form.get("remember") == "on")
        return "welcome"

    @app.get("/me")
    @login_required
    def me() -> dict[str, Any]:
        return {"user": current_user.id, "bound": session.user_id}

    @app.post("/cart")
    def cart() -> str:
        session["cart"] = ["apple"]
        return "added"

    return app


def cookie(client: Any) -> str | None:
    found = client.get_cookie(COOKIE)
    return None if found is None else str(found.value)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = open_store(f"sqlite:///{tmp_path}/sessions.db")
    yield s
    s.close()


def test_wstg_sess_09_strong_protection_also_ends_a_remembered_session(store: Store) -> None:
    """WSTG-SESS-09 (session hijacking) / ASVS 5.0 V7.5.3: with ``SESSION_PROTECTION =
    "strong"`` a stolen session replayed from another client (other IP and browser) is signed
    out. Flask-Login treats a *permanent* session as "basic" (it only marks it not fresh), and
    the integration makes every "remember me" session permanent, so the long-lived sessions,
    the ones most worth stealing, lose the strong protection the app configured."""
    app = make_app(store, SESSION_PROTECTION="strong")
    victim = app.test_client()
    owner = {"User-Agent": "Firefox/1"}
    victim.post("/login", data={"user": "42", "remember": "on"}, base_url=BASE, headers=owner,
                environ_overrides={"REMOTE_ADDR": "198.51.100.1"})
    stolen = cookie(victim)
    assert stolen
    assert victim.get("/me", base_url=BASE, headers=owner,
                      environ_overrides={"REMOTE_ADDR": "198.51.100.1"}).status_code == 200

    thief = app.test_client()
    thief.set_cookie(COOKIE, stolen, domain="localhost")
    answer = thief.get("/me", base_url=BASE, headers={"User-Agent": "curl/8"},
                       environ_overrides={"REMOTE_ADDR": "203.0.113.66"})
    assert answer.status_code == 401, "the thief is signed in despite SESSION_PROTECTION='strong'"


def test_wstg_sess_09_control_strong_protection_ends_a_browser_session(store: Store) -> None:
    """Control for the test above (WSTG-SESS-09): without "remember me" the same replay is
    signed out, and the server session is gone (ASVS 5.0 V7.4.1)."""
    app = make_app(store, SESSION_PROTECTION="strong")
    victim = app.test_client()
    victim.post("/login", data={"user": "42"}, base_url=BASE, headers={"User-Agent": "Firefox/1"},
                environ_overrides={"REMOTE_ADDR": "198.51.100.1"})
    stolen = cookie(victim)
    assert stolen
    thief = app.test_client()
    thief.set_cookie(COOKIE, stolen, domain="localhost")
    assert thief.get("/me", base_url=BASE, headers={"User-Agent": "curl/8"},
                     environ_overrides={"REMOTE_ADDR": "203.0.113.66"}).status_code == 401
    assert SessionManager(store).devices("42") == []


@pytest.mark.parametrize("with_session", [False, True])
def test_v7_2_1_forged_remember_token_signs_nobody_in(store: Store, with_session: bool) -> None:
    """ASVS 5.0 V7.2.1 (tokens verified by the backend) / WSTG-SESS-03: a ``remember_token``
    validly signed with the app's SECRET_KEY (leaked key, an old cookie, one set by a sibling
    subdomain) never signs anyone in: no server session backs it. Also when it comes beside an
    anonymous session, which must not become user 42's session (WSTG-SESS-08)."""
    app = make_app(store)
    attacker = app.test_client()
    if with_session:
        attacker.post("/cart", base_url=BASE)
        assert cookie(attacker)
    with app.test_request_context():
        forged = encode_cookie("42")
    attacker.set_cookie("remember_token", forged, domain="localhost")
    assert attacker.get("/me", base_url=BASE).status_code == 401
    assert SessionManager(store).devices("42") == []
    # and the cookie was told to go away
    assert attacker.get_cookie("remember_token") is None


def test_v7_2_4_client_cannot_plant_user_id_in_an_anonymous_session(store: Store) -> None:
    """ASVS 5.0 V7.2.4 / WSTG-SESS-08 (session puzzling): the session data lives on the server,
    so a client cannot write ``_user_id`` into it; an anonymous session stays anonymous and is
    never bound by the "bind on first use" path."""
    app = make_app(store)
    client = app.test_client()
    client.post("/cart", base_url=BASE)
    token = cookie(client)
    assert token
    # the only things a client controls: cookies and headers
    client.set_cookie("_user_id", "42", domain="localhost")
    answer = client.get("/me", base_url=BASE, headers={"X-User-Id": "42"})
    assert answer.status_code == 401
    assert SessionManager(store).devices("42") == []
