"""Issue 8.5: the usual logout idioms log out. ``session.clear()`` on a signed-in session drops
the user binding: nobody is signed in afterwards, the session is gone from the store and from
the user's index (``ListUser``) and device list, its token is dead. ``pop()`` of the app's own
keys removes only those keys; ``logout()`` is the explicit way.

Requirements: OWASP ASVS 5.0 V7.4.1 (logout invalidates the session on the server, so the
back button or a copied cookie does not resume it), WSTG-SESS-06 (logout functionality).
Through real ASGI (Starlette), WSGI and Flask calls, on the memory and SQLite stores.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sessionkeeper.core.records import ListUser, Meta, Record
from sessionkeeper.core.session import Session
from tests.adapters.conftest import CountingStore
from tests.core.conftest import T0, FakeClock
from tests.lifecycle.conftest import Browser, LClient

KINDS = ["asgi", "wsgi", "flask"]


def listed(c: LClient, store: CountingStore, user: str) -> list[str]:
    rows: list[tuple[str, Meta]] = store.inner.execute(ListUser(user, c.clock()))
    return [key for key, meta in rows if meta.user_id == user]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("then", [None, "bye"])
def test_v7_4_1_clear_on_a_signed_in_session_logs_out(make: Callable[..., LClient], store: CountingStore,
                                                      kind: str, then: str | None) -> None:
    """Flask's ``session.clear()`` idiom: afterwards nobody is signed in, anywhere."""
    c = make(kind)
    b = Browser(c)
    b.login("alice")
    b.go("/set", k="user_id", v="alice")  # the app's own copy, as Flask tutorials keep it
    assert len(listed(c, store, "alice")) == 1 and len(c.manager.devices("alice")) == 1
    before = b.token
    r = b.go("/clear", **({"then": then} if then else {}))
    assert r.status == 200
    assert listed(c, store, "alice") == []
    assert c.manager.devices("alice") == []
    me = b.whoami()
    assert me["user_id"] is None
    assert b.go("/all").json == ({} if then is None else {"after_clear": then})
    # the signed-in token is dead, also for a copy of it (the back button, a stolen cookie)
    copy = Browser(c)
    copy.token = before
    assert copy.whoami()["user_id"] is None
    assert [e.user_id for e in c.events.of("logged_out")] == ["alice"]


@pytest.mark.parametrize("kind", KINDS)
def test_clear_on_an_anonymous_session_keeps_it(make: Callable[..., LClient], kind: str) -> None:
    c = make(kind)
    b = Browser(c)
    b.go("/set", k="cart", v="3 apples")
    token = b.token
    r = b.go("/clear", then="empty")
    assert r.token is None and b.token == token  # same session, same ID
    assert b.go("/all").json == {"after_clear": "empty"}


@pytest.mark.parametrize("kind", KINDS)
def test_pop_of_an_app_key_does_not_log_out(make: Callable[..., LClient], store: CountingStore,
                                            kind: str) -> None:
    """``pop("user_id")`` removes the app's own key; the sign-in from ``login()`` is not a key."""
    c = make(kind)
    b = Browser(c)
    b.login("alice")
    b.go("/set", k="user_id", v="alice")
    assert b.go("/pop", k="user_id").json == "alice"
    me = b.whoami()
    assert (me["user_id"], me["keys"]) == ("alice", [])
    assert len(listed(c, store, "alice")) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_v7_4_1_logout_ends_the_session_on_the_server(make: Callable[..., LClient], store: CountingStore,
                                                      kind: str) -> None:
    c = make(kind)
    b = Browser(c)
    b.login("alice")
    before = b.token
    r = b.go("/logout")
    assert r.token == ""  # the cookie is deleted
    assert listed(c, store, "alice") == [] and c.manager.devices("alice") == []
    copy = Browser(c)
    copy.token = before
    assert copy.whoami()["new"] is True


def test_clear_in_the_session_object() -> None:
    meta = Meta(T0, T0, T0 + 60, T0 + 600, user_id="alice", auth_at=T0)
    s = Session(clock=FakeClock(), max_size=10_000, record=Record({"a": "1"}, meta))
    s.clear()
    assert (s.user_id, len(s), s.destroyed, s.destroyed_user, s.auth_age) == (None, 0, True, "alice", None)
    assert not s.recently_authenticated()
    # signed in during this request, then cleared: nobody is signed in either
    s2 = Session(clock=FakeClock(), max_size=10_000)
    s2["cart"] = 1
    s2.login("bob")
    s2.clear()
    assert (s2.user_id, len(s2), s2.new_user) == (None, 0, None)
