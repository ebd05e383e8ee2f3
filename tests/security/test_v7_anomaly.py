"""Issue 8.2: a request that looks stolen never receives a session that carries the user's
identity, under every anomaly policy that defends (``reauthenticate``, ``rotate``, ``revoke``)
and, for what the flow does on its own (renewal, re-sending a renewed ID, refreshing a
persistent cookie), under ``log`` too. Through real ASGI (Starlette), WSGI and Flask calls.

Requirements: OWASP ASVS 5.0 V7.5 (defenses against session abuse: a session used from a
new client is re-verified or terminated), V7.2.4 (a new token only after authentication);
WSTG-SESS-01 (session management schema), WSTG-SESS-09 (session hijacking).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sessionkeeper.core import ids
from tests.adapters.conftest import CountingStore
from tests.lifecycle.conftest import CHROME_WIN, FIREFOX_LINUX, Browser, LClient, Resp

DEFENDING = ["reauthenticate", "rotate", "revoke"]
KINDS = ["asgi", "wsgi", "flask"]


def owner(c: LClient, user: str = "alice") -> Browser:
    b = Browser(c, "203.0.113.5", FIREFOX_LINUX)
    b.login(user)
    return b


def thief_of(c: LClient, token: str | None) -> Browser:
    t = Browser(c, "198.51.100.20", CHROME_WIN)
    t.token = token
    return t


def assert_no_signed_in_cookie(c: LClient, store: CountingStore, r: Resp) -> None:
    """The response hands out no token of a session bound to a user."""
    for value in r.all("set-cookie"):
        token = value.split(";", 1)[0].split("=", 1)[1]
        if token in ('""', ""):
            continue
        record = store.inner.load(ids.storage_key(token), c.clock())
        assert record is None or record.meta.user_id is None, (value, record)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("policy", DEFENDING)
@pytest.mark.parametrize("path", ["/whoami", "/set", "/csrf", "/all", "/untouched"])
def test_v7_5_replay_from_another_browser_never_gets_a_signed_in_cookie(
        make: Callable[..., LClient], store: CountingStore, kind: str, policy: str, path: str) -> None:
    """WSTG-SESS-09: a stolen cookie replayed from another browser and network is answered
    without any Set-Cookie for a signed-in session, whatever the page does."""
    c = make(kind, anomaly_policy=policy)
    b = owner(c)
    original = b.token
    thief = thief_of(c, original)
    for _ in range(3):
        r = thief.go(path, k="x", v="1")
        assert r.status == 200
        assert_no_signed_in_cookie(c, store, r)
    if policy != "revoke":
        # the owner keeps the session: same ID, still signed in, no new cookie needed
        r = b.go("/whoami")
        assert r.token is None and b.token == original and r.json["user_id"] == "alice"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("policy", ["log", *DEFENDING])
def test_v7_5_app_regenerate_in_a_drifted_request_hands_out_nothing(
        make: Callable[..., LClient], store: CountingStore, kind: str, policy: str) -> None:
    """The app calls ``regenerate()`` on a page the replay visits: no new signed-in ID for the
    drifted client, and the owner's token keeps working."""
    c = make(kind, anomaly_policy=policy)
    b = owner(c)
    thief = thief_of(c, b.token)
    r = thief.go("/regenerate")
    assert r.status == 200
    assert_no_signed_in_cookie(c, store, r)
    assert c.events.of("rotated") == []
    if policy != "revoke":
        assert b.whoami()["user_id"] == "alice"


@pytest.mark.parametrize("kind", KINDS)
def test_v7_2_4_login_in_a_drifted_request_rotates(make: Callable[..., LClient], store: CountingStore,
                                                  kind: str) -> None:
    """A fresh authentication from the new client (the owner moved, and typed the password)
    does rotate, and records the new fingerprint: later requests from there are quiet."""
    c = make(kind, anomaly_policy="reauthenticate")
    b = owner(c)
    old = b.token
    b.ip, b.ua = "198.51.100.20", CHROME_WIN
    r = b.go("/reauth")
    assert r.status == 200 and r.token and r.token != old
    assert b.whoami()["recent"] is True
    assert len(c.events.of("anomaly")) == 1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("policy", ["log", *DEFENDING])
