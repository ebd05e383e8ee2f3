"""Review R1: Litestar's two ways of replacing the session (``request.set_session`` and
``request.clear_session``) under ``sessionkeeper.litestar.session_middleware``, attacked.

Litestar's documentation signs users in with ``request.set_session({"user_id": ...})`` and out
with ``request.clear_session()``. Each test names its ASVS 5.0 V7 / WSTG-SESS requirement.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar, Request, get, post
from litestar.testing import TestClient

from sessionkeeper import Session, Store, open_store, storage_key
from sessionkeeper.litestar import session_middleware

BASE = "https://testserver.local"
COOKIE = "__Host-session"


@post("/cart")
async def cart(request: Request[Any, Any, Any]) -> str:
    request.session["cart"] = ["apple"]
    return "added"


@post("/login-idiom")
async def login_idiom(request: Request[Any, Any, Any]) -> str:
    # Litestar's documented sign-in: replace the session with the user's data
    request.set_session({"user_id": "42"})
    return "welcome"


@post("/login")
async def login(request: Request[Any, Any, Any]) -> str:
    session = request.session
    assert isinstance(session, Session)
    session.login("42")
    session["user_id"] = "42"
    return "welcome"


@post("/logout-with-message")
async def logout_with_message(request: Request[Any, Any, Any]) -> str:
    request.clear_session()
    request.set_session({"flash": "signed out"})
    return "bye"


@post("/logout")
async def logout(request: Request[Any, Any, Any]) -> str:
    request.clear_session()
    return "bye"


@get("/me")
async def me(request: Request[Any, Any, Any]) -> dict[str, Any]:
    s = request.session
    return {"user_id": s.get("user_id"), "bound": getattr(s, "user_id", None), "flash": s.get("flash")}


def make_app(store: Store) -> Litestar:
    return Litestar([cart, login_idiom, login, logout_with_message, logout, me],
                    middleware=[session_middleware(store)])


@pytest.fixture
def store() -> Iterator[Store]:
    s = open_store("memory://")
    yield s
    s.close()


def replay(store: Store, token: str) -> dict[str, Any]:
    with TestClient(make_app(store), base_url=BASE) as other:
        other.cookies.set(COOKIE, token, domain="testserver.local")
        result: dict[str, Any] = other.get("/me").json()
        return result


def test_v7_2_4_set_session_sign_in_gets_a_new_session_id(store: Store) -> None:
    """ASVS 5.0 V7.2.4 / WSTG-SESS-03 (session fixation): ``set_session`` replaces the whole
    session, which is how Litestar apps sign in; the pre-login token (one an attacker planted
    or copied earlier) must not become the signed-in session. Today the ID is kept: the
    attacker's copy of the anonymous token reads the signed-in session."""
    with TestClient(make_app(store), base_url=BASE) as victim:
        victim.post("/cart")
        planted = victim.cookies.get(COOKIE)
        assert planted
        victim.post("/login-idiom")
        assert victim.get("/me").json()["user_id"] == "42"
    assert replay(store, planted)["user_id"] is None, "the pre-login token reads the signed-in session"


def test_v7_2_4_control_session_login_rotates(store: Store) -> None:
    """ASVS 5.0 V7.2.4: the same attack against ``session.login()`` fails (control)."""
    with TestClient(make_app(store), base_url=BASE) as victim:
        victim.post("/cart")
        planted = victim.cookies.get(COOKIE)
        assert planted
        victim.post("/login")
        assert victim.cookies.get(COOKIE) != planted
    assert replay(store, planted)["user_id"] is None


def test_v7_4_1_clear_session_is_a_server_side_logout(store: Store) -> None:
    """ASVS 5.0 V7.4.1 / WSTG-SESS-06: after ``clear_session()`` a copied token reads nothing."""
    with TestClient(make_app(store), base_url=BASE) as victim:
        victim.post("/login")
        token = victim.cookies.get(COOKIE)
        assert token
        victim.post("/logout")
    assert store.load(storage_key(token), 0) is None
    assert replay(store, token) == {"user_id": None, "bound": None, "flash": None}


def test_v7_4_1_logout_then_set_session_does_not_keep_the_old_token(store: Store) -> None:
    """ASVS 5.0 V7.4.1 / WSTG-SESS-06: ``clear_session()`` then ``set_session({"flash": ...})``
    (log out, show a message) must still end the signed-in session: a thief's copy of the old
    token reads neither the user nor the new data."""
    with TestClient(make_app(store), base_url=BASE) as victim:
        victim.post("/login")
        token = victim.cookies.get(COOKIE)
        assert token
        victim.post("/logout-with-message")
        assert victim.get("/me").json()["user_id"] is None
    seen = replay(store, token)
    assert seen["user_id"] is None and seen["bound"] is None
    assert seen["flash"] is None, "the old (stolen) token still leads to the post-logout session"
