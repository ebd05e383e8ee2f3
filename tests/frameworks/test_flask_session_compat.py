"""Flask-Session's configuration keys in ``sessionkeeper.flask.init_app`` (issue 15): the
one-line migration from ``flask_session.Session(app)`` to ``init_app(app)``.

Keys that map are honoured; keys whose purpose sessionkeeper already serves are accepted and
not used; the rest is refused with a message that says what to use instead.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import flask
import pytest
import redis

from sessionkeeper import ConfigError
from sessionkeeper.flask import flask_session_options, init_app
from tests.conftest import port_open, require_service

REDIS_PORT = int(os.environ.get("SESSIONKEEPER_TEST_REDIS_PORT", "6379"))


def make_app(**config: Any) -> flask.Flask:
    app = flask.Flask(__name__)
    app.config.update(TESTING=True, **config)

    @app.post("/set/<value>")
    def set_value(value: str) -> str:
        flask.session["value"] = value
        return "ok"

    @app.get("/get")
    def get_value() -> str:
        return str(flask.session.get("value"))

    return app


def round_trip(app: flask.Flask) -> Any:
    client = app.test_client()
    response = client.post("/set/hello")
    assert client.get("/get").text == "hello"
    return response


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    if not port_open("127.0.0.1", REDIS_PORT):
        require_service("Redis", f"nothing listens on 127.0.0.1:{REDIS_PORT}")
    prefix = f"fs-compat-{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis(port=REDIS_PORT)
    for key in client.scan_iter(match=prefix.replace("[", "\\[") + "*"):  # our own keys only
        client.delete(key)
    client.close()


def test_session_type_redis_uses_the_client_and_the_key_prefix(redis_prefix: str) -> None:
    client = redis.Redis(host="127.0.0.1", port=REDIS_PORT, db=0)
    app = make_app(SESSION_TYPE="redis", SESSION_REDIS=client, SESSION_KEY_PREFIX=redis_prefix,
                   SESSION_USE_SIGNER=True)
    init_app(app, secure=False)  # the one changed line: was flask_session.Session(app)
    round_trip(app)
    assert any(client.scan_iter(match=redis_prefix + "*")), "sessions are kept under SESSION_KEY_PREFIX"
    client.close()


def test_session_type_filesystem_uses_the_file_dir(tmp_path: Path) -> None:
    app = make_app(SESSION_TYPE="filesystem", SESSION_FILE_DIR=str(tmp_path / "flask_session"))
    init_app(app, secure=False)
    round_trip(app)
    assert any(p.is_file() for p in (tmp_path / "flask_session").rglob("*"))


def test_session_permanent_gives_lifetime_cookies_and_idle_limit(tmp_path: Path) -> None:
    app = make_app(SESSION_TYPE="filesystem", SESSION_FILE_DIR=str(tmp_path), SESSION_PERMANENT=True,
                   PERMANENT_SESSION_LIFETIME=timedelta(hours=1))
    interface = init_app(app, secure=False)
    cookie = round_trip(app).headers["Set-Cookie"]
    assert re.search(r"; Max-Age=3600(;|$)", cookie), cookie
    assert interface.config.timeouts.idle == 3600
    _, options = flask_session_options(make_app(SESSION_PERMANENT=False))
    assert options == {}  # False (or absent): a browser-session cookie, sessionkeeper's limits


@pytest.mark.parametrize(
    ("kind", "hint"),
    [
        ("sqlalchemy", "postgresql://"),
        ("cachelib", "SESSION_FILE_DIR"),
        ("memcached", "redis://"),
        ("mongodb", "store="),
        ("dynamodb", "store="),
        ("nosuchthing", "store="),
    ],
)
def test_session_types_that_do_not_map_are_refused_with_what_to_use(kind: str, hint: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(hint)) as info:
        init_app(make_app(SESSION_TYPE=kind))
    assert kind in str(info.value)


def test_no_store_and_no_session_type_is_refused_with_what_to_pass() -> None:
    with pytest.raises(ConfigError, match="store= must be a Store") as info:
        init_app(make_app())
    assert "SESSION_TYPE" in str(info.value)


def test_session_redis_must_be_a_redis_client() -> None:
    with pytest.raises(ConfigError, match=re.escape("redis.Redis client")):
        init_app(make_app(SESSION_TYPE="redis", SESSION_REDIS="redis://localhost"))
    with pytest.raises(ConfigError, match="unix socket"):
        init_app(make_app(SESSION_TYPE="redis", SESSION_REDIS=redis.Redis(unix_socket_path="/tmp/x.sock")))


def test_an_explicit_store_wins_over_session_type(tmp_path: Path) -> None:
    app = make_app(SESSION_TYPE="mongodb")  # refused without a store; moot with one
    interface = init_app(app, store="memory://", secure=False)
    assert type(interface.store).__name__ == "MemoryStore"
    round_trip(app)
