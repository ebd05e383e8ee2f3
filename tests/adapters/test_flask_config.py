"""Issue 9.7: Flask's own session keys in ``app.config`` are honoured as defaults (explicit
``init_app`` options win), without undoing the secure defaults through the values Flask puts
in every app; ``session.permanent = True`` is "remember me". Through Flask's test client."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask import session as flask_session

from sessionkeeper import ConfigError, SessionConfig
from sessionkeeper import flask as sk_flask


def make(flask_config: dict[str, Any] | None = None, **options: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(flask_config or {})

    @app.route("/set")
    def set_value() -> str:
        flask_session["k"] = "v"
        return "ok"

    @app.route("/remember")
    def remember() -> str:
        flask_session["k"] = "v"
        flask_session.permanent = True
        return "remembered"

    @app.route("/forget")
    def forget() -> str:
        flask_session.permanent = False
        return "forgotten"

    @app.route("/permanent")
    def permanent() -> str:
        return str(flask_session.permanent)

    sk_flask.init_app(app, store="memory://", **options)
    return app


def set_cookie(app: Flask, path: str = "/set", cookie: str | None = None) -> str:
    client = app.test_client(use_cookies=False)
    headers = {} if cookie is None else {"Cookie": cookie}
    r = client.get(path, base_url="https://app.example", headers=headers)
    (value,) = r.headers.getlist("Set-Cookie")
    return value


def attributes(header: str) -> tuple[str, dict[str, str]]:
    pair, *attrs = [p.strip() for p in header.split(";")]
    name = pair.split("=", 1)[0]
    found = {}
    for a in attrs:
        k, _, v = a.partition("=")
        found[k.lower()] = v
    return name, found


def test_flask_defaults_do_not_weaken_the_secure_defaults() -> None:
    """Every Flask app has SESSION_COOKIE_SECURE=False, SAMESITE=None, NAME "session" …:
    those are Flask's defaults, not the app's choice, so the cookie stays __Host-, Secure,
    HttpOnly, SameSite=Lax."""
    app = make()
    assert app.config["SESSION_COOKIE_SECURE"] is False  # present, as in every Flask app
    name, attrs = attributes(set_cookie(app))
    assert name == "__Host-session"
    assert "secure" in attrs and "httponly" in attrs
    assert attrs["samesite"] == "Lax"
    assert attrs["path"] == "/"
    assert "domain" not in attrs and "max-age" not in attrs


def test_secure_false_written_by_the_app_still_needs_the_option() -> None:
    """SESSION_COOKIE_SECURE=False cannot be told apart from Flask's default: it keeps the
    secure default (the docstring says to pass secure=False to init_app)."""
    app = make({"SESSION_COOKIE_SECURE": False})
    assert "secure" in attributes(set_cookie(app))[1]
    app = make({"SESSION_COOKIE_SECURE": False}, secure=False)
    name, attrs = attributes(set_cookie(app))
    assert "secure" not in attrs and name == "session"


@pytest.mark.parametrize(("config", "name", "expected"), [
    ({"SESSION_COOKIE_NAME": "myapp"}, "__Host-myapp", {}),
    ({"SESSION_COOKIE_SAMESITE": "Strict"}, "__Host-session", {"samesite": "Strict"}),
    ({"SESSION_COOKIE_SAMESITE": "strict"}, "__Host-session", {"samesite": "Strict"}),
    ({"SESSION_COOKIE_SAMESITE": "None"}, "__Host-session", {"samesite": "None"}),
    ({"SESSION_COOKIE_SAMESITE": "LAX"}, "__Host-session", {"samesite": "Lax"}),
    ({"SESSION_COOKIE_HTTPONLY": False}, "__Host-session", {"httponly": None}),
    ({"SESSION_COOKIE_SECURE": True}, "__Host-session", {"secure": ""}),
    # a path or a domain rules out __Host-: the name is sent as the app wrote it
    ({"SESSION_COOKIE_PATH": "/app"}, "session", {"path": "/app"}),
    ({"SESSION_COOKIE_DOMAIN": "example.com"}, "session", {"domain": "example.com"}),
])
def test_flask_keys_the_app_set_are_honoured(config: dict[str, Any], name: str,
                                             expected: dict[str, str | None]) -> None:
    app = make(config)
    path = "/app/set" if config.get("SESSION_COOKIE_PATH") else "/set"
    if path != "/set":
        app.add_url_rule("/app/set", "app_set", lambda: flask_session.update(k="v") or "ok")
    got_name, attrs = attributes(set_cookie(app, path))
    assert got_name == name
    for key, value in expected.items():
        if value is None:
            assert key not in attrs
        else:
            assert attrs.get(key) == value, attrs


def test_explicit_options_win_over_app_config() -> None:
    app = make({"SESSION_COOKIE_SAMESITE": "Strict", "SESSION_COOKIE_NAME": "fromconfig",
                "SESSION_COOKIE_HTTPONLY": False},
               same_site="lax", cookie_name="explicit")
    name, attrs = attributes(set_cookie(app))
    assert name == "__Host-explicit"
    assert attrs["samesite"] == "Lax"
    assert "httponly" not in attrs  # not given explicitly: app.config's False applies


def test_a_config_object_is_taken_as_it_is() -> None:
    app = make({"SESSION_COOKIE_SAMESITE": "Strict"}, config=SessionConfig(cookie_name="cfg"))
    name, attrs = attributes(set_cookie(app))
    assert name == "__Host-cfg" and attrs["samesite"] == "Lax"


def test_bad_flask_values_are_refused_at_init_app() -> None:
    with pytest.raises(ConfigError, match="same_site"):
        make({"SESSION_COOKIE_SAMESITE": "sometimes"})
    with pytest.raises(ConfigError, match="PERMANENT_SESSION_LIFETIME"):
        make({"PERMANENT_SESSION_LIFETIME": "a week"})


@pytest.mark.parametrize("lifetime", [timedelta(days=2), 2 * 86400])
def test_permanent_session_lifetime_sets_the_remembered_lifetime(lifetime: timedelta | int) -> None:
    app = make({"PERMANENT_SESSION_LIFETIME": lifetime})
    cfg = app.extensions["sessionkeeper"].config
    assert cfg.remember_absolute_timeout == 2 * 86400
    assert cfg.remember_idle_timeout == 2 * 86400  # the usual 14 days, capped by the lifetime
    _, attrs = attributes(set_cookie(app, "/remember"))
    assert attrs["max-age"] == str(2 * 86400)


def test_permanent_session_lifetime_longer_than_the_idle_default() -> None:
    app = make({"PERMANENT_SESSION_LIFETIME": timedelta(days=60)})
    cfg = app.extensions["sessionkeeper"].config
    assert cfg.remember_absolute_timeout == 60 * 86400
    assert cfg.remember_idle_timeout == SessionConfig.remember_idle_timeout  # 14 days
    _, attrs = attributes(set_cookie(app, "/remember"))
    assert attrs["max-age"] == str(60 * 86400)


def test_flask_default_lifetime_keeps_sessionkeepers_remember_defaults() -> None:
    cfg = make().extensions["sessionkeeper"].config
    assert cfg.remember_absolute_timeout == SessionConfig.remember_absolute_timeout
    assert cfg.remember_idle_timeout == SessionConfig.remember_idle_timeout


def test_explicit_remember_options_win_over_the_lifetime() -> None:
    app = make({"PERMANENT_SESSION_LIFETIME": timedelta(days=2)}, remember_absolute_timeout=3600)
    cfg = app.extensions["sessionkeeper"].config
    assert cfg.remember_absolute_timeout == 3600
    assert cfg.remember_idle_timeout == 3600


def test_session_permanent_true_makes_a_persistent_cookie_and_false_undoes_it() -> None:
    """``session.permanent = True`` is ``Session.remember()``: the cookie gets Max-Age (it
    survives a browser restart); ``False`` returns it to a browser-session cookie."""
    app = make()
    header = set_cookie(app, "/remember")
    _, attrs = attributes(header)
    assert attrs["max-age"] == str(int(SessionConfig.remember_absolute_timeout))  # type: ignore[arg-type]
    cookie = header.split(";", 1)[0]
    client = app.test_client(use_cookies=False)
    r = client.get("/permanent", base_url="https://app.example", headers={"Cookie": cookie})
    assert r.get_data(as_text=True) == "True"
    r = client.get("/forget", base_url="https://app.example", headers={"Cookie": cookie})
    (forgotten,) = r.headers.getlist("Set-Cookie")
    assert "max-age" not in attributes(forgotten)[1]
    new_cookie = forgotten.split(";", 1)[0]
    r = client.get("/permanent", base_url="https://app.example", headers={"Cookie": new_cookie})
    assert r.get_data(as_text=True) == "False"
