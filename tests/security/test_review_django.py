"""Review R1: ``SESSION_ENGINE = "sessionkeeper.django"`` attacked through Django's own
``SessionMiddleware`` and ``django.contrib.auth`` (the test project in
``tests/frameworks/djproject``, Django's test client over https).

Each test names its ASVS 5.0 V7 / WSTG-SESS requirement.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.frameworks.djproject.settings import configure

configure()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

from sessionkeeper import SessionManager, new_token, storage_key  # noqa: E402
from sessionkeeper.django import SessionStore  # noqa: E402

PASSWORD = "correct horse battery staple"
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"


@pytest.fixture(scope="module", autouse=True)
def database() -> None:
    call_command("migrate", run_syncdb=True, verbosity=0)


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    url = "sqlite:///" + quote(str(tmp_path / "sessions.db"))
    with override_settings(SESSIONKEEPER={"store": url}):
        yield url


@pytest.fixture
def user() -> User:
    return User.objects.create_user(f"r1user{time.monotonic_ns()}", password=PASSWORD)


def sid(c: Client) -> str | None:
    cookie = c.cookies.get(settings.SESSION_COOKIE_NAME)
    return cookie.value if cookie is not None and cookie.value else None


def with_cookie(token: str) -> Client:
    c = Client(HTTP_USER_AGENT=UA)
    c.cookies[settings.SESSION_COOKIE_NAME] = token
    return c


def stored(token: str) -> object:
    return SessionStore.backend().store.load(storage_key(token), time.time())


def whoami(c: Client) -> object:
    r = c.get("/me", secure=True)
    assert r.status_code == 200
    return r.json()["user"]


def sign_in(c: Client, user: User) -> None:
    r = c.post("/login", {"username": user.username, "password": PASSWORD}, secure=True)
    assert r.status_code == 200


def test_v7_2_4_a_client_chosen_key_is_never_adopted(url: str) -> None:
    """WSTG-SESS-03 / ASVS 5.0 V7.2.4 and V7.2.1: a well-formed key the server never issued
    (chosen by an attacker and planted in the victim's browser) is not the key the first write
    is saved under; Django's ``exists()``/``create()`` never see it."""
    chosen = new_token()
    c = with_cookie(chosen)
    assert c.post("/add", {"item": "apple"}, secure=True).status_code == 200
    issued = sid(c)
    assert issued is not None and issued != chosen
    assert stored(chosen) is None
    assert SessionStore().exists(chosen) is False


def test_v7_2_4_a_planted_real_session_is_replaced_at_login(url: str, user: User) -> None:
    """WSTG-SESS-03 (session fixation with a *real* anonymous session the attacker opened):
    Django's ``login()`` cycles the key; the attacker's copy reads nobody."""
    attacker = Client(HTTP_USER_AGENT=UA)
    attacker.post("/add", {"item": "bait"}, secure=True)
    planted = sid(attacker)
    assert planted
    victim = with_cookie(planted)
    sign_in(victim, user)
    assert sid(victim) != planted
    assert whoami(victim) == user.username
    assert whoami(attacker) is None
    assert stored(planted) is None


def test_v7_4_1_flush_on_logout_ends_the_session_for_a_copied_cookie(url: str, user: User) -> None:
    """ASVS 5.0 V7.4.1 / WSTG-SESS-06: ``logout()`` (``flush()``) deletes the session on the
    server; a thief's copy of the cookie reads nothing afterwards."""
    owner = Client(HTTP_USER_AGENT=UA)
    sign_in(owner, user)
    token = sid(owner)
    assert token
    thief = with_cookie(token)
    assert whoami(thief) == user.username
    owner.post("/logout", secure=True)
    assert stored(token) is None
    assert whoami(thief) is None


def test_v7_4_1_save_every_request_does_not_resurrect_a_revoked_session(url: str, user: User) -> None:
    """ASVS 5.0 V7.4.1 / V7.4.2: with ``SESSION_SAVE_EVERY_REQUEST`` Django saves on every
    request; a session revoked from outside (``SessionManager.revoke_all``) while the browser
    still sends its cookie is not written back, under the old key or a new one, and the user
    is signed out."""
    with override_settings(SESSION_SAVE_EVERY_REQUEST=True):
        c = Client(HTTP_USER_AGENT=UA)
        sign_in(c, user)
        token = sid(c)
        assert token
        assert SessionManager(SessionStore.backend().store).revoke_all(str(user.pk)) == 1
        assert whoami(with_cookie(token)) is None
        assert stored(token) is None
        assert SessionManager(SessionStore.backend().store).devices(str(user.pk)) == []


def test_v7_2_4_cycle_key_leaves_the_old_key_dead(url: str, user: User) -> None:
    """ASVS 5.0 V7.2.4: a password change (``update_session_auth_hash`` -> ``cycle_key``)
    moves the session to a new key; the old key (a copy a thief took) reads nothing."""
    owner = Client(HTTP_USER_AGENT=UA)
    sign_in(owner, user)
    before = sid(owner)
    assert before
    assert owner.post("/password", {"new": "another long passphrase"}, secure=True).status_code == 200
    after = sid(owner)
    assert after and after != before
    assert stored(before) is None
    assert whoami(with_cookie(before)) is None
    assert whoami(owner) == user.username
