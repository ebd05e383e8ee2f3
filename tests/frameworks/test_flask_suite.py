"""Flask's own session tests against sessionkeeper (issue 15).

``tests/test_basic.py`` is taken from the installed Flask's source distribution at test time
(see :mod:`tests.frameworks.sdist`; nothing is copied here). The tests run are its session
tests: every test function whose source uses the session (``session``, ``flash``), chosen by
reading the source, so a session test Flask adds later runs too.

The shim, and nothing else: Flask's ``app`` fixture (same name, root path and config) with
:func:`sessionkeeper.flask.init_app` installed, on a memory store. It is installed when the
first request opens its session, so ``app.config`` is read then, after the test's own
``app.config.update(...)``, as Flask's cookie session reads it on each request. The options
are the app's: ``secure=`` is passed as the app's ``SESSION_COOKIE_SECURE`` (``False`` in
Flask's tests, plain-HTTP test client), which sessionkeeper otherwise never takes from Flask's
default (it keeps ``secure=True`` unless told).

Every test passes, except those in :data:`DIFFERENCES`, marked by name as strict expected
failures (an unexpected pass fails the run) and listed with the same reasons in
docs/frameworks/differences.md.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import types
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import flask
import pytest
from flask.sessions import SessionInterface as FlaskSessionInterface
from flask.sessions import SessionMixin

from sessionkeeper.flask import FlaskSession, SessionInterface, init_app
from tests.frameworks import sdist

#: test -> why sessionkeeper differs on purpose (docs/frameworks/differences.md says the same)
DIFFERENCES: dict[str, str] = {
    "test_session_using_session_settings": (
        "SESSION_COOKIE_PARTITIONED = True is refused with a ConfigError: sessionkeeper's "
        "cookie has no Partitioned attribute (CHIPS) yet"
    ),
    "test_session_using_samesite_attribute": (
        "SESSION_COOKIE_SAMESITE = None still sends SameSite=Lax: sessionkeeper always sends "
        "SameSite (Flask's default None is not taken as 'omit it'); pass same_site= to choose"
    ),
    "test_missing_session": (
        "no SECRET_KEY is needed: the cookie carries a random token, nothing is signed, so the "
        "session works where Flask's would be unavailable"
    ),
    "test_session_secret_key_fallbacks": (
        "changing SECRET_KEY does not invalidate sessions: nothing is signed with it (sessions "
        "are revoked on the server: logout(), `sessionkeeper revoke`)"
    ),
    "test_session_expiration": (
        "a permanent session's cookie carries Max-Age (which takes precedence over Expires, RFC "
        "6265 5.3) and no Expires attribute"
    ),
    "test_session_special_types": (
        "markupsafe.Markup is not stored (the codec keeps JSON plus datetime, date, UUID, "
        "Decimal, bytes, tuple): an HTML-safe marker read back from a store is not trusted; "
        "store str() and mark it safe when rendering. The other special types pass"
    ),
    "test_extended_flashing": (
        "flashes a markupsafe.Markup message, which is not stored (see test_session_special_types)"
    ),
    "test_session_cookie_setting": (
        "SESSION_REFRESH_EACH_REQUEST: a request that changes nothing gets no Set-Cookie; the "
        "server-side expiry slides instead (throttled touch), and the cookie is re-sent on writes"
    ),
    "test_session_refresh_vary": (
        "follows from the row above: a request that does not touch the session gets no "
        "Set-Cookie, so it needs no 'Vary: Cookie'"
    ),
}


class InstallOnFirstUse(FlaskSessionInterface):
    """Installs sessionkeeper on the first session a request opens (config read then)."""

    def __init__(self, app: flask.Flask) -> None:
        self.app = app
        self.real: SessionInterface | None = None

    def _real(self) -> SessionInterface:
        if self.real is None:
            # Flask's SESSION_COOKIE_SECURE as the app has it (False unless a test sets it)
            secure = bool(self.app.config["SESSION_COOKIE_SECURE"])
            self.real = init_app(self.app, store="memory://", secure=secure)
        return self.real

    def open_session(self, app: flask.Flask, request: Any) -> FlaskSession:
        return self._real().open_session(app, request)

    def save_session(self, app: flask.Flask, session: SessionMixin, response: Any) -> None:
        self._real().save_session(app, session, response)

    def is_null_session(self, obj: object) -> bool:
        return self._real().is_null_session(obj)


def load_suite() -> types.ModuleType:
    path = sdist.source_tree("flask", "tests") / "test_basic.py"
    spec = importlib.util.spec_from_file_location("flask_sdist_test_basic", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _uses_session(func: Any) -> bool:
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):  # pragma: no cover
        return False
    return "session" in source or "flash" in source


def _suite_tests() -> dict[str, Any]:
    try:
        module = load_suite()
    except BaseException as exc:  # pytest's Skipped/Failed are BaseException
        reason = str(exc)

        def test_suite_available() -> None:
            from tests.conftest import require_service

            require_service("Flask's source distribution", reason)

        return {"test_suite_available": test_suite_available}
    return {
        name: obj for name, obj in vars(module).items()
        if name.startswith("test_") and inspect.isfunction(obj) and _uses_session(obj)
    }


SUITE = _suite_tests()
globals().update(SUITE)
TESTS_DIR = str(sdist.CACHE / f"flask-{version('flask')}" / "tests")  # Flask's app fixture root


@pytest.fixture
def app() -> flask.Flask:
    """Flask's own ``app`` fixture, with sessionkeeper installed on first use."""
    app = flask.Flask("flask_test", root_path=TESTS_DIR)
    app.config.update(TESTING=True, SECRET_KEY="test key")
    app.session_interface = InstallOnFirstUse(app)
    return app