def test_v7_5_drifted_request_is_not_renewed(make: Callable[..., LClient], store: CountingStore,
                                            kind: str, policy: str) -> None:
    """Periodic renewal is due, but the request that asks is a replay from elsewhere: the flow
    does not rotate for it (it would hand the thief the new ID and lock the owner out)."""
    c = make(kind, anomaly_policy=policy, rotate_interval=900, renew_grace=30)
    b = owner(c)
    c.clock.advance(901)
    thief = thief_of(c, b.token)
    r = thief.go("/whoami")
    assert_no_signed_in_cookie(c, store, r)
    assert c.events.of("rotated") == []
    if policy != "revoke":
        r = b.go("/whoami")  # the owner's request renews as usual
        assert r.token and r.json["user_id"] == "alice"
        assert [e.detail.get("reason") for e in c.events.of("rotated")] == ["renewal"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("policy", ["log", *DEFENDING])
def test_v7_5_renewed_away_token_from_another_browser_gets_no_current_token(
        make: Callable[..., LClient], store: CountingStore, kind: str, policy: str) -> None:
    """Within the renewal grace window the old token leads to the session; the owner is sent
    the current token again, a replay from another browser is not."""
    c = make(kind, anomaly_policy=policy, rotate_interval=900, renew_grace=30)
    b = owner(c)
    old = b.token
    c.clock.advance(901)
    assert b.go("/whoami").token  # renewed
    c.clock.advance(1)
    thief = thief_of(c, old)
    r = thief.go("/whoami")
    assert_no_signed_in_cookie(c, store, r)
    # the same old token from the owner's own browser is still re-sent the current one
    late = Browser(c, "203.0.113.5", FIREFOX_LINUX)
    late.token = old
    if policy != "revoke":
        r = late.go("/whoami")
        assert r.token == b.token and r.json["user_id"] == "alice"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("policy", ["log", *DEFENDING])
@pytest.mark.parametrize("persistent", ["cookie_max_age", "remember"])
def test_v7_5_persistent_cookie_is_not_refreshed_for_a_drifted_request(
        make: Callable[..., LClient], store: CountingStore, kind: str, policy: str,
        persistent: str) -> None:
    """A write that would refresh a persistent cookie's Max-Age re-sends the token: not to a
    replay from elsewhere."""
    options = {"cookie_max_age": 3600} if persistent == "cookie_max_age" else {}
    c = make(kind, anomaly_policy=policy, **options)
    b = owner(c)
    if persistent == "remember":
        r = b.go("/remember")
        assert r.json is True and "Max-Age=" in r.all("set-cookie")[0]
    thief = thief_of(c, b.token)
    r = thief.go("/set", k="x", v="1")
    assert_no_signed_in_cookie(c, store, r)


@pytest.mark.parametrize("kind", KINDS)
def test_v7_5_reauthenticate_drifted_request_is_never_recently_authenticated(
        make: Callable[..., LClient], kind: str) -> None:
    """Step-up gates hold against the replay even right after the owner re-authenticated."""
    c = make(kind, anomaly_policy="reauthenticate")
    b = owner(c)
    thief = thief_of(c, b.token)
    assert thief.whoami()["recent"] is False
    r = b.go("/reauth")
    assert r.status == 200 and r.token
    thief.token = b.token  # the thief steals the new token too
    for _ in range(2):
        me = thief.whoami()
        assert (me["user_id"], me["recent"], me["auth_at"]) == ("alice", False, None)


@pytest.mark.parametrize("kind", KINDS)
def test_v7_5_rotate_leaves_the_owner_untouched(make: Callable[..., LClient], store: CountingStore,
                                                kind: str) -> None:
    """``rotate``: the replay starts an anonymous session of its own (its writes never reach
    the owner's session); the owner's data, ID and sign-in stay as they were."""
    c = make(kind, anomaly_policy="rotate")
    b = owner(c)
    b.go("/set", k="card", v="4242")
    thief = thief_of(c, b.token)
    r = thief.go("/set", k="card", v="stolen")
    assert r.token and r.token != b.token  # a fresh session of its own ...
    assert_no_signed_in_cookie(c, store, r)  # ... bound to nobody
    assert thief.go("/all").json == {"card": "stolen"}
    assert thief.whoami()["user_id"] is None
    assert b.go("/all").json == {"card": "4242"}
    assert b.whoami()["user_id"] == "alice"
    (device,) = c.manager.devices("alice")
    assert device.user_agent == "Firefox on Linux"  # the login's fingerprint, not the thief's
