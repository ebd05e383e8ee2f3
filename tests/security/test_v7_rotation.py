"""Issue 8.3 and 8.4: what a privilege change does to the session's contents.

- 8.3: the CSRF token is renewed by ``login()``, ``regenerate()`` and ``reauthenticate()``: a
  token obtained before (by a login-CSRF attacker, or leaked from a pre-login page) no longer
  validates afterwards (OWASP CSRF Prevention Cheat Sheet: "the token should be regenerated
  after login"; ASVS 5.0 V7.2.4, new session material at authentication).
- 8.4: ``login(B)`` on a session signed in as A starts empty (as Django's ``login()``): B never
  sees A's data. Anonymous -> user keeps the data (a cart survives the login); the same user
  signing in again keeps it too. (ASVS 5.0 V7.2.4, WSTG-SESS-03 session fixation/swapping.)

Through real ASGI (Starlette), WSGI and Flask calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sessionkeeper import open_store
from sessionkeeper.core.records import Meta, Record
from sessionkeeper.core.session import CSRF_KEY, Session
from tests.adapters.conftest import CountingStore
from tests.core.conftest import T0, FakeClock
from tests.lifecycle.conftest import Browser, LClient

KINDS = ["asgi", "wsgi", "flask"]


@pytest.fixture
def make() -> Iterator[Callable[..., LClient]]:
    made: list[LClient] = []

    def make(kind: str, **options: Any) -> LClient:
        c = LClient(kind, CountingStore(open_store("memory://")), FakeClock(T0), **options)
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            c.close()


# ---- 8.3: CSRF token renewal ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("change", ["login", "regenerate", "reauth", "relogin"])
def test_v7_2_4_csrf_token_is_renewed_on_privilege_change(make: Callable[..., LClient], kind: str,
                                                         change: str) -> None:
    c = make(kind)
    b = Browser(c)
    if change in ("reauth", "relogin"):
        b.login("alice")
    before = b.go("/csrf").json
    assert b.go("/checkcsrf", t=before).json is True
    if change == "login":
        b.login("alice")
    elif change == "relogin":
        b.login("alice")  # the same user again: still a fresh authentication
    elif change == "regenerate":
        assert b.go("/regenerate").token
    else:
        assert b.go("/reauth").status == 200
    assert b.go("/checkcsrf", t=before).json is False  # the old token no longer validates
    after = b.go("/csrf").json
    assert after != before
    assert b.go("/checkcsrf", t=after).json is True


@pytest.mark.parametrize("kind", KINDS)
def test_v7_2_4_periodic_renewal_keeps_the_csrf_token(make: Callable[..., LClient], kind: str) -> None:
    """A renewal is no privilege change: forms rendered before it still submit."""
    c = make(kind, rotate_interval=900, renew_grace=30)
    b = Browser(c)
    b.login("alice")
    token = b.go("/csrf").json
    c.clock.advance(901)
    assert b.go("/whoami").token  # renewed
    assert b.go("/checkcsrf", t=token).json is True


def test_csrf_renewal_in_the_session_object() -> None:
    meta = Meta(T0, T0, T0 + 60, T0 + 600, user_id="alice", auth_at=T0)
    for call in ("login", "regenerate", "reauthenticate"):
        s = Session(clock=FakeClock(), max_size=10_000, record=Record({}, meta))
        old = s.csrf_token()
        getattr(s, call)(*(("alice",) if call == "login" else ()))
        assert not s.check_csrf(old)
        assert CSRF_KEY not in s or s[CSRF_KEY] != old
        assert s.csrf_token() != old


# ---- 8.4: whose data survives a login ---------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_v7_2_4_login_as_another_user_starts_empty(make: Callable[..., LClient], kind: str) -> None:
    """Bob signs in on the browser Alice used: he does not see her card digits or address."""
    c = make(kind)
    b = Browser(c)
    b.login("alice")
    b.go("/set", k="card", v="4242")
    b.go("/set", k="address", v="1 Main St")
    alice_token = b.token
    r = b.go("/login", u="bob")
    assert r.status == 200 and r.token and r.token != alice_token
    me = b.whoami()
    assert (me["user_id"], me["keys"]) == ("bob", [])
    assert b.go("/all").json == {}
    # Alice's session is gone, not just emptied: her old token leads nowhere
    old = Browser(c)
    old.token = alice_token
    assert old.whoami()["new"] is True
    assert c.manager.devices("alice") == []
    assert [d.current for d in c.manager.devices("bob")] == [False]
    assert [e.user_id for e in c.events.of("logged_out")] == ["alice"]
    assert [e.user_id for e in c.events.of("logged_in")] == ["alice", "bob"]


@pytest.mark.parametrize("kind", KINDS)
def test_v7_2_4_data_written_with_the_new_login_is_kept(make: Callable[..., LClient], kind: str) -> None:
    c = make(kind)
    b = Browser(c)
    b.login("alice")
    b.go("/set", k="card", v="4242")
    b.go("/login", u="bob", then="welcome")
    assert b.go("/all").json == {"after_login": "welcome"}


@pytest.mark.parametrize("kind", KINDS)
def test_anonymous_to_user_keeps_the_cart(make: Callable[..., LClient], kind: str) -> None:
    c = make(kind)
    b = Browser(c)
    b.go("/set", k="cart", v="3 apples")
    anon = b.token
    b.login("alice")
    assert b.token != anon  # rotated (fixation), but the cart survived
    assert b.go("/all").json == {"cart": "3 apples"}
    b.login("alice")  # the same user again keeps it too
    assert b.go("/all").json == {"cart": "3 apples"}
    assert b.whoami()["user_id"] == "alice"


def test_login_from_another_user_in_the_session_object() -> None:
    meta = Meta(T0, T0, T0 + 60, T0 + 600, user_id="alice", auth_at=T0)
    s = Session(clock=FakeClock(), max_size=10_000, record=Record({"card": '"4242"'}, meta))
    s.remember(idle=60, absolute=600)
    s.login("bob")
    assert (s.user_id, dict(s), s.destroyed_user, s.persistent) == ("bob", {}, "alice", True)
    s2 = Session(clock=FakeClock(), max_size=10_000, record=Record({"card": '"4242"'}, meta))
    s2.login("alice")
    assert dict(s2) == {"card": "4242"} and not s2.destroyed


@pytest.mark.parametrize("bad", [True, None, 4.2, b"alice", object(), ""])
def test_login_refuses_ids_that_are_not_str_or_int(bad: object) -> None:
    """Issue 9.8: user ids are strings; an int becomes its decimal text, nothing else passes."""
    s = Session(clock=FakeClock(), max_size=10_000)
    with pytest.raises((TypeError, ValueError), match="login"):
        s.login(bad)  # type: ignore[arg-type]
    s.login(42)
    assert s.user_id == "42"