@pytest.fixture
def app_ctx(app: flask.Flask) -> Iterator[Any]:
    with app.app_context() as ctx:
        yield ctx


@pytest.fixture
def req_ctx(app: flask.Flask) -> Iterator[Any]:
    with app.test_request_context() as ctx:
        yield ctx


@pytest.fixture
def client(app: flask.Flask) -> Any:
    return app.test_client()


@pytest.fixture(autouse=True)
def _expected_differences(request: pytest.FixtureRequest) -> None:
    reason = DIFFERENCES.get(request.node.name)
    if reason is not None:
        request.node.add_marker(pytest.mark.xfail(reason=reason, strict=True))


def test_every_difference_names_a_test_of_the_suite() -> None:
    if "test_suite_available" in SUITE:
        pytest.skip("suite unavailable")
    names = {name.split("[")[0] for name in DIFFERENCES}
    assert names <= set(SUITE), names - set(SUITE)
    assert "test_session_expiration" in SUITE and len(SUITE) >= 12  # the suite really loaded


# ---- issue 15's proof: a Flask app that json.dumps its session works unchanged ---------------


def _json_app(sessionkeeper: bool) -> flask.Flask:
    """One app, run on Flask's own cookie session and on sessionkeeper's."""
    app = flask.Flask(__name__)
    app.secret_key = "only-for-flask's-own-session"
    if sessionkeeper:
        init_app(app, store="memory://", secure=False)

    @app.post("/add/<item>")
    def add(item: str) -> str:
        cart = flask.session.get("cart", {})
        cart[item] = 1
        flask.session["cart"] = cart
        real = flask.session._get_current_object()  # type: ignore[attr-defined]
        return json.dumps(real)

    @app.get("/show")
    def show() -> Any:
        real = flask.session._get_current_object()  # type: ignore[attr-defined]
        assert isinstance(flask.session, dict) and isinstance(real, dict)
        return flask.jsonify(real)

    @app.get("/both")
    def both() -> Any:
        real = flask.session._get_current_object()  # type: ignore[attr-defined]
        return flask.jsonify(
            session=real, copy=dict(flask.session), unpacked={**flask.session},
            text=json.dumps(real), equal=real == dict(flask.session),
        )

    @app.get("/proxy")
    def proxy() -> str:
        # The proxy itself is not a dict to json (true of Flask's own session as well).
        try:
            return json.dumps(flask.session)
        except TypeError as exc:
            return type(exc).__name__

    return app


def _run_json_app(sessionkeeper: bool) -> list[Any]:
    client = _json_app(sessionkeeper).test_client()
    return [
        client.get("/show").json, json.loads(client.post("/add/a").text),
        json.loads(client.post("/add/b").text), client.get("/show").json, client.get("/both").json,
        client.get("/proxy").text,
    ]


def test_flask_app_that_json_dumps_its_session_works_unchanged() -> None:
    got = _run_json_app(sessionkeeper=True)
    assert got == _run_json_app(sessionkeeper=False)  # exactly what Flask's own session gives
    cart = {"cart": {"a": 1, "b": 1}}
    assert got[:4] == [{}, {"cart": {"a": 1}}, cart, cart]
    assert got[4] == {"session": cart, "copy": cart, "unpacked": cart, "text": json.dumps(cart),
                      "equal": True}


def test_flask_session_is_a_dict_and_a_session_mixin() -> None:
    assert issubclass(FlaskSession, dict) and issubclass(FlaskSession, SessionMixin)
    assert os.path.isdir(TESTS_DIR) or "test_suite_available" in SUITE


# ---- issue 12 end to end: the naive cart keeps every concurrent addition --------------------


@pytest.mark.parametrize("store", ["memory://", "sqlite:///carts.db", "file:///carts"])
def test_naive_cart_keeps_every_concurrent_addition(store: str, tmp_path: Path) -> None:
    """N requests load the session, all wait until every one has loaded, then each adds its
    item the naive way and saves: each save is a patch, so all N items survive."""
    import threading

    if store != "memory://":
        store = store.replace(":///", f":///{tmp_path}/")
    n = 6
    loaded = threading.Barrier(n, timeout=30)
    app = flask.Flask(__name__)
    init_app(app, store=store, secure=False)

    @app.get("/start")
    def start() -> str:
        flask.session["user"] = "anon"
        return ""

    @app.get("/add/<item>")
    def add(item: str) -> str:
        cart = flask.session.get("cart", {})  # loads the session (no cart yet)
        loaded.wait()  # every request has its snapshot before any saves
        cart[item] = 1
        flask.session["cart"] = cart
        return ""

    @app.get("/count")
    def count() -> str:
        return str(len(flask.session.get("cart", {})))

    first = app.test_client()
    first.get("/start")
    cookie = first.get_cookie("session")
    assert cookie is not None
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            client = app.test_client()
            client.set_cookie("session", cookie.value)
            assert client.get(f"/add/i{i}").status_code == 200
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert first.get("/count").text == str(n)
