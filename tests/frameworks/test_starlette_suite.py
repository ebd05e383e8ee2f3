"""Starlette's own session tests against sessionkeeper (issue 15).

``tests/middleware/test_session.py`` is taken from the installed Starlette's source
distribution at test time (see :mod:`tests.frameworks.sdist`; nothing is copied here) and run
with ``starlette.middleware.sessions.SessionMiddleware`` replaced, for that module only, by
:class:`sessionkeeper.starlette.SessionMiddleware` (Starlette's signature; a memory store per
app instead of the default SQLite file) and its ``Session`` by a sessionkeeper session made
from the dict the test gives.

The shim, and nothing else: Starlette's ``tests/types.py`` imports ``httpx2`` for a type alias
only, so a stand-in for it is put in place while the module is imported; the
``test_client_factory`` fixture is Starlette's, on asyncio.

Every test passes, except those in :data:`DIFFERENCES`, marked by name as strict expected
failures (an unexpected pass fails the run) and listed with the same reasons in
docs/frameworks/differences.md.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import starlette.middleware.sessions as starlette_sessions
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse

from sessionkeeper.core import codec
from sessionkeeper.core.records import Meta, Record
from sessionkeeper.core.session import Session
from sessionkeeper.starlette import SessionMiddleware
from tests.frameworks import sdist

# Starlette >= 1.0 asks for httpx2 under its TestClient and warns (an error here) with httpx.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

#: test (pytest node name) -> why sessionkeeper differs on purpose (docs/frameworks/differences.md)
DIFFERENCES: dict[str, str] = {
    "test_partitioned_session[True]": (
        "partitioned=True is refused with a ConfigError: sessionkeeper's cookie has no "
        "Partitioned attribute (CHIPS) yet"
    ),
    "test_session_expires": (
        "max_age=-1 is refused with a ConfigError (a session that expires at once keeps "
        "nothing); Starlette accepts it and refuses the cookie on its next use"
    ),
    "test_session_zero_max_age": (
        "max_age=0 is refused with a ConfigError, as max_age=-1; pass None for a "
        "browser-session cookie"
    ),
    "test_session_cookie_subpath": (
        "the test looks for a lower-case 'path=' attribute; sessionkeeper writes 'Path=' "
        "(attribute names are case-insensitive, RFC 6265 5.2); the path itself is right"
    ),
    "test_domain_cookie": (
        "the test looks for a lower-case 'domain=' attribute; sessionkeeper writes "
        "'Domain=.example.com' (attribute names are case-insensitive, RFC 6265 5.2)"
    ),
    "test_session_tracks_modification": (
        "pop() of a missing key marks the session accessed: the answer depends on the "
        "session's contents, so the response gets 'Vary: Cookie' (every other step of the "
        "test passes)"
    ),
}


class SuiteMiddleware(SessionMiddleware):
    """Starlette's signature with a fresh memory store per app (the default is a file)."""

    def __init__(self, app: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("store", "memory://")
        super().__init__(app, *args, **kwargs)


def suite_session(data: dict[str, Any] | None = None) -> Session:
    """Starlette's ``Session(data)``: a sessionkeeper session loaded from ``data``."""
    if data is None:
        return Session(clock=lambda: 1_800_000_000.0, max_size=64 * 1024)
    meta = Meta(created_at=1e9, last_seen=1e9, expires_at=4e9, absolute_at=4e9)
    rec = Record({k: codec.encode(k, v) for k, v in data.items()}, meta)
    return Session(clock=lambda: 1_800_000_000.0, max_size=64 * 1024, record=rec)


def load_suite() -> types.ModuleType:
    """Starlette's ``tests/middleware/test_session.py``, importing the shim's classes."""
    path = sdist.source_tree("starlette", "tests") / "middleware" / "test_session.py"
    stub = types.ModuleType("tests.types")
    stub.TestClientFactory = Callable[..., TestClient]  # type: ignore[attr-defined]
    saved = starlette_sessions.SessionMiddleware, starlette_sessions.Session
    had_types = sys.modules.get("tests.types")
    sys.modules["tests.types"] = stub
    starlette_sessions.SessionMiddleware = SuiteMiddleware  # type: ignore[misc,assignment]
    starlette_sessions.Session = suite_session  # type: ignore[misc,assignment]
    try:
        spec = importlib.util.spec_from_file_location("starlette_sdist_test_session", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        starlette_sessions.SessionMiddleware, starlette_sessions.Session = saved  # type: ignore[misc]
        if had_types is None:
            del sys.modules["tests.types"]
        else:  # pragma: no cover
            sys.modules["tests.types"] = had_types
    return module


def _suite_tests() -> dict[str, Any]:
    try:
        module = load_suite()
    except BaseException as exc:  # pytest's Skipped/Failed are BaseException
        reason = str(exc)

        def test_suite_available() -> None:
            from tests.conftest import require_service

            require_service("Starlette's source distribution", reason)

        return {"test_suite_available": test_suite_available}
    return {name: obj for name, obj in vars(module).items() if name.startswith("test_") and callable(obj)}


SUITE = _suite_tests()
globals().update(SUITE)


@pytest.fixture
def test_client_factory() -> Callable[..., TestClient]:
    return functools.partial(TestClient, backend="asyncio")


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
    assert "test_session" in SUITE and len(SUITE) >= 10  # the suite really loaded


# ---- issue 15's proof: a FastAPI app that returns request.session works unchanged -------------


@pytest.mark.parametrize("middleware", ["starlette-signature", "asgi"])
def test_fastapi_app_returning_request_session_works_unchanged(middleware: str) -> None:
    app = FastAPI()

    @app.post("/add/{item}")
    def add(item: str, request: Request) -> dict[str, Any]:
        cart = request.session.get("cart", {})
        cart[item] = 1
        request.session["cart"] = cart
        return request.session  # type: ignore[no-any-return]  # FastAPI's jsonable_encoder

    @app.get("/plain")
    def plain(request: Request) -> JSONResponse:
        return JSONResponse(request.session)  # json.dumps through Starlette

    @app.get("/dumps")
    def dumps(request: Request) -> dict[str, Any]:
        assert isinstance(request.session, dict)
        return {"text": json.dumps(request.session), "copy": dict(request.session)}

    if middleware == "asgi":
        from sessionkeeper.asgi import SessionMiddleware as ASGISessionMiddleware

        app.add_middleware(ASGISessionMiddleware, store="memory://", secure=False)
    else:
        app.add_middleware(SessionMiddleware, secret_key="unused", store="memory://")
    client = TestClient(app)
    assert client.get("/plain").json() == {}
    assert client.post("/add/a").json() == {"cart": {"a": 1}}
    assert client.post("/add/b").json() == {"cart": {"a": 1, "b": 1}}
    assert client.get("/plain").json() == {"cart": {"a": 1, "b": 1}}
    got = client.get("/dumps").json()
    assert json.loads(got["text"]) == got["copy"] == {"cart": {"a": 1, "b": 1}}


def test_starlette_signature_maps_its_options() -> None:
    from sessionkeeper.starlette import starlette_options

    assert starlette_options() == {
        "cookie_name": "session", "cookie_path": "/", "same_site": "lax", "secure": False,
        "cookie_domain": None, "cookie_max_age": 14 * 24 * 3600, "idle_timeout": 14 * 24 * 3600,
        "absolute_timeout": 14 * 24 * 3600,
    }
    short = starlette_options(max_age=60, https_only=True, session_cookie="sid", path="/app")
    assert short["idle_timeout"] == 60 and short["absolute_timeout"] == 12 * 3600
    assert short["secure"] is True and short["cookie_name"] == "sid" and short["cookie_path"] == "/app"
    browser = starlette_options(max_age=None)
    assert "cookie_max_age" not in browser and "idle_timeout" not in browser
    from sessionkeeper import ConfigError

    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="max_age"):
            starlette_options(max_age=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="Partitioned"):
        starlette_options(partitioned=True)


def test_starlette_signature_explicit_options_win_and_default_store_is_a_file(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - not called
        pass

    mw = SessionMiddleware(app, "secret", max_age=None, https_only=False, secure=True, store="memory://")
    assert mw.config.secure is True  # sessionkeeper's own option wins over https_only
    monkeypatch.chdir(tmp_path)
    mw = SessionMiddleware(app, secret_key="secret")
    assert type(mw.store).__module__ == "sessionkeeper.stores.sqlite"
    assert (tmp_path / "sessionkeeper.sqlite3").exists()
    assert mw.config.cookie.max_age == 14 * 24 * 3600 and mw.config.secure is False
