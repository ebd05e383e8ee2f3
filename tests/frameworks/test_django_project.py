"""A small Django project (``tests/frameworks/djproject``) on ``SESSION_ENGINE =
"sessionkeeper.django"`` with Django's own ``SessionMiddleware`` (through
``sessionkeeper.django.SessionMiddleware``, which adds device facts) and ``django.contrib.auth``,
driven by Django's test client over https (``secure=True``), as ``SESSION_COOKIE_SECURE``
needs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client, override_settings

from sessionkeeper import SessionManager, open_store, storage_key
from sessionkeeper.django import SessionStore

PASSWORD = "correct horse battery staple"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"


@pytest.fixture(scope="module", autouse=True)
def database() -> None:
    call_command("migrate", run_syncdb=True, verbosity=0)


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    """A SQLite store shared by "two app instances" (two store objects on one file)."""
    url = "sqlite:///" + quote(str(tmp_path / "sessions.db"))
    with override_settings(SESSIONKEEPER={"store": url}):
        yield url  # the store opened from the URL is closed when the override ends


@pytest.fixture
def user() -> User:
    name = f"alice{time.monotonic_ns()}"
    return User.objects.create_user(name, password=PASSWORD)


def client() -> Client:
    return Client(HTTP_USER_AGENT=FIREFOX)


def sid(c: Client) -> str | None:
    cookie = c.cookies.get(settings.SESSION_COOKIE_NAME)
    return cookie.value if cookie is not None and cookie.value else None


def login(c: Client, user: User) -> None:
    r = c.post("/login", {"username": user.username, "password": PASSWORD}, secure=True)
    assert r.status_code == 200, r.content


def me(c: Client) -> dict[str, object]:
    r = c.get("/me", secure=True)
    assert r.status_code == 200
    data: dict[str, object] = r.json()
    return data


def stored(token: str | None) -> object:
    assert token is not None
    return SessionStore.backend().store.load(storage_key(token), time.time())


def test_v7_2_4_login_rotates_the_id_and_binds_the_user(url: str, user: User) -> None:
    c = client()
    r = c.post("/add", {"item": "apple"}, secure=True)
    cookie = r.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax"
    before = sid(c)
    login(c, user)
    after = sid(c)
    assert after is not None and after != before
    assert stored(before) is None  # the pre-login ID is dead (session fixation, WSTG-SESS-03)
    record = stored(after)
    assert record is not None and record.meta.user_id == str(user.pk)  # type: ignore[attr-defined]
    assert me(c) == {"user": user.username, "cart": ["apple"]}


def test_v7_4_1_logout_deletes_the_session_on_the_server(url: str, user: User) -> None:
    c = client()
    login(c, user)
    token = sid(c)
    c.post("/logout", secure=True)
    assert stored(token) is None
    assert sid(c) is None
    # The old cookie replayed (e.g. stolen before logout) grants nothing.
    replay = client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = token
    assert me(replay)["user"] is None


def test_password_change_keeps_this_session_signed_in_and_ends_the_others(url: str, user: User) -> None:
    here, elsewhere = client(), client()
    login(here, user)
    login(elsewhere, user)
    before = sid(here)
    assert here.post("/password", {"new": "another long passphrase"}, secure=True).status_code == 200
    assert sid(here) != before  # update_session_auth_hash cycles the key
    assert stored(before) is None
    assert me(here)["user"] == user.username
    assert me(elsewhere)["user"] is None  # Django's session hash check


def test_v7_5_2_devices_and_revoke_from_another_instance(url: str, user: User) -> None:
    phone, laptop = client(), client()
    login(phone, user)
    login(laptop, user)
    devices = phone.get("/devices", secure=True).json()["devices"]
    assert len(devices) == 2
    assert {d["ua"] for d in devices} == {"Firefox on Linux"} and {d["ip"] for d in devices} == {"127.0.0.1"}
    other_instance = open_store(url)  # a second app server on the same store
    try:
        assert SessionManager(other_instance).revoke_all(str(user.pk)) == 2
    finally:
        other_instance.close()
    assert me(phone)["user"] is None and me(laptop)["user"] is None


def test_v7_4_1_a_write_after_logout_elsewhere_is_interrupted_not_resurrected(url: str, user: User) -> None:
    c = client()
    login(c, user)
    token = sid(c)
    r = c.get("/race", secure=True)
    assert r.status_code == 400  # Django's SessionInterrupted
    assert stored(token) is None


def test_anonymous_request_that_never_touches_the_session_sets_no_cookie(url: str) -> None:
    c = client()
    assert c.get("/me", secure=True).status_code == 200  # reads it: empty, no cookie
    assert sid(c) is None
