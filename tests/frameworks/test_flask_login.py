"""Flask-Login on sessionkeeper (issue 11): ``sessionkeeper.flask_login.init_app``.

A small Flask-Login app driven through Flask's test client: ``login_user`` rotates the session
ID and binds the user (devices, ``revoke_all``), ``logout_user`` deletes the session on the
server, ``remember=True`` is the persistent session (``Max-Age``), and neither revocation nor
logout can be undone by Flask-Login's ``remember_token`` cookie: it is never set, and one the
browser still has is ignored and deleted.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from flask_login import (
    FlaskLoginClient,
    LoginManager,
    UserMixin,
    confirm_login,
    current_user,
    fresh_login_required,
    login_required,
    login_user,
    logout_user,
)
from flask_login.utils import encode_cookie

from sessionkeeper import ConfigError, SessionManager, Store, open_store
from sessionkeeper import flask as sk_flask
from sessionkeeper import flask_login as sk_flask_login
from sessionkeeper.flask import session

COOKIE = "__Host-session"
REMEMBER = "remember_token"
BASE = "https://localhost"


class User(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def make_app(store: Store, *, integrate: bool = True, clock: Clock | None = None,
             **config: Any) -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "only-for-flask-login-remember-cookies-in-these-tests"
    app.config.update(config)
    sk_flask.init_app(app, store=store, **({"clock": clock} if clock else {}))
    login_manager = LoginManager(app)

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        return User(user_id) if user_id in ("42", "7") else None

    if integrate:
        sk_flask_login.init_app(app, login_manager)

    @app.post("/login")
    def login() -> str:
        duration = request.form.get("days")
        login_user(User(request.form["user"]), remember=request.form.get("remember") == "on",
                   duration=timedelta(days=int(duration)) if duration else None)
        return "welcome"

    @app.get("/me")
    @login_required
    def me() -> dict[str, Any]:
        return {"user": current_user.id, "bound": session.user_id, "cart": session.get("cart")}

    @app.get("/fresh")
    @fresh_login_required
    def fresh() -> str:
        return "fresh"

    @app.post("/confirm")
    @login_required
    def confirm() -> str:
        confirm_login()  # the app checked the password again
        return "confirmed"

    @app.post("/cart")
    def cart() -> str:
        session["cart"] = ["apple"]
        return "added"

    @app.post("/logout")
    def logout() -> str:
        logout_user()
        return "bye"

    return app


def cookie(client: Any, name: str = COOKIE) -> str | None:
    found = client.get_cookie(name)
    return None if found is None else str(found.value)


def set_cookie_headers(response: Any, name: str) -> list[str]:
    return [v for v in response.headers.getlist("Set-Cookie") if v.startswith(name + "=")]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(f"sqlite:///{tmp_path}/sessions.db")


def test_v7_2_4_login_user_rotates_the_id_and_binds_the_user(store: Store) -> None:
    """ASVS 5.0 V7.2.4 / WSTG-SESS-03 (session fixation): a new session token on login; the
    pre-login one no longer works. The user is bound server-side: devices list the session."""
    app = make_app(store)
    client = app.test_client()
    assert client.post("/cart", base_url=BASE).status_code == 200
    anonymous = cookie(client)
    assert anonymous
    assert client.post("/login", data={"user": "42"}, base_url=BASE).text == "welcome"
    signed_in = cookie(client)
    assert signed_in and signed_in != anonymous
    assert client.get("/me", base_url=BASE).json == {"user": "42", "bound": "42", "cart": ["apple"]}
    devices = SessionManager(store).devices("42")
    assert len(devices) == 1
    # the pre-login token leads nowhere now
    other = app.test_client()
    other.set_cookie(COOKIE, anonymous, domain="localhost")
    assert other.get("/me", base_url=BASE).status_code == 401


def test_login_as_another_user_keeps_flask_logins_keys_and_ends_the_first_binding(store: Store) -> None:
    app = make_app(store)
    client = app.test_client()
    client.post("/login", data={"user": "42"}, base_url=BASE)
    client.post("/login", data={"user": "7"}, base_url=BASE)
    assert client.get("/me", base_url=BASE).json == {"user": "7", "bound": "7", "cart": None}
    manager = SessionManager(store)
    assert len(manager.devices("7")) == 1
    assert manager.devices("42") == []


def test_v7_4_1_logout_user_deletes_the_session_on_the_server(store: Store) -> None:
    """ASVS 5.0 V7.4.1 / WSTG-SESS-06: after logout the token is dead everywhere."""
    app = make_app(store)
    client = app.test_client()
    client.post("/login", data={"user": "42"}, base_url=BASE)
    token = cookie(client)
    assert client.post("/logout", base_url=BASE).text == "bye"
    assert SessionManager(store).devices("42") == []
    assert store.count(time.time()) == 0  # nothing left on the server
    replay = app.test_client()
    replay.set_cookie(COOKIE, token or "", domain="localhost")
    assert replay.get("/me", base_url=BASE).status_code == 401


def max_age(response: Any) -> int | None:
    (header,) = set_cookie_headers(response, COOKIE)
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "max-age":
            return int(value)
    return None


def test_remember_true_is_the_persistent_session_with_max_age(store: Store) -> None:
    app = make_app(store)
    client = app.test_client()
    r = client.post("/login", data={"user": "42", "remember": "on"}, base_url=BASE)
    # remember_absolute_timeout, counted from the login (ASVS V7.3.2), a moment before the
    # cookie is written (real clock here): a whole second may be gone, never more than 30 days
    age = max_age(r)
    assert age is not None and 29 * 24 * 3600 < age <= 30 * 24 * 3600
    assert set_cookie_headers(r, REMEMBER) == []  # Flask-Login's cookie is not set
    assert client.get("/me", base_url=BASE).status_code == 200
    # login_user(duration=...) is the absolute limit of this session
    r = app.test_client().post("/login", data={"user": "42", "remember": "on", "days": "3"},
                               base_url=BASE)
    age = max_age(r)
    assert age is not None and 3 * 24 * 3600 - 5 <= age <= 3 * 24 * 3600
    # without remember: a browser-session cookie
    r = app.test_client().post("/login", data={"user": "42"}, base_url=BASE)
    assert max_age(r) is None
    # and unticking "remember me" on a later login makes a remembered session forget
    r = client.post("/login", data={"user": "42"}, base_url=BASE)
    assert max_age(r) is None


def test_remember_cookie_duration_from_app_config(store: Store) -> None:
    app = make_app(store, REMEMBER_COOKIE_DURATION=timedelta(days=5))
    r = app.test_client().post("/login", data={"user": "42", "remember": "on"}, base_url=BASE)
    age = max_age(r)
    assert age is not None and 5 * 24 * 3600 - 5 <= age <= 5 * 24 * 3600


def legacy_remember_cookie(app: Flask, user_id: str) -> str:
    """A valid Flask-Login remember cookie, as Flask-Login itself would have issued it."""
    with app.test_request_context():
        return str(encode_cookie(user_id))


def test_v7_4_revoke_all_from_another_instance_is_not_undone_by_the_remember_cookie(
    tmp_path: Path,
) -> None:
    """ASVS 5.0 V7.4.1/V7.4.2, WSTG-SESS-06: revoking every session of a user (from another
    process: a second store opened on the same database) signs them out, and a valid
    Flask-Login remember cookie in the browser does not bring them back; it is deleted."""
    url = f"sqlite:///{tmp_path}/shared.db"
    app = make_app(open_store(url))
    client = app.test_client()
    client.post("/login", data={"user": "42", "remember": "on"}, base_url=BASE)
    remember_cookie = legacy_remember_cookie(app, "42")
    client.set_cookie(REMEMBER, remember_cookie, domain="localhost")
    r = client.get("/me", base_url=BASE)
    assert r.status_code == 200
    assert set_cookie_headers(r, REMEMBER)  # the browser is told to drop it
    assert cookie(client, REMEMBER) is None

    other_instance = SessionManager(open_store(url))
    assert other_instance.revoke_all("42") == 1

    # a copy of the cookie kept (by the browser or a thief) does not sign anyone in
    client.set_cookie(REMEMBER, remember_cookie, domain="localhost")
    r = client.get("/me", base_url=BASE)
    assert r.status_code == 401
    (deleted,) = set_cookie_headers(r, REMEMBER)
    assert "Max-Age=0" in deleted or "Expires=Thu, 01 Jan 1970" in deleted
    assert cookie(client, REMEMBER) is None
    assert client.get("/me", base_url=BASE).status_code == 401
    assert other_instance.devices("42") == []


def test_control_without_the_integration_the_remember_cookie_does_bring_the_user_back(
    store: Store,
) -> None:
    """Why the integration refuses the cookie: plain Flask-Login logs the user back in."""
    app = make_app(store, integrate=False)
    client = app.test_client()
    client.set_cookie(REMEMBER, legacy_remember_cookie(app, "42"), domain="localhost")
    assert client.get("/me", base_url=BASE).json["user"] == "42"


def test_logout_also_deletes_a_remember_cookie_the_browser_sends(store: Store) -> None:
    app = make_app(store)
    client = app.test_client()
    client.post("/login", data={"user": "42"}, base_url=BASE)
    client.set_cookie(REMEMBER, legacy_remember_cookie(app, "42"), domain="localhost")
    r = client.post("/logout", base_url=BASE)
    assert set_cookie_headers(r, REMEMBER), r.headers
    assert cookie(client, REMEMBER) is None
    assert client.get("/me", base_url=BASE).status_code == 401


def test_remembered_session_stops_being_fresh_and_confirm_login_reauthenticates() -> None:
    """ASVS 5.0 V7.5.3 (re-authentication before sensitive actions): a remembered session,
    restored days later, is not a fresh login; ``confirm_login()`` re-authenticates it."""
    clock = Clock()
    store = open_store("memory://")
    app = make_app(store, clock=clock)
    client = app.test_client()
    client.post("/login", data={"user": "42", "remember": "on"}, base_url=BASE)
    assert client.get("/fresh", base_url=BASE).text == "fresh"
    clock.now += 13 * 3600  # past absolute_timeout (12 h): only "remember me" kept it alive
    assert client.get("/me", base_url=BASE).status_code == 200
    assert client.get("/fresh", base_url=BASE).status_code == 401  # needs_refresh
    before = cookie(client)
    assert client.post("/confirm", base_url=BASE).text == "confirmed"
    assert cookie(client) != before  # re-authentication rotates the ID
    assert client.get("/fresh", base_url=BASE).text == "fresh"


def test_unbound_user_id_is_bound_on_first_use(store: Store) -> None:
    """``FlaskLoginClient`` writes ``_user_id`` straight into the session: that sign-in is
    bound server-side on its first request, so devices and revocation see it."""
    app = make_app(store)
    app.test_client_class = FlaskLoginClient
    client = app.test_client(user=User("7"))
    assert client.get("/me", base_url=BASE).json["bound"] == "7"
    manager = SessionManager(store)
    assert len(manager.devices("7")) == 1
    manager.revoke_all("7")
    assert client.get("/me", base_url=BASE).status_code == 401


def test_misconfigurations_are_refused_with_the_fix(store: Store) -> None:
    app = Flask(__name__)
    with pytest.raises(ConfigError, match=r"sessionkeeper\.flask\.init_app"):
        sk_flask_login.init_app(app, LoginManager(app))
    sk_flask.init_app(app, store=store)
    with pytest.raises(ConfigError, match="LoginManager"):
        sk_flask_login.init_app(app, LoginManager())
    app.config["REMEMBER_COOKIE_REFRESH_EACH_REQUEST"] = True
    with pytest.raises(ConfigError, match="REMEMBER_COOKIE_REFRESH_EACH_REQUEST"):
        sk_flask_login.init_app(app, LoginManager(app))


def test_strong_session_protection_ends_the_server_session_too(store: Store) -> None:
    """Flask-Login's ``SESSION_PROTECTION = "strong"`` (WSTG-SESS-03 hijacking defence) signs
    the user out when the client identifier changes: the server session goes with it, so
    no session stays bound to a user nobody is signed in as."""
    app = make_app(store, SESSION_PROTECTION="strong")
    client = app.test_client()
    client.post("/login", data={"user": "42"}, base_url=BASE, headers={"User-Agent": "A"})
    assert client.get("/me", base_url=BASE, headers={"User-Agent": "A"}).status_code == 200
    assert client.get("/me", base_url=BASE, headers={"User-Agent": "B"}).status_code == 401
    assert SessionManager(store).devices("42") == []
    assert client.get("/me", base_url=BASE, headers={"User-Agent": "A"}).status_code == 401
